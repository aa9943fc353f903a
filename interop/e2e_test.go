package interop

import (
	"testing"

	"ipsync/fetcher"
	"ipsync/internal/dovecottest"
)

// TestDovecotEndToEnd: the publisher (sealed codec, delivery by APPEND)
// publishes; a fetcher IDLEing on Dovecot reports each new address once,
// with Changed set, and a heartbeat with the same address without it.
func TestDovecotEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dovecottest.Options{})
	pub := e.newPublisher(&appendMailer{a: e.admin}, nil)

	o := e.fetcherOptions(e.endpoint())
	o.Idle = fetcher.IdleOn
	ups := newUpdates()
	runFetcher(t, e.newFetcher(o), ups)
	first := ups.waitFor(t, "idling on the empty mailbox", func(u fetcher.Update) bool {
		return !u.Fetching && !u.LastCheck.IsZero() && u.Mode == fetcher.ModeIdle
	})
	if first.State != fetcher.Unknown {
		t.Errorf("State before any message = %v, want %v", first.State, fetcher.Unknown)
	}

	steps := []struct {
		name        string
		addr        string
		wantChanged bool
		wantPrev    string
	}{
		{"first address", "198.51.100.1", true, ""},
		{"new address", "198.51.100.2", true, "198.51.100.1"},
		{"heartbeat, same address", "198.51.100.2", false, "198.51.100.1"},
	}
	for _, st := range steps {
		sent := publish(t, pub, st.addr)
		u := ups.waitFor(t, st.name, settled(sent.Seq))
		if got := u.Payload.IPv4.String(); got != st.addr {
			t.Errorf("%s: Update.Payload.IPv4 = %s, want %s", st.name, got, st.addr)
		}
		if u.Changed != st.wantChanged {
			t.Errorf("%s: Update.Changed = %v, want %v", st.name, u.Changed, st.wantChanged)
		}
		if u.State != fetcher.Current || u.Mode != fetcher.ModeIdle {
			t.Errorf("%s: Update State, Mode = %v, %q; want %v, %q", st.name, u.State, u.Mode, fetcher.Current, fetcher.ModeIdle)
		}
		if st.wantChanged && st.wantPrev != "" && u.Previous.IPv4.String() != st.wantPrev {
			t.Errorf("%s: Update.Previous.IPv4 = %v, want %s", st.name, u.Previous.IPv4, st.wantPrev)
		}
	}
	if errs := ups.Errors(); len(errs) > 0 {
		t.Errorf("fetcher reported State Error %d times, first: %s", len(errs), errs[0])
	}
}
