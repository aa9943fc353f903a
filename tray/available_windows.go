package tray

import "context"

func checkRunnable(context.Context) error { return nil }

// Available reports whether a tray can be shown; on Windows the
// notification area is always there.
func Available(context.Context) (bool, string) { return true, "" }
