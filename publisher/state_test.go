package publisher

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/codec"
)

// newShared returns n Publishers on one state file, as n processes with the
// same configuration would be, all sending through m.
func newShared(t *testing.T, n int, path string, m Mailer) []*Publisher {
	t.Helper()
	var ps []*Publisher
	for range n {
		opts := baseOptions(&fakeDisc{a: addrA}, m, nil)
		opts.Store = FileStore{Path: path}
		p, err := New(opts)
		if err != nil {
			t.Fatalf("New() = %v", err)
		}
		ps = append(ps, p)
	}
	return ps
}

func loadState(t *testing.T, path string) Record {
	t.Helper()
	st, _, err := FileStore{Path: path}.Load()
	if err != nil {
		t.Fatalf("FileStore.Load() = %v", err)
	}
	return st
}

func TestSharedStateNeverReusesSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, ps []*Publisher)
	}{
		{"alternating", func(t *testing.T, ps []*Publisher) {
			for i := range 10 {
				if _, err := ps[i%2].PublishAddrs(t.Context(), addrA); err != nil {
					t.Fatalf("PublishAddrs() #%d = %v", i+1, err)
				}
			}
		}},
		{"concurrent", func(t *testing.T, ps []*Publisher) {
			var wg sync.WaitGroup
			for _, p := range ps {
				wg.Go(func() {
					for range 5 {
						if _, err := p.PublishAddrs(t.Context(), addrA); err != nil {
							t.Errorf("PublishAddrs() = %v", err)
						}
					}
				})
			}
			wg.Wait()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state.json")
			m := &recMailer{t: t}
			tt.run(t, newShared(t, 2, path, m))

			got := seqs(m.delivered())
			if tt.name == "alternating" && !slices.IsSorted(got) {
				t.Errorf("sequence numbers in send order = %v, want strictly increasing", got)
			}
			slices.Sort(got)
			if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
				t.Errorf("sequence numbers sent = %v, want each of %v once", got, want)
			}
			if st := loadState(t, path); st.Seq != 10 || st.SentSeq != 10 {
				t.Errorf("state file = %+v, want seq 10 reserved and sent", st)
			}
		})
	}
}

// TestSharedStateServiceAndOneOff is the reported case: `ipsync server`
// runs while an admin runs `ipsync publish --ip` with the same state file.
// The service's next message must not reuse the admin's number, or clients
// would drop it until the heartbeat after.
func TestSharedStateServiceAndOneOff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		m := &recMailer{t: t}
		opts := baseOptions(&fakeDisc{a: addrA}, m, nil)
		opts.Store = FileStore{Path: path}
		l := startLoop(t, opts)
		defer l.stop()
		synctest.Wait() // the service sends #1 at once

		time.Sleep(12 * time.Minute) // between two checks
		admin := newShared(t, 1, path, m)[0]
		if sent, err := admin.PublishAddrs(t.Context(), addrC); err != nil || sent.Seq != 2 {
			t.Fatalf("one-off PublishAddrs() = %+v, %v, want seq 2", sent, err)
		}
		// The service's next check (15m) corrects it; its heartbeat is
		// then due at 1h15m, after the end of this test.
		time.Sleep(time.Hour)
		synctest.Wait()

		var got []string
		for _, a := range m.delivered() {
			got = append(got, fmt.Sprintf("%d:%v", a.p.Seq, a.p.IPv4))
		}
		want := []string{"1:203.0.113.1", "2:203.0.113.3", "3:203.0.113.1"}
		if !slices.Equal(got, want) {
			t.Errorf("messages = %v, want %v", got, want)
		}
		if st := l.p.Status(); st.LastSeq != 3 || st.SentAddrs != addrA {
			t.Errorf("service Status() = %+v, want seq 3 with %v", st, addrA)
		}
	})
}

// TestSharedStateAdoptsNewerSend: a process whose send fails must not roll
// back the record of a newer message another process sent; it adopts it,
// so its heartbeats and Status follow what clients actually hold.
func TestSharedStateAdoptsNewerSend(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	down := errors.New("connect: connection refused")
	failing := &recMailer{t: t, fail: func(int, codec.Payload) error { return down }}
	working := &recMailer{t: t}
	p1 := newShared(t, 1, path, failing)[0]
	p2 := newShared(t, 1, path, working)[0]

	if _, err := p2.PublishAddrs(t.Context(), addrC); err != nil {
		t.Fatalf("PublishAddrs() = %v", err)
	}
	if _, err := p1.PublishAddrs(t.Context(), addrA); !errors.Is(err, down) {
		t.Fatalf("PublishAddrs() with the mail server down = %v, want %v", err, down)
	}
	if got := failing.all(); len(got) != 1 || got[0].p.Seq != 2 {
		t.Errorf("failed attempt = %+v, want one with seq 2", got)
	}
	if st := p1.Status(); st.LastSeq != 1 || st.SentAddrs != addrC {
		t.Errorf("Status() of the failing process = %+v, want the other's seq 1 with %v", st, addrC)
	}
	if st := loadState(t, path); st.Seq != 2 || st.SentSeq != 1 || st.IPv4 != addrC.IPv4 {
		t.Errorf("state file = %+v, want seq 2 reserved, seq 1 sent with %v", st, addrC)
	}
}

// TestSharedStateKeepsOthersPause: a process that did not touch the pause
// switch must not overwrite another's change with the value it loaded.
func TestSharedStateKeepsOthersPause(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	m := &recMailer{t: t}
	ps := newShared(t, 2, path, m)
	ps[0].SetPaused(true)
	ps[0].waitPauseSaved() // SetPaused saves in the background
	if _, err := ps[1].PublishAddrs(t.Context(), addrA); err != nil {
		t.Fatalf("PublishAddrs() = %v", err)
	}
	if st := loadState(t, path); !st.Paused || st.SentSeq != 1 {
		t.Errorf("state file after the other process sent = %+v, want paused and seq 1 sent", st)
	}
	if !ps[1].Paused() {
		t.Errorf("Paused() of the other process after its save = false, want the saved true")
	}
	ps[0].SetPaused(false)
	ps[0].waitPauseSaved()
	if st := loadState(t, path); st.Paused || st.SentSeq != 1 || st.Seq != 1 {
		t.Errorf("state file after resume = %+v, want not paused, seq 1 kept", st)
	}
}

// TestSeqFloorSurvivesLostState: with UnixSeq a server that lost its state
// file still sends numbers above the ones its clients accepted.
func TestSeqFloorSurvivesLostState(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a := Addrs{IPv4: netip.MustParseAddr("203.0.113.2")}
		send := func(store Store) []uint64 {
			m := &recMailer{t: t}
			opts := baseOptions(nil, m, store)
			opts.SeqFloor = UnixSeq
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for range 3 {
				sent, err := p.PublishAddrs(t.Context(), a)
				if err != nil {
					t.Fatal(err)
				}
				seqs = append(seqs, sent.Seq)
			}
			return seqs
		}
		first := send(&memStore{})
		if want := uint64(time.Now().Unix()); first[0] != want || first[1] != want+1 || first[2] != want+2 {
			t.Errorf("sequences sent at %d = %v, want the clock and then +1", want, first)
		}
		time.Sleep(time.Hour) // the server is reinstalled an hour later
		again := send(&memStore{})
		if again[0] <= first[2] {
			t.Errorf("after a lost state file the first sequence is %d, want above %d", again[0], first[2])
		}
	})
}

// TestServiceCorrectsManualPublish: `publish --once --ip X` beside the
// running service (another process sharing the state) is corrected at the
// service's next check, not at the next heartbeat.
func TestServiceCorrectsManualPublish(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		store := &memStore{}
		m := &recMailer{t: t}
		l := startLoop(t, baseOptions(&fakeDisc{a: addrA}, m, store)) // checks every 5m
		defer l.stop()
		synctest.Wait()

		time.Sleep(time.Minute)
		oneOff, err := New(baseOptions(nil, m, store))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := oneOff.PublishAddrs(t.Context(), addrB); err != nil {
			t.Fatalf("PublishAddrs() = %v", err)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()

		got := m.delivered()
		want := []time.Duration{0, time.Minute, 5 * time.Minute}
		if !sameDurations(offsets(t0, got), want) || !slices.Equal(seqs(got), []uint64{1, 2, 3}) {
			t.Fatalf("sends at %v seqs %v, want at %v seqs [1 2 3]", offsets(t0, got), seqs(got), want)
		}
		if got[1].p.IPv4 != addrB.IPv4 || got[2].p.IPv4 != addrA.IPv4 {
			t.Errorf("messages carry %v then %v, want the manual %v corrected to the true %v", got[1].p.IPv4, got[2].p.IPv4, addrB.IPv4, addrA.IPv4)
		}
		if st := l.p.Status(); st.LastSeq != 3 || st.SentAddrs != addrA {
			t.Errorf("Status() = seq %d %v, want seq 3 %v", st.LastSeq, st.SentAddrs, addrA)
		}

		// A manual message with the true address needs no correction.
		if _, err := oneOff.PublishAddrs(t.Context(), addrA); err != nil {
			t.Fatalf("PublishAddrs() = %v", err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := len(m.delivered()); n != 4 {
			t.Errorf("%d messages sent, want 4: the true address sent by hand is not sent again", n)
		}
	})
}
