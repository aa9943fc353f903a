#!/usr/bin/env bash
# The Windows tray under Wine (`make wine-test`).
#
# Builds the Windows binary as released (-H windowsgui), starts on the Linux
# side a loopback SMTP+IMAP server (internal/loopserver) and publishes a first
# address with the Linux `ipsync publish --once`, then runs
#   wine explorer /desktop=shell,1024x768 ipsync.exe client --config ...
# on a private Xvfb display and drives the tray with the mouse only (Wine's
# menus never get the keyboard): finds the icon in the taskbar, hovers it
# (tooltip), right-clicks it (menu), clicks "Copy address", publishes a
# second address, clicks "Fetch now", toggles "Start at login" (checking the
# HKCU Run key with `wine reg query`) and checks in the client's log file
# (%LOCALAPPDATA%\ipsync\client.log) that a fetch ran and the new address was
# accepted. The client config polls once an hour with IDLE off, so only
# "Fetch now" can bring the second address. Then it reopens the menu, saves
# docs/screenshots/windows-tray-menu.png, and quits through the menu's Quit.
# Last, the first run: with no config, the "not set up" tray's "Join with an
# invitation…" (file chooser, passphrase dialog, the new tray's address).
#
# Installs what it needs as root on a fresh Debian machine (wine, wine64,
# xvfb, xdotool, imagemagick; gcc-mingw-w64-x86-64 only when Wine lacks
# bcryptprimitives.dll). Captures of every step are kept in bin/wine-test/.
# Exits non-zero with a message naming the failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS

me=wine-test
. .ci/lib.sh

# --- packages ---------------------------------------------------------------
install_missing wine wine64 xvfb xdotool imagemagick fonts-dejavu-core
command -v go >/dev/null || die "go is not on PATH"

# --- clean-up ---------------------------------------------------------------
work=$(mktemp -d /tmp/ipsync-wine.XXXXXX)
shots=$root/bin/wine-test
rm -rf "$shots"
mkdir -p "$shots"
pids=()
export WINEPREFIX=$work/prefix WINEARCH=win64 WINEDEBUG=-all
# No Mono or Gecko download prompts: ipsync needs neither.
export WINEDLLOVERRIDES='mscoree=;mshtml='
cleanup() {
	local rc=$?
	[ $rc -eq 0 ] || show_display "$shots"
	[ -d "$WINEPREFIX" ] && timeout 20 wineserver -k >/dev/null 2>&1 || true
	stop_pids "${pids[@]}"
	if [ $rc -ne 0 ]; then
		for f in "$work"/*.log "$work"/client.stderr; do
			[ -s "$f" ] && { echo "--- $f" >&2; tail -n 25 "$f" >&2; }
		done
		[ -n "${client_log:-}" ] && [ -s "$client_log" ] && { echo "--- $client_log" >&2; tail -n 25 "$client_log" >&2; }
		echo "wine-test: screenshots of each step are in $shots" >&2
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- builds -----------------------------------------------------------------
t=$SECONDS
go build -o "$work/ipsync" .
go build -o "$work/loopserver" ./internal/loopserver
GOOS=windows GOARCH=amd64 go build -trimpath -ldflags '-s -w -H windowsgui' -o bin/ipsync.exe .
log "built ipsync, loopserver and bin/ipsync.exe in $((SECONDS - t))s"

# --- display ----------------------------------------------------------------
W=1024 H=768
start_xvfb "$W" "$H"

# --- Wine prefix ------------------------------------------------------------
wine_prefix
version=$(timeout 60 wine bin/ipsync.exe version 2>"$work/version.log" | tr -d '\r') || true
case $version in
ipsync\ *) log "under Wine: $version" ;;
*) die "bin/ipsync.exe version printed '$version' under Wine (see the log below)" ;;
esac

# --- the Linux side: mail server and the first address ---------------------
"$work/loopserver" --dir "$work/mail" >"$work/loopserver.out" 2>"$work/loopserver.log" &
pids+=($!)
wait_for 30 "loopserver to be ready" grep -q '^ready ' "$work/loopserver.out"
config=$(sed -n 's/^ready //p' "$work/loopserver.out")
winconfig=$(winepath -w "$config" 2>/dev/null)
first=203.0.113.7 second=203.0.113.8
timeout 60 "$work/ipsync" publish --once --config "$work/mail/server.yaml" --allow-documentation-ip --ip $first >"$work/publish.log" 2>&1 ||
	die "could not publish the first address $first"

# --- the Windows client -----------------------------------------------------
client_log=$WINEPREFIX/drive_c/users/$(id -un)/AppData/Local/ipsync/client.log
wine explorer /desktop=shell,${W}x${H} "$(winepath -w "$root/bin/ipsync.exe")" client --verbose --config "$winconfig" \
	>"$work/client.stdout" 2>"$work/client.stderr" &
pids+=($!)
client_pid=$!
n=0
step() { n=$((n + 1)); shot "$shots/$(printf %02d $n)-$1.png"; }

# in_log ERE: the client's log file has a line matching ERE.
in_log() { [ -f "$client_log" ] && grep -Eq -- "$1" "$client_log"; }
wait_for 60 "the client's log file $client_log" test -f "$client_log"
wait_for 60 "the client to read $first (log: msg=\"server address received\" ipv4=$first)" \
	in_log "msg=\"server address received\".* name=office ipv4=$first "

# The tray icon: the only thing in the taskbar's right end that is not the
# taskbar's own colour.
tray_w=240
find_icon() {
	shot "$work/now.png"
	local g
	g=$(convert "$work/now.png" -crop ${tray_w}x16+$((W - tray_w))+$((H - 18)) +repage \
		-fuzz 10% -trim -format '%w %h %X %Y' info: 2>/dev/null) || return 1
	g=${g//+/}
	read -r iw ih ix iy <<<"$g"
	[ "$iw" -ge 8 ] && [ "$iw" -le 40 ] && [ "$ih" -ge 8 ]
}
wait_for 30 "the tray icon in the taskbar" find_icon
cx=$((W - tray_w + ix + iw / 2)) cy=$((H - 18 + iy + ih / 2))
log "tray icon at ${cx},${cy} (${iw}x${ih})"
step icon

# away: the pointer off the icon and any menu closed, then a reference shot.
away() {
	xdotool mousemove 300 300 click 1
	sleep 0.7
	shot "$work/base.png"
}

# --- tooltip ------------------------------------------------------------------
away
xdotool mousemove "$cx" "$cy"
tooltip_shown() {
	shot "$work/tip.png"
	local g
	g=$(bbox "$work/base.png" "$work/tip.png")
	[ -n "$g" ] || return 1
	read -r tw th tx ty <<<"$g"
	[ $((ty + th)) -le $((H - 18)) ] && [ "$tw" -ge 100 ] # a text box above the taskbar
}
wait_for 15 "the tooltip when hovering the icon" tooltip_shown
log "tooltip ${tw}x${th}+${tx}+${ty}"
step tooltip

# --- menu -------------------------------------------------------------------
# open_menu: right-clicks the icon, waits for the menu, sets mx my mw mh and
# the separators' y (seps), found in a column left of the labels.
open_menu() {
	away
	xdotool mousemove "$cx" "$cy" click 3
	wait_for 15 "the menu after a right click on the icon" menu_shown
	sleep 0.5
	shot "$work/menu.png"
	read -r mw mh mx my < <(bbox "$work/base.png" "$work/menu.png")
	seps=()
	local y v
	while read -r y v; do
		# A separator is a grey line; labels never reach this column.
		[ "$v" -ge 130 ] && [ "$v" -le 190 ] && seps+=($((my + y)))
	done < <(convert "$work/menu.png" -crop 1x$((mh - 4))+$((mx + 10))+$((my + 2)) +repage \
		-colorspace gray -depth 8 txt:- | sed -n 's/^0,\([0-9]*\): *(\([0-9]*\).*/\1 \2/p' | awk '{print $1 + 2, $2}')
	# The first line of a run counts; a separator may be two pixels.
	local s prev=-9 one=()
	for s in "${seps[@]}"; do [ $((s - prev)) -gt 2 ] && one+=("$s"); prev=$s; done
	seps=("${one[@]}")
	log "menu ${mw}x${mh}+${mx}+${my}, separators at ${seps[*]}"
	# address/previous/status | Copy address, Fetch now | Open config, Start at login | Quit
	[ ${#seps[@]} -eq 3 ] || die "expected 3 separators in the tray menu, found ${#seps[@]} (see $shots)"
}
menu_shown() {
	shot "$work/menu.png"
	local g
	g=$(bbox "$work/base.png" "$work/menu.png")
	[ -n "$g" ] || return 1
	read -r _ h _ _ <<<"$g"
	[ "$h" -ge 120 ]
}
open_menu
step menu

# --- Copy address -----------------------------------------------------------
# "Copy address" and "Fetch now" share the space between the first two
# separators: Copy address is the upper half, Fetch now the lower.
xdotool mousemove $((mx + 60)) $((seps[0] + (seps[1] - seps[0]) / 4)) click 1
wait_for 15 "the client to copy $first after clicking Copy address (log: msg=\"address copied to clipboard\")" \
	in_log "msg=\"address copied to clipboard\".* addr=$first"
log "Copy address: copied $first"

# --- Fetch now --------------------------------------------------------------
open_menu
timeout 60 "$work/ipsync" publish --once --config "$work/mail/server.yaml" --allow-documentation-ip --ip $second >>"$work/publish.log" 2>&1 ||
	die "could not publish the second address $second"
in_log "ipv4=$second " && die "the client read $second before Fetch now was clicked (it should poll only hourly)"
polls=$(grep -c 'msg="poll session"' "$client_log" || true)
fy=$((seps[0] + (seps[1] - seps[0]) * 3 / 4))
xdotool mousemove $((mx + 60)) "$fy"
sleep 0.4
step fetch-hover
xdotool click 1
wait_for 30 "a fetch after clicking Fetch now (log: msg=\"poll session\")" \
	test "$(grep -c 'msg="poll session"' "$client_log")" -gt "$polls"
wait_for 30 "the client to accept $second after Fetch now (log: msg=\"server address changed\" ipv4=$second)" \
	in_log "msg=\"server address changed\".* name=office ipv4=$second .*previous_ipv4=$first"
log "Fetch now: the client fetched and accepted $second (previous $first)"

# --- Start at login (the HKCU Run key) ---------------------------------------
runkey='HKCU\Software\Microsoft\Windows\CurrentVersion\Run'
run_value() { wine reg query "$runkey" /v ipsync-client 2>/dev/null | tr -d '\r' | grep -i 'ipsync.exe.* client'; }
no_run_value() { ! run_value; }
run_value >/dev/null && die "an ipsync-client Run value exists before Start at login was clicked"
# "Open config" and "Start at login" share the space between the second and
# third separators: Start at login is the lower half.
click_autostart() {
	open_menu
	xdotool mousemove $((mx + 60)) $((seps[1] + (seps[2] - seps[1]) * 3 / 4)) click 1
}
click_autostart
wait_for 30 "the Run value ipsync-client after clicking Start at login" run_value
log "Start at login: $(run_value | tr -s ' ' | sed 's/^ //')"
click_autostart
wait_for 30 "the Run value to go after clicking Start at login again" no_run_value
log "Start at login off: the Run value is gone"

# --- the menu for the docs, then Quit ---------------------------------------
open_menu
# Rest the pointer on the desktop beside the menu: off the icon (no tooltip)
# and never over an item (Wine highlights even inactive ones).
xdotool mousemove $((mx - 150)) $((my + mh / 2))
sleep 0.7
shot "$work/menu.png"
cp "$work/menu.png" "$shots/$(printf %02d $((n + 1)))-menu-after-fetch.png"
n=$((n + 1))
# SCREENSHOTS_OUT: where the picture goes (make test uses a folder under
# bin/, so that a test run does not rewrite the committed one).
out=${SCREENSHOTS_OUT:-docs/screenshots}
mkdir -p "$out"
x0=$((mx - 24)) y0=$((my - 24))
convert "$work/menu.png" -crop $((W - x0))x$((H - y0))+$x0+$y0 +repage "$out/windows-tray-menu.png"
log "wrote $out/windows-tray-menu.png"

qy=$(((seps[2] + my + mh) / 2))
xdotool mousemove $((mx + 60)) "$qy" click 1
quit_done() { ! kill -0 "$client_pid" 2>/dev/null; }
wait_for 30 "ipsync.exe to exit after Quit" quit_done
wait "$client_pid" 2>/dev/null || true
step after-quit

# --- first run: "Join with an invitation…" in the tray's menu ---------------
# The PC before set-up: `ipsync.exe client` with no config (nothing at
# %APPDATA%\ipsync\config.yaml) shows the "not set up" tray. Its menu's
# "Join with an invitation…" opens the file chooser; the invitation typed
# there runs `ipsync.exe join`, which asks for the passphrase in its own
# dialog, says the PC is set up and starts the real tray; the first-run tray
# then ends. Run without Wine's virtual desktop, so that each dialog is an X
# window xdotool finds by its title; the icon is then in the "Wine System
# Tray" window. A click into each field first: keyboard focus does not
# follow a new window without a window manager.
printf 'wine-test invitation passphrase\n' >"$work/passphrase"
timeout 60 "$work/ipsync" invite --config "$work/mail/server.yaml" --out "$work/pc.ipsync" \
	--passphrase-file "$work/passphrase" >"$work/invite.log" 2>&1 || die "ipsync invite failed"
rm -f "$client_log"
# Not in pids: waited for below; wineserver -k ends it on a failure.
wine "$(winepath -w "$root/bin/ipsync.exe")" client --verbose </dev/null >"$work/firstrun.stdout" 2>"$work/firstrun.log" &
firstrun_pid=$!
wait_for 60 "the Wine System Tray window" has_window "Wine System Tray"
wait_for 60 "the first-run tray (log: msg=\"no config yet: showing the tray's set-up menu\")" \
	in_log "msg=\"no config yet: showing the tray's set-up menu\""
eval "$(xdotool getwindowgeometry --shell "$(window "Wine System Tray")")"
cx=$((X + HEIGHT / 2)) cy=$((Y + HEIGHT / 2))
sleep 0.5
step firstrun-icon
# not set up, Ask your administrator | Join…, Open the set-up guide |
# Start at login | Quit: Join is the upper half between the first two.
open_menu
step firstrun-menu
firstrun_mh=$mh
# The not-set-up menu for docs/deploy.md, pointer off the items.
xdotool mousemove $((mx + mw + 150)) $((my + mh / 2))
sleep 0.7
shot "$work/menu.png"
convert "$work/menu.png" -crop $((mw + 44))x$((mh + 25))+$((mx > 13 ? mx - 13 : 0))+0 +repage "$out/windows-tray-not-set-up.png"
log "wrote $out/windows-tray-not-set-up.png"
xdotool mousemove $((mx + 60)) $((seps[0] + (seps[1] - seps[0]) / 4))
sleep 0.4
step firstrun-join-hover
xdotool click 1
chooser="ipsync: choose the invitation (.ipsync file)"
wait_for 60 "the file chooser '$chooser'" has_window "$chooser"
sleep 0.5
step firstrun-chooser
# The chooser opens with the focus in its File name field.
xdotool type --delay 15 "$(winepath -w "$work/pc.ipsync")"
xdotool key Return
wait_for 60 "the passphrase dialog 'ipsync: join pc.ipsync'" has_window "ipsync: join pc.ipsync"
sleep 0.5
click_in "ipsync: join pc.ipsync" 130 42 # the passphrase field
xdotool type --delay 15 "$(cat "$work/passphrase")"
step firstrun-passphrase
eval "$(xdotool getwindowgeometry --shell "$(window "ipsync: join pc.ipsync")")"
convert "$shots/$(printf %02d $n)-firstrun-passphrase.png" -crop $((WIDTH + 24))x$((HEIGHT + 24))+$((X - 12))+$((Y - 12)) +repage \
	"$out/windows-join-passphrase.png"
log "wrote $out/windows-join-passphrase.png"
t0=$SECONDS
xdotool key Return
wait_for 120 "the message that the PC is set up (a window 'ipsync')" has_window ipsync
sleep 0.5
step firstrun-joined
click_in ipsync 20 20
xdotool key Return
wait_for 60 "the tray started by join to read $second (log: msg=\"server address received\" ipv4=$second)" \
	in_log "msg=\"server address received\".* name=office ipv4=$second "
firstrun_done() { ! kill -0 "$firstrun_pid" 2>/dev/null; }
wait_for 30 "the first-run tray to end after the join" firstrun_done
wait "$firstrun_pid" || die "the first-run tray exited with status $?"
log "first run: Join with an invitation… → file chooser → passphrase → the new tray read $second ($((SECONDS - t0))s after the passphrase)"
# The joined tray took the icon's place (Wine 8's stand-alone tray window
# may leave the place blank after the first icon goes, but it answers): its
# full menu, and its Quit.
# Wine repaints the tray window some time after the first-run icon goes:
# let the display settle, or the repaint lands between open_menu's two
# pictures and is taken for part of the menu.
settled() {
	shot "$work/settle-a.png"
	sleep 0.5
	shot "$work/settle-b.png"
	[ -z "$(bbox "$work/settle-a.png" "$work/settle-b.png")" ]
}
wait_for 20 "the display to settle after the first-run tray ended" settled
open_menu
step firstrun-joined-menu
# Address, status | Copy address, Fetch now | … : taller than the first.
[ "$mh" -gt "$firstrun_mh" ] || die "the menu after join (${mh}px) is not the joined tray's (the first-run one was ${firstrun_mh}px)"
xdotool mousemove $((mx + 60)) $(((seps[2] + my + mh) / 2)) click 1
wait_for 30 "the joined tray to quit from its menu (log: msg=\"quit from the menu\")" in_log 'msg="quit from the menu"'
timeout 20 wineserver -k >/dev/null 2>&1 || true
log "passed in $((SECONDS - started))s"
