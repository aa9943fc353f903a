#!/usr/bin/env bash
# The release artifacts, built and installed (`make dist-check`, part of
# `make test`).
#
# Builds one of each artifact type with packaging/dist.sh (linux/amd64
# .tar.gz and .deb, windows/amd64 .zip and .msi, the darwin/arm64 headless
# .tar.gz) into a temporary directory, then:
#   - checks the versions packaging/version.sh derives from git tags;
#   - checks checksums.txt and the archives' contents;
#   - the .deb: lists it (dpkg-deb -c) against the expected files, installs
#     it with `dpkg --root=DIR --force-script-chrootless -i` into a throwaway
#     root (dpkg's own database there; the maintainer scripts run with
#     DPKG_ROOT=DIR, so the postinst really creates the ipsync user in
#     DIR/etc/passwd and hands it /etc/ipsync), runs the installed
#     `ipsync version`, validates the desktop entry and the man page, runs
#     `systemd-analyze verify` on both units (the system unit with --root on
#     a copy of the root plus this machine's units; the user unit in user
#     scope) and `systemd-analyze security` on the server unit, then removes
#     and purges the package;
#   - both packages, once installed: a fresh user runs `ipsync join` with an
#     invitation made against a loopback mail server (internal/loopserver)
#     and `ipsync fetch --once` prints the address published there;
#   - the .msi: checks it is per-user (no elevation, no ALLUSERS), installs it
#     under Wine (`msiexec /i … /qn`), runs the installed ipsync.exe
#     `version`, reads its version resource, finds the Start-menu shortcut,
#     checks start at login is off by default and on with ADDLOCAL=ALL
#     (the value the tray's "Start at login" reads), and that `msiexec /x`
#     removes the program, the shortcut, its registry keys and a login entry
#     the tray wrote;
#   - the .msi's program joined from the desktop: the command the .ipsync
#     file type runs, with no console and no passphrase file, so join asks in
#     its Win32 dialog, answered on a private Xvfb display by xdotool as a
#     person would (a wrong passphrase first); then the "set up" message, the
#     tray it starts, and that tray's address.
# VERSION (the Makefile's `git describe`) is stamped into everything and
# checked. Installs what it needs as root on a fresh Debian machine. Exits
# non-zero with a message naming the failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS
me=dist-check
. .ci/lib.sh
. packaging/version.sh

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

# --- packages ---------------------------------------------------------------
# wixl builds the .msi (Debian splits it from msitools, which has msiinfo);
# systemd gives systemd-analyze and systemd-sysusers; desktop-file-utils
# validates the desktop entries, shared-mime-info the MIME type; wine runs
# the installer; Xvfb, xdotool and imagemagick show, answer and photograph
# the Windows dialogs.
install_missing zip unzip wixl msitools systemd desktop-file-utils shared-mime-info binutils wine wine64 \
	xvfb xdotool imagemagick fonts-dejavu-core
command -v go >/dev/null || die "go is not on PATH"
# dpkg installs into the throwaway root as root would: files owned by root,
# /etc/ipsync handed to the ipsync group.
if [ "$(id -u)" != 0 ]; then
	if [ -n "${IPSYNC_OPTIONAL:-}" ] && [ -z "${CI:-}" ]; then
		log "skipped: installing the .deb into a throwaway root needs root (run as root, or in CI)"
		exit 0
	fi
	die "run as root: dpkg installs the .deb into a throwaway root as root would"
fi

work=$(mktemp -d /tmp/ipsync-dist-check.XXXXXX)
# Pictures of the Windows dialogs, kept for a look after the run.
shots=$root/bin/dist-check
rm -rf "$shots"
mkdir -p "$shots"
export WINEPREFIX=$work/prefix WINEARCH=win64 WINEDEBUG=-all
export WINEDLLOVERRIDES='mscoree=;mshtml='
pids=()
cleanup() {
	local rc=$?
	if [ $rc -ne 0 ]; then
		show_display "$shots"
		for f in "$work"/*.log "$work"/join-*.out "$work"/join-*.err "$work"/prefix/drive_c/users/*/AppData/Local/ipsync/client.log; do
			[ -s "$f" ] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }
		done
	fi
	[ -d "$WINEPREFIX" ] && timeout 20 wineserver -k >/dev/null 2>&1 || true
	stop_pids "${pids[@]}"
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- versions -----------------------------------------------------------------
# VERSION -> file name, Debian and Windows versions.
while read -r v f d w; do
	dist_versions "$v" || die "dist_versions $v failed"
	[ "$file_version $deb_version $win_version" = "$f $d $w" ] ||
		die "dist_versions $v = $file_version $deb_version $win_version, want $f $d $w"
done <<'EOF'
v1.2.3 1.2.3 1.2.3 1.2.3.0
v1.2.3-4-gabc1234 1.2.3-4-gabc1234 1.2.3+4.gabc1234 1.2.3.4
v1.2.3-4-gabc1234-dirty 1.2.3-4-gabc1234-dirty 1.2.3+4.gabc1234.dirty 1.2.3.4
v1.2.3-rc1 1.2.3-rc1 1.2.3~rc1 1.2.3.0
v1.2.3-rc.1-2-gdeadbee 1.2.3-rc.1-2-gdeadbee 1.2.3~rc.1+2.gdeadbee 1.2.3.2
bef521e bef521e 0.0.0+gbef521e 0.0.0.0
bef521e-dirty bef521e-dirty 0.0.0+gbef521e.dirty 0.0.0.0
EOF
for v in 1.2 v300.1.1 v1.2.3/x; do
	if (dist_versions "$v" 2>/dev/null); then die "dist_versions $v succeeded, want an error"; fi
done
# Debian's order: a pre-release before its release, later commits after it.
dpkg --compare-versions 1.2.3~rc1 lt 1.2.3 && dpkg --compare-versions 1.2.3 lt 1.2.3+4.gabc1234 &&
	dpkg --compare-versions 1.2.3+4.gabc1234 lt 1.2.4~rc1 || die "Debian versions sort wrongly"
dist_versions "$version" || die "VERSION=$version cannot be mapped to package versions"
log "version $version: files $file_version, deb $deb_version, windows $win_version"

# --- build ------------------------------------------------------------------
t=$SECONDS
out=$work/dist
bash packaging/dist.sh "$out" "$version" linux/amd64 windows/amd64 darwin/arm64 2>"$work/dist.log" ||
	die "packaging/dist.sh failed"
dist_time=$((SECONDS - t))
cat "$work/dist.log" >&2
p=ipsync_${file_version}
for f in ${p}_linux_amd64.tar.gz ${p}_linux_amd64.deb ${p}_windows_amd64.zip ${p}_windows_amd64.msi \
	${p}_darwin_arm64.tar.gz checksums.txt; do
	[ -s "$out/$f" ] || die "dist made no $f"
done
(cd "$out" && sha256sum --quiet -c checksums.txt) || die "checksums.txt does not match the artifacts"
[ "$(wc -l <"$out/checksums.txt")" -eq 5 ] || die "checksums.txt should list 5 artifacts: $(cat "$out/checksums.txt")"

# --- archives ---------------------------------------------------------------
want_files() { # PREFIX EXE: the files of an archive
	printf '%s\n' "$1/" "$1/README.md" "$1/config.example.yaml" "$1/docs/" "$1/docs/deploy.md" \
		"$1/docs/operations.md" "$1/$2" | sort
}
for a in linux_amd64 darwin_arm64; do
	got=$(tar -tzf "$out/${p}_$a.tar.gz" | sort)
	[ "$got" = "$(want_files "${p}_$a" ipsync)" ] || die "${p}_$a.tar.gz holds:"$'\n'"$got"
done
got=$(unzip -Z1 "$out/${p}_windows_amd64.zip" | sort)
[ "$got" = "$(want_files "${p}_windows_amd64" ipsync.exe)" ] || die "${p}_windows_amd64.zip holds:"$'\n'"$got"
mkdir -p "$work/tar"
tar -C "$work/tar" -xzf "$out/${p}_linux_amd64.tar.gz"
got=$("$work/tar/${p}_linux_amd64/ipsync" version)
[ "$got" = "ipsync $version" ] || die "ipsync version from the .tar.gz printed '$got', want 'ipsync $version'"
tar -C "$work/tar" -xzf "$out/${p}_darwin_arm64.tar.gz"
file_type=$(od -An -tx1 -N4 "$work/tar/${p}_darwin_arm64/ipsync" | tr -d ' ')
[ "$file_type" = cffaedfe ] || die "the darwin_arm64 program is not a 64-bit Mach-O file (magic $file_type)"
log "archives: contents, checksums, versions ok"

# --- an invitation ----------------------------------------------------------
# A loopback mail server (internal/loopserver: SMTP+IMAP with TLS on
# 127.0.0.1, a server config and a fresh key), the address published once,
# and an invitation made by the archive's program: each installed package
# must then get from `ipsync join` to that address with no other step.
go build -o "$work/loopserver" ./internal/loopserver
"$work/loopserver" --dir "$work/mail" >"$work/loopserver.out" 2>"$work/loopserver.log" &
pids+=($!)
wait_for 30 "loopserver to be ready" grep -q '^ready ' "$work/loopserver.out"
linux_ipsync=$work/tar/${p}_linux_amd64/ipsync
joined_ip=198.51.100.20
timeout 60 "$linux_ipsync" publish --once --config "$work/mail/server.yaml" --ip $joined_ip --allow-documentation-ip >"$work/publish.log" 2>&1 ||
	die "could not publish $joined_ip to the loopback mail server"
printf 'dist-check invitation passphrase\n' >"$work/passphrase"
timeout 60 "$linux_ipsync" invite --config "$work/mail/server.yaml" --out "$work/pc.ipsync" \
	--passphrase-file "$work/passphrase" >"$work/invite.log" 2>&1 || die "ipsync invite failed"
[ "$(stat -c %a "$work/pc.ipsync")" = 600 ] || die "the invitation's mode is $(stat -c %a "$work/pc.ipsync"), want 600"
# ms: milliseconds since the epoch, for the round trips' times.
ms() { echo $(($(date +%s%N) / 1000000)); }

# --- the .deb ---------------------------------------------------------------
deb=$out/${p}_linux_amd64.deb
[ "$(dpkg-deb -f "$deb" Package)" = ipsync ] || die "the .deb's Package is not ipsync"
[ "$(dpkg-deb -f "$deb" Version)" = "$deb_version" ] || die "the .deb's Version is $(dpkg-deb -f "$deb" Version), want $deb_version"
[ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || die "the .deb's Architecture is not amd64"
[ "$(dpkg-deb -f "$deb" Suggests)" = zenity ] || die "the .deb's Suggests is '$(dpkg-deb -f "$deb" Suggests)', want zenity (the desktop's dialogs)"
listing=$(dpkg-deb -c "$deb")
got=$(awk '$1 !~ /^d/ { print $1, $6 }' <<<"$listing" | sort)
want=$(sort <<'EOF'
-rwxr-xr-x ./usr/bin/ipsync
-rw-r--r-- ./usr/lib/systemd/system/ipsync-server.service
-rw-r--r-- ./usr/lib/systemd/user/ipsync-client.service
-rw-r--r-- ./usr/lib/sysusers.d/ipsync.conf
-rw-r--r-- ./usr/share/applications/ipsync-join.desktop
-rw-r--r-- ./usr/share/applications/ipsync.desktop
-rw-r--r-- ./usr/share/doc/ipsync/README.md
-rw-r--r-- ./usr/share/doc/ipsync/config.example.yaml
-rw-r--r-- ./usr/share/doc/ipsync/deploy.md
-rw-r--r-- ./usr/share/doc/ipsync/operations.md
-rw-r--r-- ./usr/share/icons/hicolor/64x64/apps/ipsync.png
-rw-r--r-- ./usr/share/man/man1/ipsync.1.gz
-rw-r--r-- ./usr/share/mime/packages/ipsync.xml
EOF
)
[ "$got" = "$want" ] || die "dpkg-deb -c lists other files than expected:"$'\n'"$(diff <(echo "$want") <(echo "$got"))"
grep -q '^drwxr-x--- root/root .* \./etc/ipsync/$' <<<"$listing" || die "the .deb has no /etc/ipsync with mode 0750"

r=$work/root
mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/etc"
touch "$r/var/lib/dpkg/status"
dpkg --root="$r" --force-script-chrootless --log="$work/dpkg.log" -i "$deb" >"$work/dpkg-install.log" 2>&1 ||
	die "dpkg -i into $r failed"
dpkg --root="$r" -s ipsync | grep -qx 'Status: install ok installed' || die "dpkg does not list ipsync as installed in $r"
got=$("$r/usr/bin/ipsync" version)
[ "$got" = "ipsync $version" ] || die "the installed /usr/bin/ipsync version printed '$got', want 'ipsync $version'"
grep -qx 'ipsync:x:[0-9]*:[0-9]*:ipsync server:/var/lib/ipsync:/usr/sbin/nologin' "$r/etc/passwd" ||
	die "the postinst made no ipsync user in $r/etc/passwd: $(cat "$r/etc/passwd" 2>/dev/null)"
gid=$(awk -F: '$1 == "ipsync" { print $3 }' "$r/etc/group")
[ -n "$gid" ] || die "the postinst made no ipsync group"
[ "$(stat -c '%a %u %g' "$r/etc/ipsync")" = "750 0 $gid" ] ||
	die "/etc/ipsync is $(stat -c '%a %u %g' "$r/etc/ipsync"), want 750 root:ipsync ($gid)"
for d in ipsync ipsync-join; do
	if ! msg=$(desktop-file-validate "$r/usr/share/applications/$d.desktop" 2>&1) || [ -n "$msg" ]; then
		die "desktop-file-validate $d.desktop: $msg"
	fi
done
# Invitations (*.ipsync) open with `ipsync join`: the MIME type is defined
# (update-mime-database accepts it) and the join entry handles it.
grep -qx 'MimeType=application/x-ipsync-invitation;' "$r/usr/share/applications/ipsync-join.desktop" &&
	grep -qx 'Exec=/usr/bin/ipsync join %f' "$r/usr/share/applications/ipsync-join.desktop" ||
	die "ipsync-join.desktop does not open application/x-ipsync-invitation with ipsync join"
mkdir -p "$work/mime/packages"
cp "$r/usr/share/mime/packages/ipsync.xml" "$work/mime/packages/"
update-mime-database "$work/mime" >/dev/null 2>&1 || die "update-mime-database rejects ipsync.xml"
grep -q '^application/x-ipsync-invitation:\*\.ipsync$' "$work/mime/globs" ||
	die "the MIME database built from ipsync.xml has no *.ipsync glob: $(cat "$work/mime/globs")"
man=$(gzip -dc "$r/usr/share/man/man1/ipsync.1.gz")
grep -q "^\.TH IPSYNC 1 .*\"ipsync $version\"" <<<"$man" || die "the man page has no .TH line naming ipsync $version"
for v in server client check keygen; do
	grep -qx "\.SS $v" <<<"$man" || die "the man page has no section for the verb $v"
done

# systemd-analyze verify prints problems but still exits 0 for most: any
# output fails. The system unit is checked in a copy of the root holding
# this machine's units too (targets it names), the user unit in user scope
# with ExecStart pointing into the root.
vr=$work/verify-root
mkdir -p "$vr/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$vr/usr/lib/systemd/" 2>/dev/null || cp -a /lib/systemd/system "$vr/usr/lib/systemd/"
cp -a "$r/." "$vr/"
if ! msg=$(systemd-analyze verify --man=no --root="$vr" /usr/lib/systemd/system/ipsync-server.service 2>&1) || [ -n "$msg" ]; then
	die "systemd-analyze verify ipsync-server.service: $msg"
fi
mkdir -p "$work/user" "$work/xdg-runtime"
chmod 700 "$work/xdg-runtime"
sed "s|^ExecStart=/usr/bin/ipsync|ExecStart=$r/usr/bin/ipsync|" "$r/usr/lib/systemd/user/ipsync-client.service" \
	>"$work/user/ipsync-client.service"
if ! msg=$(XDG_RUNTIME_DIR=$work/xdg-runtime systemd-analyze --user verify --man=no "$work/user/ipsync-client.service" 2>&1) || [ -n "$msg" ]; then
	die "systemd-analyze --user verify ipsync-client.service: $msg"
fi
# The hardening: systemd's exposure score (0 best, 10 worst) at most 2.0.
exposure=$(systemd-analyze security --offline=yes --root="$vr" --threshold=20 \
	/usr/lib/systemd/system/ipsync-server.service 2>&1) ||
	die "systemd-analyze security: ipsync-server.service is exposed above 2.0:"$'\n'"$(grep '✗' <<<"$exposure")"
exposure=$(sed -n 's/.*Overall exposure level for ipsync-server.service: //p' <<<"$exposure")
log "deb: contents ok; installed into a throwaway root; version, user, /etc/ipsync, desktop entries, .ipsync MIME type, man page ok; units verified; exposure $exposure"

# A fresh user of this root joins with the invitation (no keyring: no
# session bus, so the secrets go to 0600 files) and reads the address.
pc=$work/pc-linux
mkdir -p "$pc"
t0=$(ms)
HOME=$pc XDG_CONFIG_HOME=$pc/.config DBUS_SESSION_BUS_ADDRESS='' timeout 60 "$r/usr/bin/ipsync" join "$work/pc.ipsync" \
	--passphrase-file "$work/passphrase" >"$work/join-deb.log" 2>&1 || die "ipsync join from the .deb failed"
got=$(HOME=$pc XDG_CONFIG_HOME=$pc/.config timeout 60 "$r/usr/bin/ipsync" fetch --once 2>"$work/fetch-deb.log") ||
	die "ipsync fetch --once after join (.deb) failed: $got"
deb_trip=$(($(ms) - t0))
case $got in "office $joined_ip "*) ;; *) die "after join, the .deb's ipsync fetch --once printed '$got', want office $joined_ip" ;; esac
[ "$(stat -c %a "$pc/.config/ipsync/config.yaml")" = 600 ] || die "join wrote the config with mode $(stat -c %a "$pc/.config/ipsync/config.yaml")"
[ -f "$pc/.config/autostart/ipsync-client.desktop" ] || die "join did not turn on start at login (.deb)"
log "deb: ipsync join of an invitation, then fetch --once: $joined_ip in ${deb_trip} ms"

dpkg --root="$r" --force-script-chrootless --log="$work/dpkg.log" -r ipsync >"$work/dpkg-remove.log" 2>&1 ||
	die "dpkg -r ipsync failed"
[ ! -e "$r/usr/bin/ipsync" ] || die "dpkg -r left /usr/bin/ipsync"
[ ! -e "$r/usr/lib/systemd/system/ipsync-server.service" ] || die "dpkg -r left the server unit"
dpkg --root="$r" --force-script-chrootless --log="$work/dpkg.log" -P ipsync >"$work/dpkg-purge.log" 2>&1 ||
	die "dpkg -P ipsync failed"
left=$(find "$r" -path "$r/var/lib/dpkg" -prune -o -name '*ipsync*' -print)
[ -z "$left" ] || die "removing the package left: $left"
log "deb: removed and purged cleanly"

# --- the .msi ---------------------------------------------------------------
msi=$out/${p}_windows_amd64.msi
# Summary "Source" bit 8: no elevated privileges needed (per-user).
source=$(msiinfo suminfo "$msi" | sed -n 's/^Source: \([0-9]*\).*/\1/p')
[ -n "$source" ] && [ $((source & 8)) -eq 8 ] || die "the .msi asks for elevation (summary Source: $source)"
props=$(msiinfo export "$msi" Property | tr -d '\r')
grep -q '^ALLUSERS' <<<"$props" && die "the .msi sets ALLUSERS: it must install per user"
grep -qx "ProductVersion	$win_version" <<<"$props" || die "the .msi's ProductVersion is not $win_version"

t=$SECONDS
W=1024 H=768
start_xvfb "$W" "$H"
wine_prefix
user_dir=$WINEPREFIX/drive_c/users/$(id -un)
exe=$user_dir/AppData/Local/Programs/ipsync/ipsync.exe
lnk="$user_dir/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/ipsync.lnk"
runkey='HKCU\Software\Microsoft\Windows\CurrentVersion\Run'
winmsi=$(winepath -w "$msi")
# run_value: the ipsync-client value under the Run key, or nothing.
run_value() { wine reg query "$runkey" /v ipsync-client 2>/dev/null | tr -d '\r' | sed -n 's/.*ipsync-client *REG_SZ *//p'; }
# class_value KEY: the default value of HKCU\Software\Classes\KEY, or nothing.
class_value() { wine reg query "HKCU\\Software\\Classes\\$1" /ve 2>/dev/null | tr -d '\r' | sed -n 's/.*(Default) *REG_SZ *//p; s/^ *<NO NAME> *REG_SZ *//p'; }
msi_run() { # ACTION LOGNAME [PROPERTY=VALUE...]
	local action=$1 name=$2
	shift 2
	timeout 120 wine msiexec "$action" "$winmsi" /qn /l*v "$(winepath -w "$work/$name.log")" "$@" >>"$work/msiexec.out" 2>&1 ||
		die "msiexec $action $* failed (see $work/$name.log)"
	timeout 60 wineserver -w
}
uninstalled() {
	[ ! -e "$exe" ] || die "msiexec /x left $exe"
	[ ! -e "$lnk" ] || die "msiexec /x left the Start-menu shortcut"
	[ ! -d "$user_dir/AppData/Local/Programs/ipsync" ] || die "msiexec /x left the install folder"
	[ -z "$(run_value)" ] || die "msiexec /x left the login entry $runkey\\ipsync-client = $(run_value)"
	wine reg query 'HKCU\Software\ipsync' >/dev/null 2>&1 && die "msiexec /x left HKCU\\Software\\ipsync"
	[ -z "$(class_value .ipsync)$(class_value 'ipsync.invitation\shell\open\command')" ] ||
		die "msiexec /x left the .ipsync file type: $(class_value .ipsync) / $(class_value 'ipsync.invitation\shell\open\command')"
	return 0
}

# desktop_join: a double-click on the invitation, as far as Wine allows.
# Windows runs the .ipsync type's open command from HKCU\Software\Classes;
# Wine 8's ShellExecute reads only the machine's classes ("There is no
# Windows program configured to open this type of file"), so this runs the
# registered command (checked above) itself: no console, no passphrase
# file. join then asks in its Win32 dialog; xdotool types as a person would.
desktop_join() {
	local title="ipsync: join pc.ipsync" first second info t1 rc=0
	other_window() { local w; w=$(window "$title") && [ -n "$w" ] && [ "$w" != "$first" ]; }
	ended() { ! kill -0 "$1" 2>/dev/null; }
	ended_or_error() { ended "$1" || has_window "ipsync: joining failed"; }
	# Cancel in the passphrase dialog: exit 2, nothing written, no error
	# message (the user chose it). The join processes are not in pids: they
	# are waited for here, and wineserver -k ends them on a failure.
	wine "$exe" join "$(winepath -w "$work/pc.ipsync")" </dev/null >"$work/join-cancel.out" 2>"$work/join-cancel.err" &
	local join_pid=$!
	wait_for 60 "the passphrase dialog '$title'" has_window "$title"
	sleep 0.5
	click_in "$title" 215 78 # Cancel
	wait_for 30 "join to end after Cancel" ended_or_error "$join_pid"
	has_window "ipsync: joining failed" && die "Cancel in the passphrase dialog showed the error message 'ipsync: joining failed'"
	wait "$join_pid" || rc=$?
	[ "$rc" -eq 2 ] || die "join canceled from the desktop exited $rc, want 2: $(tr -d '\r' <"$work/join-cancel.err")"
	grep -q 'canceled: nothing was written' "$work/join-cancel.err" || die "join canceled printed: $(cat "$work/join-cancel.err")"
	[ ! -e "$user_dir/AppData/Roaming/ipsync/config.yaml" ] || die "join canceled from the desktop wrote a config"
	[ -z "$(run_value)" ] || die "join canceled from the desktop turned on start at login"
	log "msi: Cancel in the passphrase dialog: exit 2, nothing written"
	rc=0
	wine "$exe" join "$(winepath -w "$work/pc.ipsync")" </dev/null >"$work/join-desktop.out" 2>"$work/join-desktop.err" &
	join_pid=$!
	wait_for 60 "the passphrase dialog '$title'" has_window "$title"
	first=$(window "$title")
	sleep 0.5 # drawn
	shot "$shots/1-join-passphrase.png"
	click_in "$title" 130 42 # the passphrase field
	xdotool type --delay 15 'not the passphrase'
	xdotool key Return
	# A wrong passphrase asks again, in a new dialog.
	wait_for 60 "the passphrase dialog again after a wrong passphrase" other_window
	second=$(window "$title")
	sleep 0.5
	shot "$shots/2-join-again.png"
	click_in "$title" 130 42
	xdotool type --delay 15 "$(cat "$work/passphrase")"
	t1=$(ms)
	xdotool key Return
	wait_for 120 "the message that the PC is set up (a window 'ipsync')" has_window ipsync
	info=$(window ipsync)
	sleep 0.5
	shot "$shots/3-join-done.png"
	click_in ipsync 20 20
	xdotool key Return
	wait_for 30 "join to end after the message was closed" ended "$join_pid"
	wait "$join_pid" || rc=$?
	[ "$rc" -eq 0 ] || die "join from the desktop exited $rc: $(tr -d '\r' <"$work/join-desktop.out") $(tr -d '\r' <"$work/join-desktop.err")"
	grep -q '^joined "office"' <(tr -d '\r' <"$work/join-desktop.out") && grep -q '^started the tray' <(tr -d '\r' <"$work/join-desktop.out") ||
		die "join from the desktop printed: $(cat "$work/join-desktop.out")"
	# The tray it started reads the address.
	local client_log=$user_dir/AppData/Local/ipsync/client.log
	wait_for 60 "the tray started by join to read $joined_ip ($client_log)" \
		grep -q "msg=\"server address received\".* name=office ipv4=$joined_ip " "$client_log"
	local desk_trip=$(($(ms) - t1))
	[ -f "$user_dir/AppData/Roaming/ipsync/config.yaml" ] || die "join from the desktop wrote no config"
	[ -n "$(run_value)" ] || die "join from the desktop did not turn on start at login"
	log "msi: join from the desktop: Win32 passphrase dialog (windows $first, then $second after a wrong passphrase), message $info, tray showed $joined_ip ${desk_trip} ms after the passphrase was entered"
	# Stop the tray (and all else in this prefix, all started here), and
	# make the PC fresh again for the scripted join: no config, no login
	# entry (the secrets in the keyring are overwritten).
	timeout 20 wineserver -k >/dev/null 2>&1 || true
	timeout 20 wineserver -w >/dev/null 2>&1 || true
	rm -rf "$user_dir/AppData/Roaming/ipsync" "$user_dir/AppData/Local/ipsync"
	wine reg delete "$runkey" /v ipsync-client /f >/dev/null 2>&1 || die "could not remove the login entry join wrote"
	[ -z "$(run_value)" ] || die "the login entry is still there: $(run_value)"
}

msi_run /i install
[ -f "$exe" ] || die "msiexec /i installed no $exe"
got=$(timeout 60 wine "$exe" version 2>"$work/version.log" | tr -d '\r') || true
[ "$got" = "ipsync $version" ] || die "the installed ipsync.exe version printed '$got', want 'ipsync $version'"
mkdir -p "$work/res"
(cd "$work" && go -C "$root/tools" tool go-winres extract --dir "$work/res" "$exe") >/dev/null ||
	die "go-winres could not read the installed ipsync.exe's resources"
grep -q "\"FileVersion\": \"$win_version\"" "$work/res/winres.json" &&
	grep -q "\"ProductVersion\": \"$version\"" "$work/res/winres.json" &&
	ls "$work"/res/*.ico >/dev/null 2>&1 ||
	die "the installed ipsync.exe lacks its icon or version $win_version / $version: $(cat "$work/res/winres.json")"
[ -f "$lnk" ] || die "no Start-menu shortcut $lnk"
# A .lnk holds the target's path in 8-bit text, its arguments in UTF-16.
lnk_text=$(strings -a "$lnk" && strings -a -el "$lnk")
grep -q 'ipsync\\ipsync.exe' <<<"$lnk_text" && grep -qx 'client' <<<"$lnk_text" ||
	die "the Start-menu shortcut does not start ipsync.exe client"
[ -z "$(run_value)" ] || die "start at login is on after a default install: $(run_value)"
# The .ipsync file type opens `ipsync.exe join "<file>"` (an invitation),
# and the set-up guide is there for the tray's "Open the set-up guide".
[ "$(class_value .ipsync)" = ipsync.invitation ] || die "no .ipsync file type after install: '$(class_value .ipsync)'"
want_open="\"$(winepath -w "$exe")\" join \"%1\""
[ "$(class_value 'ipsync.invitation\shell\open\command')" = "$want_open" ] ||
	die "the .ipsync file type opens '$(class_value 'ipsync.invitation\shell\open\command')', want '$want_open'"
[ -f "$(dirname "$exe")/docs/deploy.md" ] || die "the .msi installed no docs\\deploy.md"
desktop_join
# The installed ipsync.exe joins with the invitation from a script (a
# deployment tool) and reads the address; join turns on start at login,
# which the uninstall below must remove.
t0=$(ms)
timeout 120 wine "$exe" join "$(winepath -w "$work/pc.ipsync")" --passphrase-file "$(winepath -w "$work/passphrase")" \
	>"$work/join-msi.log" 2>&1 || die "ipsync.exe join under Wine failed"
got=$(timeout 120 wine "$exe" fetch --once 2>"$work/fetch-msi.log" | tr -d '\r') ||
	die "ipsync.exe fetch --once after join failed: $got"
msi_trip=$(($(ms) - t0))
case $got in "office $joined_ip "*) ;; *) die "after join, ipsync.exe fetch --once printed '$got', want office $joined_ip" ;; esac
[ -f "$user_dir/AppData/Roaming/ipsync/config.yaml" ] || die "join wrote no %APPDATA%\\ipsync\\config.yaml"
[ -n "$(run_value)" ] || die "join did not turn on start at login under Wine"
log "msi: ipsync.exe join of an invitation, then fetch --once: $joined_ip in ${msi_trip} ms ($(grep -o 'secrets in [^)]*' "$work/join-msi.log" | tr -d '\r'))"
msi_run /x uninstall
uninstalled

# Start at login chosen at install time: the value the tray reads and writes
# (ipsync-client under the Run key; the autostart package's Enabled only
# asks whether it is there).
msi_run /i install-autostart ADDLOCAL=ALL
want="\"$(winepath -w "$exe")\" client"
[ "$(run_value)" = "$want" ] || die "with ADDLOCAL=ALL the login entry is '$(run_value)', want '$want'"
msi_run /x uninstall-autostart
uninstalled

# A login entry the tray wrote after a default install goes too. The tray
# writes "<exe>" client --config <its config file>.
msi_run /i install-tray
tray_value="$want --config $(winepath -w "$user_dir/AppData/Roaming/ipsync/config.yaml")"
wine reg add "$runkey" /v ipsync-client /t REG_SZ /d "$tray_value" /f >/dev/null 2>&1 || die "could not write the Run value"
[ "$(run_value)" = "$tray_value" ] || die "could not read back the Run value: $(run_value)"
msi_run /x uninstall-tray
uninstalled
log "msi: per-user; installed under Wine: version, version resource, icon, shortcut, .ipsync file type, guide, start at login; uninstalled cleanly ($((SECONDS - t))s)"

log "passed in $((SECONDS - started))s (packaging/dist.sh ${dist_time}s)"
