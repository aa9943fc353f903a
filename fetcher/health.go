package fetcher

import (
	"errors"
	"strings"
	"time"

	"ipsync/health"
	"ipsync/mailconn"
)

// Health is what the tray shows for u: the address, how the mailbox is
// watched (pollEvery is Options.PollEvery, for "polling every 5m"), and a
// short, secret-free message when something is wrong.
func (u Update) Health(pollEvery time.Duration) health.Status {
	s := health.Status{
		State:     u.State,
		Name:      u.Payload.Name,
		IPv4:      u.Payload.IPv4,
		IPv6:      u.Payload.IPv6,
		IssuedAt:  u.Payload.IssuedAt,
		LastCheck: u.LastCheck,
	}
	if u.Changed {
		s.Previous = u.Previous.IPv4
		if !s.Previous.IsValid() {
			s.Previous = u.Previous.IPv6
		}
	}
	switch u.Mode {
	case ModeIdle:
		s.Mode = "IDLE (push)"
	case ModePoll:
		s.Mode = "polling every " + shortDuration(pollEvery)
	case ModePollShared:
		s.Mode = "polling every " + shortDuration(pollEvery) + " (shared mailbox)"
	}
	switch u.State {
	case Current, Stale:
	case Unreachable:
		s.Err, s.ErrKind = "server not reachable", "probe"
	case Error, AuthRefused:
		s.Err, s.ErrKind = "mail error", "mail"
		if u.State == AuthRefused {
			s.Err, s.ErrKind = "the mail server refused the password: check mail.password", "password"
		}
		if u.Err != nil {
			s.Err = u.Err.Error()
		}
		if errors.Is(u.Err, mailconn.ErrTokenRefused) {
			s.Err = "OAuth2 access token refused, a refreshed one too: check the app's mail scopes in mail.oauth2 and that the mailbox allows IMAP (" + u.Err.Error() + ")"
		}
	default:
		s.State = Unknown
	}
	if u.SignInNeeded {
		s.SignInNeeded = true
		s.Err, s.ErrKind = "sign-in needed: run ipsync login, or Sign in… here", "signin"
		if u.Err != nil {
			s.Err += " (" + u.Err.Error() + ")"
		}
	}
	if u.Problem != "" {
		// Why no address is current (another key, another name, a clock
		// ahead): shown whatever the state.
		s.Err, s.ErrKind = u.Problem, "problem"
		s.LastKnownOnly = true
	}
	if u.Fetching {
		s.State = health.Working
	}
	return s
}

// shortDuration writes d without zero units: "5m", "1h", "90s".
func shortDuration(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if t, ok := strings.CutSuffix(s, zero); ok {
			s = t + zero[:1]
		}
	}
	return s
}
