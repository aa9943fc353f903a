package publisher

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"ipsync/health"
)

func TestStatusHealth(t *testing.T) {
	t.Parallel()
	a := Addrs{IPv4: netip.MustParseAddr("8.8.4.4")}
	b := Addrs{IPv4: netip.MustParseAddr("8.8.8.8")}
	rejected := fmt.Errorf("send: %w", ErrRejected)
	authErr := fmt.Errorf("send mail: %w (%w): 535 5.7.8 authentication failed", ErrAuthRefused, ErrRejected)
	tests := []struct {
		name    string
		in      Status
		state   health.State
		err     string
		errKind string
	}{
		{"nothing known", Status{}, health.Unknown, "", ""},
		{"published", Status{Addrs: a, SentAddrs: a}, health.Current, "", ""},
		{"new address not yet sent", Status{Addrs: b, SentAddrs: a}, health.Stale, "", ""},
		{"same address waiting for a retry", Status{Addrs: a, SentAddrs: a, Pending: true}, health.Stale, "", ""},
		{"send failing", Status{Addrs: b, SentAddrs: a, Pending: true, LastError: errors.New("smtp down"), LastErrorSending: true}, health.Error, "smtp down", "send"},
		{"send failing after the address came back", Status{Addrs: a, SentAddrs: a, LastError: errors.New("smtp down"), LastErrorSending: true}, health.Error, "smtp down", "send"},
		{"rejected", Status{Addrs: a, SentAddrs: a, LastError: rejected, LastErrorSending: true}, health.Error, rejected.Error(), "rejected"},
		{"sources failing", Status{Addrs: a, SentAddrs: a, LastError: errors.New("no agreed public address")}, health.Unreachable, "no agreed public address", "sources"},
		{"password refused for sending", Status{Addrs: a, SentAddrs: a, Pending: true, LastError: authErr, LastErrorSending: true,
			PasswordRefused: true, PasswordRefusedBy: "smtp", NextLogin: time.Date(2026, 1, 1, 10, 42, 0, 0, time.UTC)},
			health.AuthRefused, "password refused for sending: check mail.password (Gmail, Yahoo, iCloud and Outlook need an app password) — " +
				authErr.Error() + "; next try 10:42 (or Publish now)", "password"},
		{"password refused for retention only", Status{Addrs: a, SentAddrs: a, RetentionError: authErr,
			PasswordRefused: true, PasswordRefusedBy: "imap"},
			health.Current, "password refused for mailbox retention: check mail.password (Gmail, Yahoo, iCloud and Outlook need an app password) — " +
				authErr.Error(), "password"},
		{"a recipient refused", Status{Addrs: a, SentAddrs: a, Recipients: []RecipientProblem{{Addr: "pc3@example.com", Kind: ProblemRefused,
			Reply: "550 5.1.1 No such user", Since: time.Date(2026, 1, 1, 10, 42, 0, 0, time.UTC)}}},
			health.Current, "pc3@example.com: refused 550 5.1.1 No such user since 10:42", "recipient"},
		{"sources failing before any address", Status{LastError: errors.New("no agreed public address")}, health.Unreachable, "no agreed public address", "sources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in.Health()
			if got.State != tt.state || got.Err != tt.err || got.ErrKind != tt.errKind {
				t.Errorf("Status{%s}.Health() = state %v err %q kind %q, want %v %q %q", tt.name, got.State, got.Err, got.ErrKind, tt.state, tt.err, tt.errKind)
			}
		})
	}
}

func TestStatusHealthCarriesFacts(t *testing.T) {
	t.Parallel()
	at := time.Unix(1e9, 0)
	s := Status{
		Addrs:         Addrs{IPv4: netip.MustParseAddr("8.8.4.4"), IPv6: netip.MustParseAddr("2001:4860:4860::8844")},
		LastCheck:     at,
		LastSent:      at.Add(-time.Minute),
		NextHeartbeat: at.Add(time.Hour),
		LastSeq:       7,
		Paused:        true,
	}
	s.SentAddrs = s.Addrs
	want := health.Status{State: health.Current, IPv4: s.Addrs.IPv4, IPv6: s.Addrs.IPv6, LastCheck: at,
		LastSent: at.Add(-time.Minute), NextHeartbeat: at.Add(time.Hour), Seq: 7, Paused: true}
	if got := s.Health(); got != want {
		t.Errorf("Health() = %+v, want %+v", got, want)
	}
}
