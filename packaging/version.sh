# Derives the package versions from the version of `git describe --tags
# --always --dirty` (the Makefile's VERSION). Source it, then call
# dist_versions VERSION; it sets
#   file_version  the version in file names: VERSION without a leading "v"
#                 (v1.2.3-4-gabc1234 -> 1.2.3-4-gabc1234)
#   deb_version   a Debian version that sorts right: 1.2.3, 1.2.3~rc1 (before
#                 1.2.3), 1.2.3+4.gabc1234 (after it); 0.0.0+gabc1234 when
#                 no tag is reachable
#   win_version   four numbers for the Windows version resource and the MSI
#                 (major.minor.patch.commits-since-tag; 0.0.0.0 without a tag)
# It returns 1 with a message when VERSION cannot be mapped.

dist_versions() {
	local v=${1#v} dirty='' base pre='' commits='' hash='' rest major minor patch
	case $v in *-dirty) dirty=1 v=${v%-dirty} ;; esac
	file_version=${1#v}
	if [[ $v =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)(-([0-9A-Za-z.]+))?(-([0-9]+)-g([0-9a-f]+))?$ ]]; then
		major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
		base=$major.$minor.$patch
		pre=${BASH_REMATCH[5]} commits=${BASH_REMATCH[7]} hash=${BASH_REMATCH[8]}
		# "1.2.3-4-gabc" matches the pre-release group first: undo that.
		if [ -z "$commits" ] && [[ $pre =~ ^([0-9]+)-g([0-9a-f]+)$ ]]; then
			commits=${BASH_REMATCH[1]} hash=${BASH_REMATCH[2]} pre=
		fi
		if [ "$major" -gt 255 ] || [ "$minor" -gt 255 ] || [ "$patch" -gt 65535 ]; then
			echo "version $1: Windows needs major and minor up to 255 and patch up to 65535" >&2
			return 1
		fi
		deb_version=$base
		[ -n "$pre" ] && deb_version+="~$pre"
		rest=
		[ -n "$commits" ] && rest+="$commits.g$hash"
		[ -n "$dirty" ] && rest+="${rest:+.}dirty"
		[ -n "$rest" ] && deb_version+="+$rest"
		win_version=$base.${commits:-0}
	elif [[ $v =~ ^[0-9a-f]{4,40}$ || $v == dev ]]; then
		# No tag reachable (or no git): a commit hash or "dev".
		deb_version=0.0.0+g$v
		[ "$v" = dev ] && deb_version=0.0.0+dev
		[ -n "$dirty" ] && deb_version+=.dirty
		win_version=0.0.0.0
	else
		echo "version $1: expected a tag like v1.2.3 (git describe --tags), a commit hash or dev" >&2
		return 1
	fi
	if [ "${win_version##*.}" -gt 65535 ]; then win_version=${win_version%.*}.65535; fi
}
