#!/usr/bin/env bash
# Tray screenshots for the README: runs `ipsync demo` (client tray icon) in an
# xfce4-panel on a private Xvfb display and session bus, and writes
#   docs/screenshots/tray-icon.png     the panel with the icon
#   docs/screenshots/tray-tooltip.png  the tooltip when hovering the icon
#   docs/screenshots/tray-menu.png     the open menu
# Called by `make screenshots` (which builds bin/ipsync first). Installs the
# Debian packages it needs when run as root on a fresh machine. Everything it
# starts is stopped on exit; nothing listens beyond loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# SCREENSHOTS_OUT: where to write (make test uses a folder under bin/, so
# that a test run does not rewrite the committed pictures).
out=${SCREENSHOTS_OUT:-$root/docs/screenshots}
mkdir -p "$out"
bin=$root/bin/ipsync

me=screenshots
. .ci/lib.sh

[ -x "$bin" ] || die "$bin is missing; run 'make screenshots' (it builds it first)"

# --- packages ---------------------------------------------------------------
install_missing xvfb dbus xfce4-panel xfconf xdotool imagemagick fonts-dejavu-core adwaita-icon-theme

# --- clean-up ---------------------------------------------------------------
work=$(mktemp -d /tmp/ipsync-screenshots.XXXXXX)
pids=() # stopped in reverse order
cleanup() {
	local rc=$? p
	# Children of the bus (xfconfd, activated by the panel) first.
	for p in "${pids[@]}"; do
		for c in $(pgrep -P "$p" 2>/dev/null || true); do kill "$c" 2>/dev/null || true; done
	done
	stop_pids "${pids[@]}"
	if [ $rc -ne 0 ] && [ -d "$work" ]; then
		for f in "$work"/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# A private, predictable desktop: own HOME and XDG dirs, a plain GTK theme.
export HOME=$work/home XDG_CONFIG_HOME=$work/home/.config XDG_CACHE_HOME=$work/home/.cache \
	XDG_DATA_HOME=$work/home/.local/share XDG_RUNTIME_DIR=$work/run
mkdir -p "$XDG_CONFIG_HOME/gtk-3.0" "$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export GTK_THEME=Adwaita NO_AT_BRIDGE=1 GDK_BACKEND=x11
cat >"$XDG_CONFIG_HOME/gtk-3.0/settings.ini" <<'EOF'
[Settings]
gtk-theme-name=Adwaita
gtk-icon-theme-name=Adwaita
gtk-font-name=DejaVu Sans 10
gtk-tooltip-timeout=300
EOF
# One panel at the top: free space, the notification area (StatusNotifierItem
# host), a clock.
cat >"$XDG_CONFIG_HOME/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="icon-size" type="uint" value="22"/>
      <property name="size" type="uint" value="34"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
        <value type="int" value="3"/>
        <value type="int" value="4"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
    </property>
    <property name="plugin-3" type="string" value="separator">
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-4" type="string" value="clock">
      <property name="digital-layout" type="uint" value="3"/>
      <property name="digital-time-format" type="string" value="%H:%M"/>
    </property>
  </property>
</channel>
EOF

# --- display and bus --------------------------------------------------------
W=1024 H=768
start_xvfb "$W" "$H"

dbus-daemon --session --nofork --address="unix:path=$work/bus" >"$work/dbus.log" 2>&1 &
pids+=($!)
export DBUS_SESSION_BUS_ADDRESS=unix:path=$work/bus
bus_has() {
	dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null | grep -q 'boolean true'
}
wait_for 20 "the session bus" bus_has org.freedesktop.DBus

# A calm background instead of Xvfb's stipple.
convert -size ${W}x${H} gradient:'#4a6f96'-'#22364d' "$work/bg.png"
display -window root "$work/bg.png" >/dev/null 2>&1 || true

xfce4-panel --disable-wm-check >"$work/panel.log" 2>&1 &
pids+=($!)
wait_for 30 "xfce4-panel's StatusNotifierWatcher" bus_has org.kde.StatusNotifierWatcher
wait_for 30 "the panel window" xdotool search --onlyvisible --class xfce4-panel
sleep 1 # let the panel draw
shot "$work/before.png"

# --- the demo ---------------------------------------------------------------
"$bin" demo --change-every 6s --for 90s >"$work/demo.log" 2>&1 &
pids+=($!)
demo=$!

icon_shown() {
	kill -0 "$demo" 2>/dev/null || die "ipsync demo exited early (see $work/demo.log)"
	grep -q '^client  *shows' "$work/demo.log" || return 1
	shot "$work/now.png"
	# Only the panel strip: the icon appears there.
	convert "$work/now.png" -crop ${W}x40+0+0 +repage "$work/now-panel.png"
	convert "$work/before.png" -crop ${W}x40+0+0 +repage "$work/before-panel.png"
	[ -n "$(bbox "$work/before-panel.png" "$work/now-panel.png")" ]
}
wait_for 60 "the tray icon with an address" icon_shown
sleep 2 # the first address settles; the icon turns "current"
shot "$work/panel.png"
convert "$work/panel.png" -crop ${W}x40+0+0 +repage "$work/panel-strip.png"
read -r iw ih ix iy < <(bbox "$work/before-panel.png" "$work/panel-strip.png")
[ -n "${iw:-}" ] || die "the tray icon disappeared"
log "icon area ${iw}x${ih}+${ix}+${iy}"
# The notification area is left of the clock; its icon is the leftmost change.
cx=$((ix + 11)) cy=$((ih / 2 + iy))

mkdir -p "$out"
# (a) the panel's right end with the icon.
crop_w=360
convert "$work/panel.png" -crop ${crop_w}x34+$((W - crop_w))+0 +repage "$out/tray-icon.png"

# (b) the tooltip.
xdotool mousemove 600 300
sleep 0.5
shot "$work/base.png"
xdotool mousemove "$cx" "$cy"
tip_shown() {
	shot "$work/tip.png"
	local g
	g=$(bbox "$work/base.png" "$work/tip.png")
	[ -n "$g" ] || return 1
	read -r _ th _ ty <<<"$g"
	[ $((ty + th)) -gt 40 ] # something appeared below the panel
}
wait_for 15 "the tooltip" tip_shown
sleep 0.5
shot "$work/tip.png"
read -r tw th tx ty < <(bbox "$work/base.png" "$work/tip.png")
log "tooltip area ${tw}x${th}+${tx}+${ty}"
# Crop: from the panel's top and right end down to below the tooltip.
x0=$(( (tx < ix ? tx : ix) - 24 )); [ $x0 -ge 0 ] || x0=0
convert "$work/tip.png" -crop $((W - x0))x$((ty + th + 16))+$x0+0 +repage "$out/tray-tooltip.png"

# (c) the menu: xfce's notification area opens a StatusNotifierItem's menu on a
# right click.
xdotool mousemove 600 300
sleep 1
shot "$work/base.png"
xdotool mousemove "$cx" "$cy" click 3
menu_shown() {
	shot "$work/menu.png"
	local g
	g=$(bbox "$work/base.png" "$work/menu.png")
	[ -n "$g" ] || return 1
	read -r _ mh _ my <<<"$g"
	[ $((my + mh)) -gt 120 ] # a menu, not a tooltip
}
wait_for 15 "the menu" menu_shown
sleep 0.7
shot "$work/menu.png"
read -r mw mh mx my < <(bbox "$work/base.png" "$work/menu.png")
log "menu area ${mw}x${mh}+${mx}+${my}"
x0=$(( (mx < ix ? mx : ix) - 24 )); [ $x0 -ge 0 ] || x0=0
convert "$work/menu.png" -crop $((W - x0))x$((my + mh + 16))+$x0+0 +repage "$out/tray-menu.png"
xdotool key Escape

log "wrote $out/tray-icon.png, tray-tooltip.png, tray-menu.png"
