package tray

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/gen2brain/beeep"

	"ipsync/health"
	"ipsync/icons"
)

// errorEvery is the shortest time between two notifications of the same
// kind of error.
const errorEvery = time.Hour

// notice is one desktop notification to show.
type notice struct {
	kind  string // "change", "stale", "unreachable", "recovered", "error", "signin", "action"
	title string
	body  string
	icon  string // icons name
}

// tracker remembers what earlier statuses looked like, so that each change
// is announced once. Its zero value is ready to use.
type tracker struct {
	addrs       string       // last known addresses, joined; "" = none yet
	last        health.State // last state other than Working
	errNotified bool         // an error was announced since the last Current
	errAt       map[string]time.Time
	signIn      bool   // a sign-in-needed status was seen and announced
	loginCmd    string // the command that signs in, for the notice
}

// maxErr is the longest error message, in runes, a notification shows.
const maxErr = 120

// next returns the notifications due when s is shown at now, and updates the
// tracker. With quiet set it still tracks, but returns nothing.
func (tr *tracker) next(role Role, defName string, s health.Status, now time.Time, quiet bool) []notice {
	s.Err = truncate(s.Err, maxErr)
	f := facts{name: orDefault(s.Name, defName), s: s, now: now}
	var out []notice
	addrs := joinAddrs(s.IPv4, s.IPv6)
	changed := addrs != "" && tr.addrs != "" && addrs != tr.addrs
	if changed {
		out = append(out, changeNotice(role, f.name, tr.addrs, addrs))
	}
	if addrs != "" {
		tr.addrs = addrs
	}
	if s.State == health.Working {
		return quietly(out, quiet)
	}
	if s.SignInNeeded {
		// One notice with the command replaces the error notices until
		// a status no longer needs a sign-in.
		if !tr.signIn {
			tr.signIn = true
			out = append(out, signInNotice(role, f.name, tr.loginCmd))
		}
		tr.last = s.State
		tr.errNotified = true
		return quietly(out, quiet)
	}
	tr.signIn = false
	prev := tr.last
	tr.last = s.State
	if a, ok := announcements[s.State]; tr.due(s, prev, changed, now) && ok {
		f.shown = tr.addrs
		out = append(out, a.write(role, f))
	}
	return quietly(out, quiet)
}

// due reports whether s, shown after a status in state prev, is announced,
// and keeps what later calls need: an error is announced once per kind per
// errorEvery, a recovery only after a stale, unreachable or announced error
// state, and never together with an address change.
func (tr *tracker) due(s health.Status, prev health.State, changed bool, now time.Time) bool {
	switch s.State {
	case health.Stale, health.Unreachable, health.AuthRefused:
		return prev != s.State
	case health.Current:
		recovering := prev == health.Stale || prev == health.Unreachable || prev == health.AuthRefused || (prev == health.Error && tr.errNotified)
		tr.errNotified = false
		return recovering && !changed
	case health.Error:
		kind := orDefault(s.ErrKind, s.Err)
		if at, ok := tr.errAt[kind]; ok && now.Sub(at) < errorEvery {
			return false
		}
		if tr.errAt == nil {
			tr.errAt = make(map[string]time.Time)
		}
		tr.errAt[kind] = now
		tr.errNotified = true
		return true
	}
	return false
}

// facts are what a notice is written from.
type facts struct {
	name  string // the server's name
	shown string // the addresses shown, or the last known ones; "" = none
	s     health.Status
	now   time.Time
}

// wording writes the title and body of a notice.
type wording func(f facts) (title, body string)

// announcement is how a state is announced to each role.
type announcement struct {
	kind           string // notice.kind
	client, server wording
}

// announcements holds, per state, the notice that announces it; Current's
// announces a recovery. States without an entry (Unknown, Working) are
// never announced.
var announcements = map[health.State]announcement{
	health.Stale: {"stale",
		func(f facts) (string, string) {
			body := "No update"
			if !f.s.IssuedAt.IsZero() {
				body += " since " + ago(f.now.Sub(f.s.IssuedAt))
			}
			if f.shown != "" {
				body += "; last known address " + f.shown
			}
			return f.name + " may be offline", body + "."
		},
		func(f facts) (string, string) {
			body := orDefault(f.shown, "The address") + " has not been published yet"
			if !f.s.LastSent.IsZero() {
				body += "; last message sent " + ago(f.now.Sub(f.s.LastSent))
			}
			return f.name + ": address not delivered", body + "."
		}},
	health.Unreachable: {"unreachable",
		func(f facts) (string, string) {
			return f.name + " is unreachable", orDefault(f.shown, "The server") + " does not answer." + prefixed(" ", f.s.Err)
		},
		func(f facts) (string, string) {
			return f.name + ": public address unknown", orDefault(f.s.Err, "The address sources do not answer.")
		}},
	health.Current: {"recovered",
		func(f facts) (string, string) {
			return f.name + " is back", orDefault(f.shown, "The address") + " is current again."
		},
		func(f facts) (string, string) {
			return f.name + ": publishing again", orDefault(f.shown, "The address") + " is published."
		}},
	health.AuthRefused: {"password-refused",
		func(f facts) (string, string) {
			return f.name + ": mail login refused", orDefault(f.s.Err, "The mail server refused the login: check mail.password (or, with mail.auth: oauth2, run ipsync login).")
		},
		func(f facts) (string, string) {
			return f.name + ": mail login refused", orDefault(f.s.Err, "The mail server refused the login: check mail.password (or, with mail.auth: oauth2, run ipsync login).")
		}},
	health.Error: {"error",
		func(f facts) (string, string) {
			return f.name + ": cannot check for updates", orDefault(f.s.Err, "See the log for details.")
		},
		func(f facts) (string, string) {
			return f.name + ": cannot publish", orDefault(f.s.Err, "See the log for details.")
		}},
}

// write is the notice that announces f.s.State to role, with that state's
// icon.
func (a announcement) write(role Role, f facts) notice {
	words := a.client
	if role == RoleServer {
		words = a.server
	}
	n := notice{kind: a.kind, icon: role.String() + "-" + f.s.State.Icon()}
	n.title, n.body = words(f)
	return n
}

// signInNotice says that the mail provider wants a new sign-in, and how.
func signInNotice(role Role, name, cmd string) notice {
	if cmd == "" {
		cmd = loginCommand("")
	}
	return notice{kind: "signin", title: name + ": sign-in needed",
		body: "The mail provider no longer accepts ipsync's sign-in, so " + map[Role]string{RoleClient: "updates stop", RoleServer: "publishing stops"}[role] +
			". Choose Sign in… in the ipsync menu, or run: " + cmd,
		icon: role.String() + "-error"}
}

// loginCommand is the command line that signs in with the config at path,
// quoted for the shell of goos where needed.
func loginCommand(path string) string { return loginCommandFor(runtime.GOOS, path) }

func loginCommandFor(goos, path string) string {
	cmd := "ipsync login"
	if path == "" {
		return cmd
	}
	special := " \t'\"$`&;|<>()*?[]{}~!#"
	if goos != "windows" {
		special += `\`
	}
	if strings.ContainsAny(path, special) {
		if goos == "windows" {
			path = `"` + path + `"` // cmd.exe and PowerShell
		} else {
			path = "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
		}
	}
	return cmd + " --config " + path
}

// changeNotice announces that the addresses went from old to new.
func changeNotice(role Role, name, old, new string) notice {
	title := name + " has a new address"
	if role == RoleServer {
		title = name + ": public address changed"
	}
	return notice{kind: "change", title: title, body: old + " → " + new, icon: role.String() + "-current"}
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
