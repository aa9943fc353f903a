package fetcher

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/health"
)

func TestUpdateHealth(t *testing.T) {
	t.Parallel()
	p := codec.Payload{Name: "office", IPv4: netip.MustParseAddr("8.8.8.8"), Seq: 2, IssuedAt: time.Unix(1e9, 0)}
	prev := codec.Payload{Name: "office", IPv4: netip.MustParseAddr("8.8.4.4"), Seq: 1}
	prev6 := codec.Payload{Name: "office", IPv6: netip.MustParseAddr("2001:4860:4860::8888"), Seq: 1}
	long := errors.New(strings.Repeat("x", 300))
	tests := []struct {
		name    string
		in      Update
		state   health.State
		mode    string
		prev    string
		err     string
		errKind string
	}{
		{"unknown", Update{}, health.Unknown, "", "invalid IP", "", ""},
		{"current over idle", Update{State: Current, Payload: p, Mode: ModeIdle}, health.Current, "IDLE (push)", "invalid IP", "", ""},
		{"changed", Update{State: Current, Payload: p, Previous: prev, Changed: true, Mode: ModePoll}, health.Current, "polling every 5m", "8.8.4.4", "", ""},
		{"changed from IPv6 only", Update{State: Current, Payload: p, Previous: prev6, Changed: true}, health.Current, "", "2001:4860:4860::8888", "", ""},
		{"previous kept but not changed", Update{State: Current, Payload: p, Previous: prev}, health.Current, "", "invalid IP", "", ""},
		{"shared mailbox", Update{State: Current, Payload: p, Mode: ModePollShared}, health.Current, "polling every 5m (shared mailbox)", "invalid IP", "", ""},
		{"fetching", Update{State: Current, Payload: p, Fetching: true}, health.Working, "", "invalid IP", "", ""},
		{"stale", Update{State: Stale, Payload: p}, health.Stale, "", "invalid IP", "", ""},
		{"unreachable", Update{State: Unreachable, Payload: p, Err: errors.New("probe failed")}, health.Unreachable, "", "invalid IP", "server not reachable", "probe"},
		{"error", Update{State: Error, Err: errors.New("login failed")}, health.Error, "", "invalid IP", "login failed", "mail"},
		{"error without cause", Update{State: Error}, health.Error, "", "invalid IP", "mail error", "mail"},
		{"long error is whole", Update{State: Error, Err: long}, health.Error, "", "invalid IP", long.Error(), "mail"},
		{"out of range", Update{State: health.State(42), Payload: p}, health.Unknown, "", "invalid IP", "", ""},
		{"password refused", Update{State: AuthRefused}, health.AuthRefused, "", "invalid IP", "the mail server refused the password: check mail.password", "password"},
		{"password refused, explained", Update{State: AuthRefused, Err: errors.New("mail.password: refused")}, health.AuthRefused, "", "invalid IP", "mail.password: refused", "password"},
		{"problem shown in any state", Update{State: Stale, Payload: p, Problem: "3 messages signed by another key"}, health.Stale, "", "invalid IP", "3 messages signed by another key", "problem"},
		{"problem beside a current address", Update{State: Current, Payload: p, Problem: "messages are from `office`, this client is `office-pc`"}, health.Current, "", "invalid IP", "messages are from `office`, this client is `office-pc`", "problem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in.Health(5 * time.Minute)
			if got.State != tt.state || got.Mode != tt.mode || got.Previous.String() != tt.prev || got.Err != tt.err || got.ErrKind != tt.errKind {
				t.Errorf("Update{%s}.Health() = state %v mode %q previous %v err %q kind %q, want %v %q %s %q %q",
					tt.name, got.State, got.Mode, got.Previous, got.Err, got.ErrKind, tt.state, tt.mode, tt.prev, tt.err, tt.errKind)
			}
			if got.LastKnownOnly != (tt.in.Problem != "") {
				t.Errorf("Update{%s}.Health().LastKnownOnly = %v, want %v: with a Problem the address is only the last known one", tt.name, got.LastKnownOnly, tt.in.Problem != "")
			}
			if got.Name != tt.in.Payload.Name || got.IPv4 != tt.in.Payload.IPv4 || got.IssuedAt != tt.in.Payload.IssuedAt {
				t.Errorf("Update{%s}.Health() = %+v, want the payload's name, address and issue time", tt.name, got)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{5 * time.Minute, "5m"}, {time.Hour, "1h"}, {90 * time.Second, "1m30s"}, {10 * time.Second, "10s"},
		{90 * time.Minute, "1h30m"}, {2*time.Hour + 5*time.Second, "2h0m5s"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
