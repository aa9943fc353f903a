//go:build !windows && !darwin

package tray

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/godbus/dbus/v5"
)

// busTimeout bounds connecting to the session bus.
const busTimeout = 3 * time.Second

var errBusTimeout = errors.New("the session bus did not answer within 3s")

// Available reports whether a tray can be shown, and if not, why in one
// line for the user. On Linux and the BSDs that needs a display (DISPLAY or
// WAYLAND_DISPLAY) and a reachable DBus session bus. It never starts a bus:
// with DBUS_SESSION_BUS_ADDRESS unset it only looks for the standard
// /run/user/<uid>/bus socket (as systemd user sessions provide) and never
// runs dbus-launch. It blocks for at most 3 seconds.
//
// When the tray can be shown but no tray host (StatusNotifierWatcher) is
// on the bus yet, ok is true and why says so: the icon appears once a host
// starts (stock GNOME needs the AppIndicator extension).
func Available(ctx context.Context) (ok bool, why string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false, "no display (DISPLAY/WAYLAND_DISPLAY unset): running headless"
	}
	host, err := sessionBus(ctx)
	if err != nil {
		return false, fmt.Sprintf("no DBus session bus (%v): running headless", err)
	}
	if !host {
		return true, "no system tray host on this desktop yet (" + watcherName + "; GNOME needs the AppIndicator extension): the icon appears when one starts"
	}
	return true, ""
}

// watcherName is the bus name of the tray host that icons register with.
const watcherName = "org.kde.StatusNotifierWatcher"

func checkRunnable(ctx context.Context) error {
	if _, err := sessionBus(ctx); err != nil {
		return fmt.Errorf("%w: no DBus session bus: %w", ErrUnavailable, err)
	}
	return nil
}

// sessionBus connects to the session bus, asks whether a tray host owns
// watcherName, and hangs up again. godbus would run dbus-launch when no bus
// is known; the NoAutoStartup variant does not.
func sessionBus(ctx context.Context) (hostPresent bool, err error) {
	ctx, cancel := context.WithTimeoutCause(ctx, busTimeout, errBusTimeout)
	defer cancel()
	conn, err := dbus.SessionBusPrivateNoAutoStartup(dbus.WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return false, fmt.Errorf("authenticate: %w", causeOr(ctx, err))
	}
	if err := conn.Hello(); err != nil {
		return false, fmt.Errorf("hello: %w", causeOr(ctx, err))
	}
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&has); err != nil {
		return false, fmt.Errorf("ask for a tray host: %w", causeOr(ctx, err))
	}
	return has, nil
}

// causeOr prefers the context's cause (a timeout) over the error it caused.
func causeOr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}
