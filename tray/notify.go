package tray

import (
	"context"
	"fmt"
	"time"

	"github.com/gen2brain/beeep"

	"ipsync/icons"
)

// errorEvery is the shortest time between two notifications of the same
// kind of error.
const errorEvery = time.Hour

// notice is one desktop notification to show.
type notice struct {
	kind  string // "change", "stale", "unreachable", "recovered", "error", "action"
	title string
	body  string
	icon  string // icons name
}

// tracker remembers what earlier statuses looked like, so that each change
// is announced once. Its zero value is ready to use.
type tracker struct {
	addrs       string // last known addresses, joined; "" = none yet
	last        State  // last state other than Working
	errNotified bool   // an error was announced since the last Current
	errAt       map[string]time.Time
}

// next returns the notifications due when s is shown at now, and updates the
// tracker. With quiet set it still tracks, but returns nothing.
func (tr *tracker) next(role Role, defName string, s Status, now time.Time, quiet bool) []notice {
	name := s.Name
	if name == "" {
		name = defName
	}
	r := role.String()
	var out []notice
	addrs := joinAddrs(s.IPv4, s.IPv6)
	changed := false
	if addrs != "" {
		if tr.addrs != "" && addrs != tr.addrs {
			changed = true
			title := name + " has a new address"
			if role == RoleServer {
				title = name + ": public address changed"
			}
			out = append(out, notice{kind: "change", title: title, body: tr.addrs + " → " + addrs, icon: r + "-current"})
		}
		tr.addrs = addrs
	}
	if s.State == Working {
		return quietly(out, quiet)
	}
	prev := tr.last
	tr.last = s.State
	shown := orDefault(addrs, tr.addrs)
	switch s.State {
	case Stale:
		if prev == Stale {
			break
		}
		n := notice{kind: "stale", icon: r + "-stale"}
		if role == RoleServer {
			n.title = name + ": address not delivered"
			n.body = orDefault(shown, "The address") + " has not been published yet"
			if !s.LastSent.IsZero() {
				n.body += "; last message sent " + ago(now.Sub(s.LastSent))
			}
			n.body += "."
		} else {
			n.title = name + " may be offline"
			n.body = "No update"
			if !s.IssuedAt.IsZero() {
				n.body += " since " + ago(now.Sub(s.IssuedAt))
			}
			if shown != "" {
				n.body += "; last known address " + shown
			}
			n.body += "."
		}
		out = append(out, n)
	case Unreachable:
		if prev == Unreachable {
			break
		}
		n := notice{kind: "unreachable", icon: r + "-unreachable"}
		if role == RoleServer {
			n.title = name + ": public address unknown"
			n.body = orDefault(s.Err, "The address sources do not answer.")
		} else {
			n.title = name + " is unreachable"
			n.body = orDefault(shown, "The server") + " does not answer." + prefixed(" ", s.Err)
		}
		out = append(out, n)
	case Current:
		recovering := prev == Stale || prev == Unreachable || (prev == Error && tr.errNotified)
		tr.errNotified = false
		if !recovering || changed {
			break
		}
		n := notice{kind: "recovered", icon: r + "-current"}
		if role == RoleServer {
			n.title = name + ": publishing again"
			n.body = orDefault(shown, "The address") + " is published."
		} else {
			n.title = name + " is back"
			n.body = orDefault(shown, "The address") + " is current again."
		}
		out = append(out, n)
	case Error:
		kind := orDefault(s.ErrKind, s.Err)
		if at, ok := tr.errAt[kind]; ok && now.Sub(at) < errorEvery {
			break
		}
		if tr.errAt == nil {
			tr.errAt = make(map[string]time.Time)
		}
		tr.errAt[kind] = now
		tr.errNotified = true
		n := notice{kind: "error", icon: r + "-error", body: orDefault(s.Err, "See the log for details.")}
		if role == RoleServer {
			n.title = name + ": cannot publish"
		} else {
			n.title = name + ": cannot check for updates"
		}
		out = append(out, n)
	}
	return quietly(out, quiet)
}

func quietly(out []notice, quiet bool) []notice {
	if quiet {
		return nil
	}
	return out
}

// notifyLoop shows notices one at a time until ctx is done, so a slow
// notification daemon never holds up the menu.
func (t *Tray) notifyLoop(ctx context.Context, notes <-chan notice) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-notes:
			if err := t.notifier.Notify(n.title, n.body, icons.PNG(n.icon)); err != nil {
				t.log.Warn("desktop notification failed", "kind", n.kind, "err", err)
			}
		}
	}
}

// beeepNotifier shows notifications with github.com/gen2brain/beeep.
type beeepNotifier struct{}

var _ Notifier = beeepNotifier{}

func newBeeep() beeepNotifier {
	beeep.AppName = "ipsync"
	return beeepNotifier{}
}

// Notify implements Notifier. beeep needs a non-nil icon: it gets the PNG
// bytes (sent as image data over DBus, or converted to a file elsewhere).
func (beeepNotifier) Notify(title, message string, icon []byte) error {
	if icon == nil {
		icon = icons.PNG("client-unknown")
	}
	if err := beeep.Notify(title, message, icon); err != nil {
		return fmt.Errorf("show notification: %w", err)
	}
	return nil
}
