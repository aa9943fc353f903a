package main

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/fetcher"
	"ipsync/publisher"
	"ipsync/tray"
)

func TestServerStatus(t *testing.T) {
	t.Parallel()
	a := publisher.Addrs{IPv4: netip.MustParseAddr("8.8.4.4")}
	b := publisher.Addrs{IPv4: netip.MustParseAddr("8.8.8.8")}
	rejected := fmt.Errorf("send: %w", publisher.ErrRejected)
	tests := []struct {
		name    string
		in      publisher.Status
		state   tray.State
		errKind string
	}{
		{"nothing known", publisher.Status{}, tray.Unknown, ""},
		{"published", publisher.Status{Addrs: a, SentAddrs: a}, tray.Current, ""},
		{"new address not yet sent", publisher.Status{Addrs: b, SentAddrs: a}, tray.Stale, ""},
		{"send failing", publisher.Status{Addrs: b, SentAddrs: a, Pending: true, LastError: errors.New("smtp down"), LastErrorSending: true}, tray.Error, "send"},
		{"send failing after the address came back", publisher.Status{Addrs: a, SentAddrs: a, LastError: errors.New("smtp down"), LastErrorSending: true}, tray.Error, "send"},
		{"rejected", publisher.Status{Addrs: a, SentAddrs: a, LastError: rejected, LastErrorSending: true}, tray.Error, "rejected"},
		{"sources failing", publisher.Status{Addrs: a, SentAddrs: a, LastError: errors.New("no agreed public address")}, tray.Unreachable, "sources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := serverStatus("office", tt.in)
			if got.State != tt.state || got.ErrKind != tt.errKind || got.Name != "office" {
				t.Errorf("serverStatus(%+v) = state %v kind %q, want %v %q", tt.in, got.State, got.ErrKind, tt.state, tt.errKind)
			}
			if tt.in.LastError != nil && got.Err == "" {
				t.Errorf("serverStatus() lost the error text")
			}
		})
	}
}

func TestClientStatus(t *testing.T) {
	t.Parallel()
	p := codec.Payload{Name: "office", IPv4: netip.MustParseAddr("8.8.8.8"), Seq: 2, IssuedAt: time.Unix(1e9, 0)}
	prev := codec.Payload{Name: "office", IPv4: netip.MustParseAddr("8.8.4.4"), Seq: 1}
	tests := []struct {
		name  string
		in    fetcher.Update
		state tray.State
		mode  string
		prev  string
	}{
		{"unknown", fetcher.Update{}, tray.Unknown, "", "invalid IP"},
		{"current over idle", fetcher.Update{State: fetcher.Current, Payload: p, Mode: fetcher.ModeIdle}, tray.Current, "IDLE (push)", "invalid IP"},
		{"changed", fetcher.Update{State: fetcher.Current, Payload: p, Previous: prev, Changed: true, Mode: fetcher.ModePoll}, tray.Current, "polling every 5m", "8.8.4.4"},
		{"shared mailbox", fetcher.Update{State: fetcher.Current, Payload: p, Mode: fetcher.ModePollShared}, tray.Current, "polling every 5m (shared mailbox)", "invalid IP"},
		{"fetching", fetcher.Update{State: fetcher.Current, Payload: p, Fetching: true}, tray.Working, "", "invalid IP"},
		{"stale", fetcher.Update{State: fetcher.Stale, Payload: p}, tray.Stale, "", "invalid IP"},
		{"unreachable", fetcher.Update{State: fetcher.Unreachable, Payload: p, Err: errors.New("probe failed")}, tray.Unreachable, "", "invalid IP"},
		{"error", fetcher.Update{State: fetcher.Error, Err: errors.New("login failed")}, tray.Error, "", "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := clientStatus(tt.in, 5*time.Minute)
			if got.State != tt.state || got.Mode != tt.mode || got.Previous.String() != tt.prev {
				t.Errorf("clientStatus(%s) = state %v mode %q previous %v, want %v %q %s", tt.name, got.State, got.Mode, got.Previous, tt.state, tt.mode, tt.prev)
			}
			if tt.in.Err != nil && got.Err == "" {
				t.Errorf("clientStatus(%s) lost the error text", tt.name)
			}
		})
	}
}
