#!/usr/bin/env bash
# Makes ipsync.app, the macOS menu-bar client, on a Mac:
#
#   packaging/darwin/app.sh [OUTDIR]      (default: dist/)
#
# The menu-bar icon needs cgo (fyne.io/systray uses Cocoa), so this builds
# on macOS with the Xcode command line tools (xcode-select --install) and Go,
# for this Mac's architecture. The bundle:
#   ipsync.app/Contents/Info.plist        LSUIElement: no Dock icon
#   ipsync.app/Contents/MacOS/ipsync      the program (all verbs)
#   ipsync.app/Contents/MacOS/ipsync-client
#                                         what Finder starts: `ipsync client`
# Copy it to /Applications. "Start at login" in its menu writes a
# LaunchAgent that runs Contents/MacOS/ipsync client. The bundle is not
# signed: the first start needs right-click > Open (or `xattr -dr
# com.apple.quarantine ipsync.app` on a copy that was downloaded).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -s)" = Darwin ] || { echo "app.sh: run this on macOS (the menu-bar icon needs cgo and Cocoa)" >&2; exit 2; }
out=${1:-dist}
. packaging/version.sh
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
dist_versions "$version"
app=$out/ipsync.app
rm -rf "$app"
mkdir -p "$app/Contents/MacOS"
CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$app/Contents/MacOS/ipsync" .
cat >"$app/Contents/MacOS/ipsync-client" <<'SH'
#!/bin/sh
exec "$(dirname "$0")/ipsync" client "$@"
SH
chmod 755 "$app/Contents/MacOS/ipsync-client"
sed -e "s|@VERSION@|$version|" -e "s|@SHORT_VERSION@|${win_version%.*}|" packaging/darwin/Info.plist >"$app/Contents/Info.plist"
plutil -lint "$app/Contents/Info.plist" >/dev/null
echo "made $app ($("$app/Contents/MacOS/ipsync" version))"
