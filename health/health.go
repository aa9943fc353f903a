// Package health is the words a running role uses to tell the user how it is
// doing: a State, which picks the tray icon, and a Status, everything the
// tray shows.
//
// The fetcher (client) and the publisher (server) each describe themselves
// as a Status (fetcher.Update.Health, publisher.Status.Health); main hands
// that to the tray, which only renders it. This package imports nothing of
// ipsync, so the three can share it without importing each other.
package health

import (
	"fmt"
	"net/netip"
	"time"
)

// State is how a role is doing. Each state has its own icon.
type State int

// The states. A State outside this list is shown as Unknown.
const (
	// Unknown: nothing checked yet. A client may still show the last
	// address it accepted before a restart.
	Unknown State = iota
	// Current: client: the address came in a recent, valid message;
	// server: the current address has been published.
	Current
	// Stale: client: no message within twice the heartbeat plus grace, so
	// the server may be down; server: the current address has not been
	// delivered yet (sending keeps failing or is queued).
	Stale
	// Unreachable: client: the optional probe of the server's address
	// fails; server: the public address cannot be discovered (sources fail
	// or disagree).
	Unreachable
	// Error: client: the mailbox cannot be read (login, connection; a
	// connection-limit refusal on a shared mailbox is never Error);
	// server: mail cannot be sent. Status.Err says why.
	Error
	// Working: a fetch (client) or publish (server) is in progress. The
	// other Status fields still describe the last result.
	Working
	// AuthRefused: the mail server refused the user name or password.
	// Retrying cannot help until the configuration changes, so the role
	// backs off to hours and the tray announces it once, on entering;
	// Status.Err names the setting to fix. Shown with the error icon.
	AuthRefused
)

var stateNames = [...]string{"unknown", "current", "stale", "unreachable", "error", "working", "password refused"}

// String returns the lower-case name of the state, e.g. "stale".
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// Icon is the state part of the icon names in package icons, e.g.
// "stale": AuthRefused shares Error's icon, and a State outside the list
// is shown as "unknown".
func (s State) Icon() string {
	switch {
	case s == AuthRefused:
		return Error.String()
	case s < Unknown || s > AuthRefused:
		return Unknown.String()
	}
	return s.String()
}

// Status is what the tray shows for a role. Zero fields mean "not known
// yet" and are left out of the texts.
type Status struct {
	// State is the health shown by the icon.
	State State
	// Name is the server's name (e.g. "office"); "" = the tray's own.
	Name string
	// IPv4 and IPv6 are the current public addresses; a zero Addr means
	// none for that family.
	IPv4, IPv6 netip.Addr
	// Previous is the address shown before the last change; zero = none.
	Previous netip.Addr
	// IssuedAt (client) is when the server issued the shown address.
	IssuedAt time.Time
	// LastCheck is when the mailbox (client) or the address sources
	// (server) were last checked.
	LastCheck time.Time
	// Mode (client) says how the mailbox is watched, e.g. "IDLE (push)" or
	// "polling every 5m".
	Mode string
	// Err is a message for the user saying what is wrong (e.g. "mail login
	// failed"), in any State; the tray cuts it to fit. It is shown in the
	// tooltip, the menu and notifications, so it must never contain
	// secrets.
	Err string
	// ErrKind groups errors for notification rate limiting (at most one
	// notification per kind per hour), e.g. "login" or "connect";
	// "" = Err itself.
	ErrKind string
	// LastSent (server) is when the last message was sent.
	LastSent time.Time
	// NextHeartbeat (server) is when the next unchanged-address message is
	// due.
	NextHeartbeat time.Time
	// Seq (server) is the sequence number of the last message sent;
	// 0 = none.
	Seq uint64
	// Paused (server) is true while publishing is paused.
	Paused bool
	// SignInNeeded is true when the mail provider no longer accepts the
	// stored OAuth2 sign-in (mail.auth: oauth2): the refresh token was
	// revoked or has expired, or none is stored yet. Retrying does not help
	// and logins stop until the user signs in again (`ipsync login`, or the
	// tray's "Sign in…"). It comes with any State, usually Error; Err may
	// say more.
	SignInNeeded bool
	// LastKnownOnly (client) is true when the address is only the last one
	// this client accepted, not the server's newest: the mailbox holds
	// messages for it that it cannot accept, and Err says why (another
	// key, another name, a clock ahead). The tray then presents the
	// address as "last known", with its age, never as current.
	LastKnownOnly bool
}
