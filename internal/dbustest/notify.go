package dbustest

import (
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// The notification daemon's well-known name (also its interface) and
// object path (Desktop Notifications Specification).
const (
	NotificationsName = "org.freedesktop.Notifications"
	NotificationsPath = dbus.ObjectPath("/org/freedesktop/Notifications")
)

// Notification is one Notify call.
type Notification struct {
	App     string // app_name
	Icon    string // app_icon (a name or path; images come in Hints)
	Summary string
	Body    string
	Actions []string
	Hints   map[string]dbus.Variant
	Timeout int32 // expire_timeout in ms; -1 = the server's default
}

// Notifications records the Notify calls a desktop receives, in the order
// they arrive. Its methods are safe for concurrent use. Get it from
// Desktop.Notifications.
type Notifications struct {
	mu    sync.Mutex
	calls []Notification
	taken int           // calls returned by Next so far
	more  chan struct{} // signalled (without blocking) on each call
}

func newNotifications() *Notifications {
	return &Notifications{more: make(chan struct{}, 1)}
}

func (n *Notifications) add(c Notification) uint32 {
	n.mu.Lock()
	n.calls = append(n.calls, c)
	id := uint32(len(n.calls))
	n.mu.Unlock()
	select {
	case n.more <- struct{}{}:
	default:
	}
	return id
}

// Next returns the oldest call not yet returned by Next, waiting up to
// Timeout for one to arrive.
func (n *Notifications) Next(t testing.TB) Notification {
	t.Helper()
	timeout := time.NewTimer(Timeout)
	defer timeout.Stop()
	for {
		n.mu.Lock()
		if n.taken < len(n.calls) {
			c := n.calls[n.taken]
			n.taken++
			n.mu.Unlock()
			return c
		}
		n.mu.Unlock()
		select {
		case <-n.more:
		case <-timeout.C:
			t.Fatal("timed out waiting for a Notify call")
		}
	}
}

// All returns every call received so far, including those returned by
// Next. It does not wait.
func (n *Notifications) All() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.calls...)
}

// notifyServer is the org.freedesktop.Notifications object; its exported
// methods are the DBus methods.
type notifyServer struct {
	n *Notifications
}

func (s *notifyServer) Notify(app string, replaces uint32, icon, summary, body string,
	actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	return s.n.add(Notification{App: app, Icon: icon, Summary: summary, Body: body,
		Actions: actions, Hints: hints, Timeout: timeout}), nil
}

func (s *notifyServer) CloseNotification(id uint32) *dbus.Error { return nil }

func (s *notifyServer) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"body"}, nil
}

func (s *notifyServer) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "ipsync-test", "ipsync", "1", "1.2", nil
}
