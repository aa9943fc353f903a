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
func Available(ctx context.Context) (bool, string) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false, "no display (DISPLAY/WAYLAND_DISPLAY unset): running headless"
	}
	if err := sessionBus(ctx); err != nil {
		return false, fmt.Sprintf("no DBus session bus (%v): running headless", err)
	}
	return true, ""
}

func checkRunnable(ctx context.Context) error {
	if err := sessionBus(ctx); err != nil {
		return fmt.Errorf("%w: no DBus session bus: %w", ErrUnavailable, err)
	}
	return nil
}

// sessionBus connects to the session bus and hangs up again. godbus would
// run dbus-launch when no bus is known; the NoAutoStartup variant does not.
func sessionBus(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, busTimeout, errBusTimeout)
	defer cancel()
	conn, err := dbus.SessionBusPrivateNoAutoStartup(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return fmt.Errorf("authenticate: %w", causeOr(ctx, err))
	}
	if err := conn.Hello(); err != nil {
		return fmt.Errorf("hello: %w", causeOr(ctx, err))
	}
	return nil
}

// causeOr prefers the context's cause (a timeout) over the error it caused.
func causeOr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}
