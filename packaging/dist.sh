#!/usr/bin/env bash
# Builds the release artifacts (`make dist`; `make dist-check` builds a few).
#
#   packaging/dist.sh OUT VERSION TARGET...
#
# TARGET is GOOS/GOARCH: linux/amd64, linux/arm64, windows/amd64,
# darwin/amd64 or darwin/arm64. For each it writes into OUT
#   ipsync_V_linux_ARCH.tar.gz and ipsync_V_linux_ARCH.deb (nfpm),
#   ipsync_V_windows_amd64.zip and ipsync_V_windows_amd64.msi (wixl),
#   ipsync_V_darwin_ARCH.tar.gz (headless: the menu-bar icon needs cgo, so a
#     Mac build of the tray app is made on a Mac, see docs/deploy.md),
# then checksums.txt (SHA-256) of every artifact of version V in OUT. V is
# VERSION without a leading "v"; VERSION itself (`git describe --tags
# --always --dirty`) is what `ipsync version` prints. Binaries are static
# (CGO_ENABLED=0) and stripped; archives and .deb packages carry the time of
# the last commit (SOURCE_DATE_EPOCH), so a rebuild of a clean tree gives the
# same files (not the .msi: wixl stamps the time and a new product code).
# The tools are pinned in tools/go.mod (nfpm, go-winres) or come from Debian
# (wixl, zip).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
me=dist
. .ci/lib.sh
. packaging/version.sh

[ $# -ge 3 ] || die "usage: packaging/dist.sh OUT VERSION TARGET..."
out=$1 version=$2
shift 2
dist_versions "$version" || die "cannot make package versions from VERSION=$version"
started=$SECONDS

needs=(zip)
for t in "$@"; do
	case $t in
	linux/amd64 | linux/arm64 | darwin/amd64 | darwin/arm64) ;;
	windows/amd64) needs+=(wixl) ;;
	*) die "unknown target $t (linux/amd64, linux/arm64, windows/amd64, darwin/amd64, darwin/arm64)" ;;
	esac
done
for c in "${needs[@]}"; do
	command -v "$c" >/dev/null || die "$c is not installed: apt-get install $c"
done

work=$(mktemp -d /tmp/ipsync-dist.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/ipsync_"$file_version"_* "$out/checksums.txt"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export CGO_ENABLED=0
ldflags="-s -w -X main.version=$version"

# The pinned tools, built once from tools/go.mod (cached by go).
go -C tools build -o "$work/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm
go -C tools build -o "$work/go-winres" github.com/tc-hib/go-winres
# The man page comes from the program's own help: a build for this machine.
go build -trimpath -ldflags "$ldflags" -o "$work/host/ipsync" .

# stage DIR: the files every archive carries besides the program.
stage_docs() {
	cp README.md config.example.yaml "$1/"
	mkdir -p "$1/docs"
	cp docs/deploy.md docs/operations.md "$1/docs/"
}

# archive DIR FILE: DIR as a reproducible .tar.gz or .zip named FILE.
archive() {
	local dir=$1 file=$2 base
	base=$(basename "$dir")
	find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	case $file in
	*.tar.gz)
		tar -C "$(dirname "$dir")" --sort=name --owner=0 --group=0 --numeric-owner \
			--mtime="@$SOURCE_DATE_EPOCH" -cf - "$base" | gzip -9n >"$file"
		;;
	*.zip)
		(cd "$(dirname "$dir")" && find "$base" | LC_ALL=C sort | zip -X -q -9 "$file" -@)
		;;
	esac
}

for t in "$@"; do
	os=${t%/*} arch=${t#*/}
	name=ipsync_${file_version}_${os}_${arch}
	dir=$work/$name
	mkdir -p "$dir"
	exe=ipsync
	flags=$ldflags
	if [ "$os" = windows ]; then
		exe=ipsync.exe
		# A tray program: no console window.
		flags+=" -H windowsgui"
	fi
	t0=$SECONDS
	GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$flags" -o "$dir/$exe" .
	if [ "$os" = windows ]; then
		# Icon and version information (shown by Explorer's Properties).
		# (go-winres reads the icon relative to the JSON file.)
		cp icons/ico/client-current.ico "$work/ipsync.ico"
		sed -e "s|@ICON@|ipsync.ico|" -e "s|@WIN_VERSION@|$win_version|g" \
			-e "s|@VERSION@|$version|g" packaging/windows/winres.json >"$work/winres.json"
		"$work/go-winres" patch --in "$work/winres.json" --no-backup "$dir/$exe"
	fi
	stage_docs "$dir"
	if [ "$os" = windows ]; then
		archive "$dir" "$out/$name.zip"
	else
		archive "$dir" "$out/$name.tar.gz"
	fi

	case $os in
	linux)
		pkg=$work/deb-$arch
		mkdir -p "$pkg"
		cp "$dir/ipsync" "$pkg/ipsync"
		packaging/man.sh "$work/host/ipsync" "$version" | gzip -9n >"$pkg/ipsync.1.gz"
		IPSYNC_ARCH=$arch IPSYNC_DEB_VERSION=$deb_version IPSYNC_STAGE=$pkg \
			"$work/nfpm" package --config packaging/nfpm.yaml --packager deb \
			--target "$out/${name}.deb" >"$work/nfpm.log" 2>&1 ||
			{ cat "$work/nfpm.log" >&2; die "nfpm could not build $name.deb"; }
		;;
	windows)
		# wixl finds sources relative to its working directory.
		msi=$work/msi
		mkdir -p "$msi"
		cp "$dir/$exe" "$msi/ipsync.exe"
		cp icons/ico/client-current.ico "$msi/ipsync.ico"
		cp docs/deploy.md "$msi/deploy.md"
		(cd "$msi" && wixl -a x64 -D "Version=$win_version" -D Exe=ipsync.exe -D Icon=ipsync.ico \
			-o "$out/$name.msi" "$root/packaging/windows/ipsync.wxs") ||
			die "wixl could not build $name.msi"
		;;
	esac
	log "$t: built in $((SECONDS - t0))s"
done

(cd "$out" && sha256sum ipsync_"$file_version"_* >checksums.txt)
log "version $version (deb $deb_version, windows $win_version) in $out, $((SECONDS - started))s:"
(cd "$out" && ls -l ipsync_"$file_version"_* checksums.txt | awk '{printf "  %10d  %s\n", $5, $9}') >&2
