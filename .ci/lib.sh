# Shell helpers shared by .ci/run, .ci/screenshots.sh, .ci/wine-test.sh,
# .ci/dist-check.sh and packaging/dist.sh.
# Source it after setting `me` (the prefix of messages).

die() { echo "$me: FAIL: $*" >&2; exit 1; }
log() { echo "$me: $*" >&2; }

# install_missing PACKAGE...: apt-get installs the Debian packages that are
# not installed yet. Not being root, it dies saying what to install, or,
# with IPSYNC_OPTIONAL set outside CI, ends the script as skipped.
export DEBIAN_FRONTEND=noninteractive
apt_updated=
install_missing() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	if [ "$(id -u)" != 0 ]; then
		# From `make test` on a developer machine (not CI): skip, saying why.
		if [ -n "${IPSYNC_OPTIONAL:-}" ] && [ -z "${CI:-}" ]; then
			log "skipped: missing packages ${missing[*]} (install them, or run as root)"
			exit 0
		fi
		die "missing packages ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
	fi
	local t=$SECONDS
	log "installing ${missing[*]}"
	if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	log "installed ${missing[*]} in $((SECONDS - t))s"
}

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it
# succeeds, or dies after SECONDS.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what"
		sleep 0.2
	done
}

# stop_pids PID...: TERM each (last first), wait up to 5 s, then KILL.
stop_pids() {
	local i p args=("$@")
	for ((i = ${#args[@]} - 1; i >= 0; i--)); do kill "${args[i]}" 2>/dev/null || true; done
	for p in "${args[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
}

# start_xvfb W H: starts Xvfb on a free display of W×H, adds it to pids,
# exports DISPLAY and waits until it answers. Needs $work, pids and xdotool.
start_xvfb() {
	Xvfb -displayfd 3 -screen 0 "${1}x${2}x24" -nolisten tcp -noreset 3>"$work/displayfd" >"$work/xvfb.log" 2>&1 &
	pids+=($!)
	wait_for 20 "Xvfb to start" test -s "$work/displayfd"
	export DISPLAY=:$(head -n1 "$work/displayfd")
	wait_for 20 "display $DISPLAY" xdotool getdisplaygeometry
	log "Xvfb on $DISPLAY"
}

# window TITLE: the id of a visible top-level window called exactly TITLE
# (xdotool matches a regular expression: TITLE's special characters are
# escaped), or nothing. has_window TITLE: whether there is one.
window() {
	local re
	re=$(printf '%s' "$1" | sed 's/[][\.*^$()+?{}|]/\\&/g')
	xdotool search --onlyvisible --name "^$re\$" 2>/dev/null | head -n1 || true
}
has_window() { [ -n "$(window "$1")" ]; }

# click_in TITLE DX DY: a click at DX,DY from the top left of the window
# called TITLE (without a window manager, the way to give a field focus).
click_in() {
	local X Y WIDTH HEIGHT SCREEN WINDOW w
	w=$(window "$1")
	[ -n "$w" ] || die "no window '$1' to click in"
	eval "$(xdotool getwindowgeometry --shell "$w")"
	xdotool mousemove $((X + $2)) $((Y + $3)) click 1
}

# show_display DIR: on a failure, a picture of the display (DIR/99-failed.png)
# and the titles of the windows on it, when there is a display.
show_display() {
	[ -n "${DISPLAY:-}" ] || return 0
	shot "$1/99-failed.png" 2>/dev/null || true
	echo "--- windows on the display: $(xdotool search --onlyvisible --name . getwindowname %@ 2>/dev/null | tr '\n' '|')" >&2
}

# shot FILE: a screenshot of the whole display.
shot() { import -silent -window root "$1"; }

# bbox A B [FUZZ%]: prints "W H X Y" of the region where the pictures A and
# B differ (fuzz 8% by default), or nothing when they are the same.
bbox() {
	local g
	g=$(convert "$1" "$2" -compose difference -composite -fuzz "${3:-8}%" -trim \
		-format '%w %h %X %Y' info: 2>/dev/null) || return 0
	# -trim of an all-equal picture leaves a 1x1 image with a negative offset.
	case $g in 1\ 1\ -*) return 0 ;; esac
	echo "${g//+/}"
}

# wine_prefix: makes the Wine prefix $WINEPREFIX (set WINEPREFIX, WINEARCH
# and $work first) and gives it what Go programs need. Go >= 1.22 needs
# bcryptprimitives.dll (ProcessPrng); Wine 8 has none (a newer Wine's own,
# builtin one shows up here as a placeholder file). Wine loads a DLL it has
# no builtin for from system32, so a stand-in built with mingw-w64 goes there.
wine_prefix() {
	local t=$SECONDS sys32=$WINEPREFIX/drive_c/windows/system32
	timeout 180 wineboot --init >"$work/wineboot.log" 2>&1 || die "wineboot --init failed or took over 180s"
	timeout 120 wineserver -w || die "wineserver did not settle after wineboot"
	[ -d "$sys32" ] || die "wineboot made no $sys32"
	log "$(wine --version 2>/dev/null | head -n1) prefix ready in $((SECONDS - t))s"
	if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
		install_missing gcc-mingw-w64-x86-64
		x86_64-w64-mingw32-gcc -shared -O2 -s -o "$sys32/bcryptprimitives.dll" \
			.ci/wine/bcryptprimitives.c .ci/wine/bcryptprimitives.def -lbcrypt
		log "installed the bcryptprimitives.dll stand-in"
	fi
}
