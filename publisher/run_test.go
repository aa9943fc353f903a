package publisher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// slowStore keeps the record in memory; while held, each Update computes
// its result and then waits for the release before it saves, like a save
// stuck on another process's file lock or a slow fsync.
type slowStore struct {
	excl  sync.Mutex // the Store's exclusion, held for a whole Update
	mu    sync.Mutex // guards the fields below
	rec   Record
	found bool
	held  chan struct{} // closed to release; nil: not held
	saves []bool        // Record.Paused of each save, in order
}

func (s *slowStore) Load() (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec, s.found, nil
}

func (s *slowStore) Update(ctx context.Context, fn func(Record, bool) Record) (Record, error) {
	s.excl.Lock()
	defer s.excl.Unlock()
	s.mu.Lock()
	rec := fn(s.rec, s.found)
	held := s.held
	s.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return Record{}, fmt.Errorf("save held: %w", context.Cause(ctx))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec, s.found = rec, true
	s.saves = append(s.saves, rec.Paused)
	return rec, nil
}

// hold makes saves wait until release is called.
func (s *slowStore) hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.held = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.held = nil
		s.mu.Unlock()
		close(ch)
	}
}

func (s *slowStore) saved() (Record, []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec, append([]bool(nil), s.saves...)
}

// TestSetPausedDoesNotBlock: the tray calls SetPaused on its event
// goroutine, which must not wait for the state file (its lock, fsync).
// The switch applies at once and is saved in the background, in order,
// ending with the value last set.
func TestSetPausedDoesNotBlock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		during    []bool // further SetPaused calls while the first save hangs
		wantSaves []bool
	}{
		{"one change", nil, []bool{true}},
		{"changed back during the save", []bool{false}, []bool{true, false}},
		{"changed back and forth during the save", []bool{false, true}, []bool{true}},
		{"changed back, forth and back during the save", []bool{false, true, false}, []bool{true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				store := &slowStore{}
				p, err := New(baseOptions(nil, &recMailer{t: t}, store))
				if err != nil {
					t.Fatal(err)
				}
				release := store.hold()
				start := time.Now()
				p.SetPaused(true)
				synctest.Wait() // the first save is under way and hangs
				want := true
				for _, v := range tt.during {
					p.SetPaused(v)
					want = v
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("SetPaused blocked for %v while the save hung, want it to return at once", d)
				}
				if p.Paused() != want || p.Status().Paused != want {
					t.Errorf("Paused(), Status().Paused = %v, %v while the save hangs; want %v at once",
						p.Paused(), p.Status().Paused, want)
				}
				if _, saves := store.saved(); len(saves) != 0 {
					t.Fatalf("saves before the release = %v, want none", saves)
				}

				release()
				p.waitPauseSaved()
				rec, saves := store.saved()
				if fmt.Sprint(saves) != fmt.Sprint(tt.wantSaves) || rec.Paused != want {
					t.Errorf("saves = %v ending with paused %v; want %v ending with %v", saves, rec.Paused, tt.wantSaves, want)
				}
			})
		})
	}
}

// TestRunWaitsForPauseSave: a Quit right after a click on Pause must not
// lose the switch: Run returns only once it is saved.
func TestRunWaitsForPauseSave(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &slowStore{}
		p, err := New(baseOptions(&fakeDisc{a: addrA}, &recMailer{t: t}, store))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait() // the first message is sent and recorded

		release := store.hold()
		p.SetPaused(true)
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run() = %v before the pause switch was saved, want it to wait", err)
		default:
		}
		release()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
		if rec, _ := store.saved(); !rec.Paused || rec.SentSeq != 1 {
			t.Errorf("saved record after Run = %+v, want paused with message 1", rec)
		}
	})
}

// TestOnStatusMayCallThePublisher: OnStatus is called with no lock held,
// so it may use the Publisher, here to pause after the first message.
func TestOnStatusMayCallThePublisher(t *testing.T) {
	t.Parallel()
	var p *Publisher
	opts := baseOptions(&fakeDisc{a: addrA}, &recMailer{t: t}, &memStore{})
	opts.OnStatus = func(s Status) {
		if got := p.Status(); got.LastSeq < s.LastSeq {
			t.Errorf("Status() in OnStatus = seq %d, want at least the reported %d", got.LastSeq, s.LastSeq)
		}
		_ = p.Paused()
		p.PublishNow()
		if s.LastSeq == 1 {
			p.SetPaused(true)
		}
	}
	var err error
	p, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.PublishAddrs(t.Context(), addrA)
		done <- err
	}()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PublishAddrs() = %v", err)
		}
	case <-timeout.C:
		t.Fatal("PublishAddrs() did not return within 10s: OnStatus deadlocked")
	}
	p.waitPauseSaved()
	if !p.Paused() || !p.Status().Paused {
		t.Errorf("Paused(), Status().Paused = %v, %v after OnStatus paused; want true, true", p.Paused(), p.Status().Paused)
	}
}
