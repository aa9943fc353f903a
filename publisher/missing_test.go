package publisher

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncBuffer is a log sink the loop writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMissingFamilyIsHeld(t *testing.T) {
	t.Parallel()
	var (
		v4    = netip.MustParseAddr("203.0.113.2")
		v6    = netip.MustParseAddr("2001:db8::2")
		v4new = netip.MustParseAddr("203.0.113.9")
		v6new = netip.MustParseAddr("2001:db8::9")
		both  = Addrs{IPv4: v4, IPv6: v6}
		only4 = Addrs{IPv4: v4}
		only6 = Addrs{IPv6: v6}
		fail  = Addrs{} // the check fails (no source agreed at all)
	)
	tests := []struct {
		name    string
		missing int     // Options.MissingChecks
		checks  []Addrs // one per check, every 5m from 0
		want    []string
		addrs   Addrs // Status().Addrs at the end
		logs    []string
	}{
		{"ipv6 missing for 1 check", 0, []Addrs{both, only4, both}, []string{"0s " + both.String()}, both,
			[]string{"level=INFO msg=\"no ipv6 address found in this check; keeping the last known one\""}},
		{"ipv6 missing for 2 checks", 0, []Addrs{both, only4, only4}, []string{"0s " + both.String()}, both, nil},
		{"ipv6 missing for 3 checks", 0, []Addrs{both, only4, only4, only4},
			[]string{"0s " + both.String(), "15m0s " + only4.String()}, only4,
			[]string{"level=WARN msg=\"no ipv6 address found for several checks in a row; dropping it\""}},
		{"ipv4 changes while ipv6 is held", 0, []Addrs{both, only4, {IPv4: v4new}},
			[]string{"0s " + both.String(), "10m0s " + Addrs{IPv4: v4new, IPv6: v6}.String()}, Addrs{IPv4: v4new, IPv6: v6}, nil},
		{"ipv6 returns with a different address", 0, []Addrs{both, only4, {IPv4: v4, IPv6: v6new}},
			[]string{"0s " + both.String(), "10m0s " + Addrs{IPv4: v4, IPv6: v6new}.String()}, Addrs{IPv4: v4, IPv6: v6new}, nil},
		{"count restarts when the family returns", 0, []Addrs{both, only4, only4, both, only4, only4},
			[]string{"0s " + both.String()}, both, nil},
		{"failed checks neither count nor reset", 0, []Addrs{both, only4, fail, fail, only4, only4},
			[]string{"0s " + both.String(), "25m0s " + only4.String()}, only4, nil},
		{"ipv4 missing is held too", 0, []Addrs{both, only6, only6}, []string{"0s " + both.String()}, both,
			[]string{"level=INFO msg=\"no ipv4 address found in this check; keeping the last known one\""}},
		{"MissingChecks 1 drops at once", 1, []Addrs{both, only4},
			[]string{"0s " + both.String(), "5m0s " + only4.String()}, only4, nil},
		{"MissingChecks 5", 5, []Addrs{both, only4, only4, only4, only4, only4},
			[]string{"0s " + both.String(), "25m0s " + only4.String()}, only4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				disc := &fakeDisc{a: tt.checks[0]}
				m := &recMailer{t: t}
				logs := &syncBuffer{}
				opts := baseOptions(disc, m, &memStore{})
				opts.MissingChecks = tt.missing
				opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
				l := startLoop(t, opts)
				defer l.stop()
				synctest.Wait()
				for _, a := range tt.checks[1:] {
					var err error
					if a.IsZero() {
						err = errors.New("no sources agree")
					}
					disc.set(a, err)
					time.Sleep(DefaultCheckEvery)
					synctest.Wait()
				}

				var got []string
				for _, a := range m.delivered() {
					got = append(got, fmt.Sprintf("%v %v", a.at.Sub(t0), Addrs{IPv4: a.p.IPv4, IPv6: a.p.IPv6}))
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("messages for checks %v = %q, want %q", tt.checks, got, tt.want)
				}
				if st := l.p.Status(); st.Addrs != tt.addrs {
					t.Errorf("Status().Addrs = %v, want %v", st.Addrs, tt.addrs)
				}
				for _, want := range tt.logs {
					if !strings.Contains(logs.String(), want) {
						t.Errorf("logs = %s\nwant a line with %s", logs, want)
					}
				}
			})
		})
	}
}

func TestMissingChecksValidated(t *testing.T) {
	t.Parallel()
	opts := baseOptions(nil, &recMailer{}, &memStore{})
	opts.MissingChecks = -1
	if _, err := New(opts); err == nil {
		t.Errorf("New(MissingChecks -1) = nil error, want an error")
	}
}

// TestSwitchedOffFamilyIsNotHeld: a family turned off in the config
// (IPv6Off) is dropped at the next check, not held like a failing one.
func TestSwitchedOffFamilyIsNotHeld(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		v4, v6 := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("2001:db8::2")
		t0 := time.Now()
		disc := &fakeDisc{a: Addrs{IPv4: v4, IPv6: v6}}
		m := &recMailer{t: t}
		opts := baseOptions(disc, m, &memStore{})
		opts.IPv6Off = true
		l := startLoop(t, opts)
		defer l.stop()
		synctest.Wait()
		disc.set(Addrs{IPv4: v4}, nil)
		time.Sleep(DefaultCheckEvery)
		synctest.Wait()
		var got []string
		for _, a := range m.delivered() {
			got = append(got, fmt.Sprintf("%v %v", a.at.Sub(t0), Addrs{IPv4: a.p.IPv4, IPv6: a.p.IPv6}))
		}
		want := []string{"0s 203.0.113.2 2001:db8::2", "5m0s 203.0.113.2"}
		if !slices.Equal(got, want) {
			t.Errorf("messages = %q, want %q", got, want)
		}
	})
}

// TestRunOnceDoesNotHold: a one-off run publishes what its check found, so
// a family that is gone is not re-sent by every `publish --once`.
func TestRunOnceDoesNotHold(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		v4, v6 := netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("2001:db8::2")
		store := &memStore{}
		for i, found := range []Addrs{{IPv4: v4, IPv6: v6}, {IPv4: v4}} {
			m := &recMailer{t: t}
			p, err := New(baseOptions(&fakeDisc{a: found}, m, store))
			if err != nil {
				t.Fatal(err)
			}
			sent, err := p.RunOnce(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if sent.Addrs != found {
				t.Errorf("run %d: RunOnce sent %v, want what the check found, %v", i, sent.Addrs, found)
			}
		}
	})
}
