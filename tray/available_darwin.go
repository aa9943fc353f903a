//go:build darwin && cgo

package tray

import "context"

func checkRunnable(context.Context) error { return nil }

// Available reports whether a tray can be shown; on macOS the menu bar is
// always there.
func Available(context.Context) (bool, string) { return true, "" }
