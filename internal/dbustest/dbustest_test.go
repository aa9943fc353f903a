package dbustest

import (
	"context"
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"
)

// recorder counts a testing.TB's Errorf and Logf calls instead of
// reporting them.
type recorder struct {
	testing.TB
	errors, logs int
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(string, ...any)     { r.errors++ }
func (r *recorder) Logf(string, ...any)       { r.logs++ }
func (r *recorder) Fatalf(f string, a ...any) { r.TB.Fatalf(f, a...) }

func TestCheckRaces(t *testing.T) {
	const (
		library = "==================\nWARNING: DATA RACE\nWrite at 0x1 by goroutine 47:\n  fyne.io/systray.refresh()\n==================\n"
		ours    = "==================\nWARNING: DATA RACE\nRead at 0x2 by goroutine 9:\n  ipsync/tray.(*Tray).SetStatus()\n==================\n"
		inMain  = "==================\nWARNING: DATA RACE\nRead at 0x3 by goroutine 5:\n  main.(*ui).run.func1()\n==================\n"
	)
	tests := []struct {
		name         string
		stderr       string
		errors, logs int
	}{
		{"none", "time=… level=INFO msg=started\n", 0, 0},
		{"library only", library, 0, 1},
		{"ours", ours, 1, 0},
		{"package main", inMain, 1, 0},
		{"all three", library + ours + inMain, 2, 1},
		{"unterminated", "WARNING: DATA RACE\n  ipsync/tray.x()", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &recorder{TB: t}
			CheckRaces(r, tt.stderr, "ipsync/", "\n  main.")
			if r.errors != tt.errors || r.logs != tt.logs {
				t.Errorf("CheckRaces(%q) = %d errors, %d logs; want %d, %d", tt.stderr, r.errors, r.logs, tt.errors, tt.logs)
			}
		})
	}
}

func TestNotifications(t *testing.T) {
	d := StartDesktop(t)
	app := Connect(t, d.Addr)
	obj := app.Object(NotificationsName, NotificationsPath)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		var id uint32
		err := obj.CallWithContext(ctx, NotificationsName+".Notify", 0, "app", uint32(0), "", fmt.Sprint("summary ", i), "body",
			[]string{}, map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(1))}, int32(-1)).Store(&id)
		cancel()
		if err != nil || id != uint32(i+1) {
			t.Fatalf("Notify #%d = %d, %v; want id %d", i+1, id, err, i+1)
		}
	}
	for i := range 2 {
		if got, want := d.Notifications.Next(t).Summary, fmt.Sprint("summary ", i); got != want {
			t.Errorf("Next().Summary = %q, want %q", got, want)
		}
	}
	if got := d.Notifications.All(); len(got) != 2 || got[0].App != "app" || got[1].Hints["urgency"].Value() != byte(1) {
		t.Errorf("All() = %+v, want the two calls with their app name and hints", got)
	}
}
