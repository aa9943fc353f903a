//go:build darwin && !cgo

package tray

import "context"

// newSystrayUI is never reached: checkRunnable refuses to run without cgo.
func newSystrayUI(string) ui { panic("tray: built without cgo") }

func checkRunnable(context.Context) error {
	return ErrUnavailable
}

// Available reports whether a tray can be shown. This macOS build has no
// cgo, which fyne.io/systray needs there.
func Available(context.Context) (bool, string) {
	return false, "this macOS build has no cgo, which the menu bar icon needs: running headless"
}
