package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/codec"
)

var (
	addrA = Addrs{IPv4: netip.MustParseAddr("203.0.113.1")}
	addrB = Addrs{IPv4: netip.MustParseAddr("203.0.113.2"), IPv6: netip.MustParseAddr("2001:db8::2")}
	addrC = Addrs{IPv4: netip.MustParseAddr("203.0.113.3")}
)

// jsonEncode is a transparent stand-in for the codec in schedule tests, so
// the mailer can read each payload back.
func jsonEncode(p codec.Payload) (string, error) {
	b, err := json.Marshal(p)
	return string(b), err
}

func decodePayload(t *testing.T, body string) codec.Payload {
	t.Helper()
	var p codec.Payload
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("decode test payload %q: %v", body, err)
	}
	return p
}

// fakeDisc finds whatever the test set last.
type fakeDisc struct {
	mu    sync.Mutex
	a     Addrs
	err   error
	calls int
}

func (d *fakeDisc) set(a Addrs, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a, d.err = a, err
}

func (d *fakeDisc) Find(context.Context) (Addrs, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.a, d.err
}

func (d *fakeDisc) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// recMailer records every attempt; fail, if set, decides its outcome
// (n counts attempts from 1).
type recMailer struct {
	t        *testing.T
	mu       sync.Mutex
	fail     func(n int, p codec.Payload) error
	attempts []attempt
}

type attempt struct {
	at  time.Time
	p   codec.Payload
	err error
}

func (m *recMailer) Send(_ context.Context, msg Message) error {
	p := decodePayload(m.t, msg.Body)
	m.mu.Lock()
	m.attempts = append(m.attempts, attempt{at: time.Now(), p: p})
	n, fail := len(m.attempts), m.fail
	m.mu.Unlock()
	if fail == nil {
		return nil
	}
	err := fail(n, p) // may panic to simulate a killed process
	m.mu.Lock()
	m.attempts[n-1].err = err
	m.mu.Unlock()
	return err
}

// delivered returns the payloads of successful attempts.
func (m *recMailer) delivered() []attempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []attempt
	for _, a := range m.attempts {
		if a.err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (m *recMailer) all() []attempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]attempt(nil), m.attempts...)
}

// memStore keeps the state in memory; while full, Save fails like a full
// disk.
type memStore struct {
	mu    sync.Mutex
	st    Record
	full  bool
	saves int
}

func (s *memStore) Load() (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, s.saves > 0, nil
}

// Update holds the store's lock for the whole cycle; while full, fn runs
// but its result is not kept, as when a write fails.
func (s *memStore) Update(_ context.Context, fn func(Record, bool) Record) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := fn(s.st, s.saves > 0)
	if s.full {
		return Record{}, errors.New("write state: no space left on device")
	}
	s.st = st
	s.saves++
	return st, nil
}

func (s *memStore) setFull(full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.full = full
}

func (s *memStore) durable() Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// loop runs a Publisher's Run in the background of a synctest bubble.
type loop struct {
	p    *Publisher
	stop func()
}

func baseOptions(disc Finder, m Mailer, s Store) Options {
	return Options{
		Name:   "srv1",
		From:   alice,
		Encode: jsonEncode,
		Finder: disc,
		Mailer: m,
		Store:  s,
		Rand:   rand.New(rand.NewPCG(1, 2)),
	}
}

func startLoop(t *testing.T, opts Options) loop {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return loop{p: p, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	}}
}

func seqs(as []attempt) []uint64 {
	var out []uint64
	for _, a := range as {
		out = append(out, a.p.Seq)
	}
	return out
}

func offsets(t0 time.Time, as []attempt) []time.Duration {
	var out []time.Duration
	for _, a := range as {
		out = append(out, a.at.Sub(t0))
	}
	return out
}

func sameDurations(a, b []time.Duration) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestScheduleChangePublishesAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		disc := &fakeDisc{a: addrA}
		m := &recMailer{t: t}
		l := startLoop(t, baseOptions(disc, m, &memStore{}))
		defer l.stop()

		synctest.Wait()
		disc.set(addrB, nil)
		time.Sleep(DefaultCheckEvery)
		synctest.Wait()
		// A check that finds the same address sends nothing.
		time.Sleep(DefaultCheckEvery)
		synctest.Wait()

		got := m.delivered()
		if want := []time.Duration{0, DefaultCheckEvery}; !sameDurations(offsets(t0, got), want) {
			t.Fatalf("send times = %v, want %v", offsets(t0, got), want)
		}
		if got[0].p.IPv4 != addrA.IPv4 || got[1].p.IPv4 != addrB.IPv4 || got[1].p.IPv6 != addrB.IPv6 {
			t.Errorf("sent %v then %v, want %v then %v", got[0].p, got[1].p, addrA, addrB)
		}
		if s := seqs(got); fmt.Sprint(s) != "[1 2]" {
			t.Errorf("sequence numbers = %v, want [1 2]", s)
		}
		st := l.p.Status()
		if st.Addrs != addrB || st.LastSeq != 2 || st.LastError != nil || st.SentAddrs != addrB {
			t.Errorf("Status() = %+v, want addrs %v, seq 2, no error", st, addrB)
		}
		if want := t0.Add(DefaultCheckEvery + DefaultHeartbeatEvery); !st.NextHeartbeat.Equal(want) {
			t.Errorf("Status().NextHeartbeat = %v, want %v", st.NextHeartbeat, want)
		}
	})
}

func TestScheduleHeartbeatOnly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		disc := &fakeDisc{a: addrA}
		m := &recMailer{t: t}
		opts := baseOptions(disc, m, &memStore{})
		opts.CheckEvery = 7 * time.Minute // not a divisor of the heartbeat
		l := startLoop(t, opts)
		time.Sleep(3*time.Hour + 30*time.Minute)
		synctest.Wait()
		l.stop()

		got := m.all()
		want := []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour}
		if !sameDurations(offsets(t0, got), want) {
			t.Errorf("send times = %v, want %v", offsets(t0, got), want)
		}
		for i, a := range got {
			if a.p.Heartbeat != time.Hour || a.p.Seq != uint64(i+1) || !a.p.IssuedAt.Equal(a.at) {
				t.Errorf("message %d = %+v, want heartbeat 1h, seq %d, issued at send time", i, a.p, i+1)
			}
		}
		if n := disc.count(); n != 31 { // 0, 7m, ..., 3h30m
			t.Errorf("checks = %d, want 31", n)
		}
	})
}

func TestSchedulePublishNow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		disc := &fakeDisc{a: addrA}
		m := &recMailer{t: t}
		l := startLoop(t, baseOptions(disc, m, &memStore{}))
		defer l.stop()

		time.Sleep(10 * time.Minute)
		synctest.Wait()
		checks := disc.count()
		l.p.PublishNow()
		l.p.PublishNow() // coalesced with the first
		synctest.Wait()

		got := m.all()
		if want := []time.Duration{0, 10 * time.Minute}; !sameDurations(offsets(t0, got), want) {
			t.Errorf("send times = %v, want %v", offsets(t0, got), want)
		}
		if n := disc.count(); n != checks+1 {
			t.Errorf("checks after PublishNow = %d, want %d (one fresh check)", n, checks+1)
		}
		if want := t0.Add(10*time.Minute + time.Hour); !l.p.Status().NextHeartbeat.Equal(want) {
			t.Errorf("NextHeartbeat = %v, want %v", l.p.Status().NextHeartbeat, want)
		}
	})
}

func TestSchedulePaused(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		disc := &fakeDisc{a: addrA}
		m := &recMailer{t: t}
		store := &memStore{}
		var statuses []Status
		var smu sync.Mutex
		opts := baseOptions(disc, m, store)
		opts.OnStatus = func(s Status) {
			smu.Lock()
			defer smu.Unlock()
			statuses = append(statuses, s)
		}
		p0, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		p0.SetPaused(true)
		p0.waitPauseSaved() // SetPaused saves in the background
		if !store.durable().Paused {
			t.Fatalf("saved state after SetPaused(true) = %+v, want paused", store.durable())
		}

		l := startLoop(t, opts) // a new Publisher: the switch was persisted
		defer l.stop()
		if !l.p.Paused() {
			t.Fatal("Paused() after restart = false, want true")
		}
		time.Sleep(time.Hour)
		disc.set(addrB, nil)
		l.p.PublishNow() // only checks while paused
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if got := m.all(); len(got) != 0 {
			t.Fatalf("sent %d messages while paused, want 0", len(got))
		}
		if n := disc.count(); n < 36 {
			t.Errorf("checks while paused = %d, want at least 36 (every 5m for 3h)", n)
		}
		if st := l.p.Status(); !st.Paused || st.Addrs != addrB || !st.NextHeartbeat.IsZero() {
			t.Errorf("Status() while paused = %+v, want paused with %v and no heartbeat", st, addrB)
		}

		l.p.SetPaused(false)
		synctest.Wait()
		got := m.all()
		if want := []time.Duration{3 * time.Hour}; !sameDurations(offsets(t0, got), want) {
			t.Fatalf("send times after resume = %v, want %v", offsets(t0, got), want)
		}
		if got[0].p.IPv4 != addrB.IPv4 {
			t.Errorf("sent %v after resume, want the newest %v", got[0].p.IPv4, addrB)
		}
		smu.Lock()
		defer smu.Unlock()
		if len(statuses) == 0 || !statuses[0].Paused || statuses[len(statuses)-1].Paused {
			t.Errorf("OnStatus saw %d statuses, want the first paused and the last resumed", len(statuses))
		}
	})
}

func TestRetryBackoffThenDeliverOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		disc := &fakeDisc{a: addrA}
		down := errors.New("connect: connection refused")
		m := &recMailer{t: t, fail: func(n int, _ codec.Payload) error {
			if n <= 4 {
				return down
			}
			return nil
		}}
		opts := baseOptions(disc, m, &memStore{})
		opts.RetryMin = 10 * time.Second
		opts.RetryMax = 40 * time.Second
		l := startLoop(t, opts)
		defer l.stop()

		synctest.Wait()
		if st := l.p.Status(); !st.Pending || !errors.Is(st.LastError, down) || st.NextRetry.IsZero() {
			t.Errorf("Status() after a failure = %+v, want pending with the error", st)
		}
		time.Sleep(50 * time.Minute)
		synctest.Wait()

		all := m.all()
		if len(all) != 5 {
			t.Fatalf("attempts = %d (%v), want 5", len(all), offsets(t0, all))
		}
		// Waits grow from RetryMin with jitter in [d/2, 3d/2), capped.
		bounds := [][2]time.Duration{{5 * time.Second, 15 * time.Second}, {10 * time.Second, 30 * time.Second},
			{20 * time.Second, 40 * time.Second}, {20 * time.Second, 40 * time.Second}}
		for i, b := range bounds {
			gap := all[i+1].at.Sub(all[i].at)
			if gap < b[0] || gap > b[1] {
				t.Errorf("wait before attempt %d = %v, want within %v", i+2, gap, b)
			}
		}
		if got := m.delivered(); len(got) != 1 || got[0].p.IPv4 != addrA.IPv4 {
			t.Errorf("delivered %d messages, want exactly 1 with %v", len(got), addrA)
		}
		// Each attempt had its own sequence number; none reused.
		if s := seqs(all); fmt.Sprint(s) != "[1 2 3 4 5]" {
			t.Errorf("attempt sequence numbers = %v, want [1 2 3 4 5]", s)
		}
		if st := l.p.Status(); st.Pending || st.LastError != nil || st.LastSeq != 5 {
			t.Errorf("Status() after delivery = %+v, want idle, no error, seq 5", st)
		}
	})
}

func TestNewestAddressSupersedesRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		disc := &fakeDisc{a: addrA}
		var up bool
		m := &recMailer{t: t, fail: func(int, codec.Payload) error {
			if !up {
				return errors.New("connect: connection refused")
			}
			return nil
		}}
		opts := baseOptions(disc, m, &memStore{})
		opts.RetryMin = 30 * time.Minute // only address changes cause early retries
		opts.RetryMax = time.Hour
		l := startLoop(t, opts)
		defer l.stop()

		synctest.Wait()
		disc.set(addrB, nil)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		disc.set(addrC, nil)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		m.mu.Lock()
		up = true
		m.mu.Unlock()
		time.Sleep(50 * time.Minute) // the retry comes within 45m; the heartbeat later

		synctest.Wait()

		all := m.all()
		var tried []netip.Addr
		for _, a := range all {
			tried = append(tried, a.p.IPv4)
		}
		if len(all) < 4 || tried[0] != addrA.IPv4 || tried[1] != addrB.IPv4 || tried[2] != addrC.IPv4 {
			t.Errorf("attempts carried %v, want A, B (at once on change), C, ...", tried)
		}
		got := m.delivered()
		if len(got) != 1 || got[0].p.IPv4 != addrC.IPv4 {
			t.Errorf("delivered %d messages (%v), want exactly one with the newest %v", len(got), got, addrC)
		}
	})
}

func TestPermanentRefusalIsNotHammered(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		disc := &fakeDisc{a: addrA}
		refused := fmt.Errorf("send mail: %w: 535 5.7.8 authentication failed", ErrRejected)
		m := &recMailer{t: t, fail: func(int, codec.Payload) error { return refused }}
		opts := baseOptions(disc, m, &memStore{})
		opts.RetryMin = time.Second
		l := startLoop(t, opts)
		defer l.stop()

		synctest.Wait()
		if st := l.p.Status(); !errors.Is(st.LastError, ErrRejected) {
			t.Errorf("Status().LastError = %v, want ErrRejected", st.LastError)
		}
		time.Sleep(92 * time.Minute)
		disc.set(addrB, nil) // a change is worth one more try, at the next check (95m)
		time.Sleep(2 * time.Hour)
		synctest.Wait()

		want := []time.Duration{0, time.Hour, 95 * time.Minute, 155 * time.Minute}
		if got := offsets(t0, m.all()); !sameDurations(got, want) {
			t.Errorf("attempt times = %v, want %v", got, want)
		}
		if st := l.p.Status(); !errors.Is(st.LastError, ErrRejected) || !strings.Contains(st.LastError.Error(), "535") {
			t.Errorf("Status().LastError = %v, want the 535 refusal", st.LastError)
		}
	})
}

func TestDiskFullNeverSendsUnreserved(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		disc := &fakeDisc{a: addrA}
		store := &memStore{}
		store.setFull(true)
		m := &recMailer{t: t, fail: func(_ int, p codec.Payload) error {
			if d := store.durable(); d.Seq < p.Seq {
				t.Errorf("message %d sent while the saved reservation is %d", p.Seq, d.Seq)
			}
			return nil
		}}
		opts := baseOptions(disc, m, store)
		opts.RetryMin = 10 * time.Second
		l := startLoop(t, opts)
		defer l.stop()

		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if n := len(m.all()); n != 0 {
			t.Fatalf("sent %d messages while the state could not be saved, want 0", n)
		}
		st := l.p.Status()
		if st.LastError == nil || !strings.Contains(st.LastError.Error(), "no space left") || !st.Pending {
			t.Errorf("Status() with a full disk = %+v, want pending with the save error", st)
		}

		store.setFull(false)
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		got := m.delivered()
		if len(got) != 1 {
			t.Fatalf("delivered %d messages after the disk recovered, want 1", len(got))
		}
		if d := store.durable(); d.SentSeq != got[0].p.Seq || d.Seq < got[0].p.Seq || d.IPv4 != addrA.IPv4 {
			t.Errorf("saved state = %+v, want message %d recorded as sent", d, got[0].p.Seq)
		}
		if st := l.p.Status(); st.LastError != nil {
			t.Errorf("Status().LastError after recovery = %v, want nil", st.LastError)
		}
	})
}

func TestRestartNeverReusesSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		crash func(n int) // runs inside Send; panics to simulate a killed process
	}{
		{"killed between reserve and send", func(int) { panic("killed") }},
		{"killed after the server accepted, before recording", func(int) { panic("killed after DATA") }},
		{"send failed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state.json")
			disc := &fakeDisc{a: addrA}
			first := &recMailer{t: t, fail: func(n int, _ codec.Payload) error {
				if tt.crash != nil {
					tt.crash(n)
				}
				return errors.New("connection reset")
			}}
			opts := baseOptions(disc, first, nil)
			opts.Store = FileStore{Path: path}
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() { _ = recover() }()
				_, _ = p.RunOnce(t.Context())
			}()
			if n := len(first.all()); n != 1 {
				t.Fatalf("first process attempts = %d, want 1", n)
			}

			second := &recMailer{t: t}
			opts.Mailer = second
			p2, err := New(opts)
			if err != nil {
				t.Fatalf("New() after restart = %v", err)
			}
			sent, err := p2.RunOnce(t.Context())
			if err != nil {
				t.Fatalf("RunOnce() after restart = %v", err)
			}
			if sent.Seq <= first.all()[0].p.Seq {
				t.Errorf("sequence after restart = %d, want above %d", sent.Seq, first.all()[0].p.Seq)
			}
			st, _, err := FileStore{Path: path}.Load()
			if err != nil || st.Seq != sent.Seq || st.SentSeq != sent.Seq {
				t.Errorf("state file = %+v, %v, want seq %d reserved and sent", st, err, sent.Seq)
			}
		})
	}
}

func TestPublishAddrs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      Addrs
		want    Addrs
		wantErr bool
	}{
		{"ipv4", addrA, addrA, false},
		{"both", addrB, addrB, false},
		{"4in6 is unmapped", Addrs{IPv4: netip.MustParseAddr("::ffff:203.0.113.1")}, addrA, false},
		{"none", Addrs{}, Addrs{}, true},
		{"ipv6 in the ipv4 field", Addrs{IPv4: netip.MustParseAddr("2001:db8::1")}, Addrs{}, true},
		{"ipv4 in the ipv6 field", Addrs{IPv6: netip.MustParseAddr("203.0.113.1")}, Addrs{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := &recMailer{t: t}
			p, err := New(baseOptions(nil, m, &memStore{}))
			if err != nil {
				t.Fatal(err)
			}
			sent, err := p.PublishAddrs(t.Context(), tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PublishAddrs(%v) = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if n := len(m.all()); n != 0 {
					t.Errorf("PublishAddrs(%v) sent %d messages, want 0", tt.in, n)
				}
				return
			}
			if sent.Addrs != tt.want || sent.Seq != 1 {
				t.Errorf("PublishAddrs(%v) = %+v, want %v seq 1", tt.in, sent, tt.want)
			}
			if got := m.all(); len(got) != 1 || got[0].p.IPv4 != tt.want.IPv4 || got[0].p.IPv6 != tt.want.IPv6 {
				t.Errorf("PublishAddrs(%v) sent %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	ok := baseOptions(nil, &recMailer{}, &memStore{})
	tests := []struct {
		name string
		edit func(*Options)
	}{
		{"no name", func(o *Options) { o.Name = "" }},
		{"bad from", func(o *Options) { o.From = "not an address" }},
		{"bad recipient", func(o *Options) { o.To = []string{"x"} }},
		{"no encoder", func(o *Options) { o.Encode = nil }},
		{"no state", func(o *Options) { o.Store = nil }},
		{"no smtp server", func(o *Options) { o.Mailer = nil }},
		{"negative interval", func(o *Options) { o.CheckEvery = -time.Second }},
		{"retry max below min", func(o *Options) { o.RetryMin, o.RetryMax = time.Minute, time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := ok
			tt.edit(&o)
			if _, err := New(o); err == nil {
				t.Errorf("New(%s) = nil error, want an error", tt.name)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(valid) = %v, want nil", err)
	}
	p, _ := New(ok)
	if err := p.Run(t.Context()); !errors.Is(err, ErrNoFinder) {
		t.Errorf("Run() without a finder = %v, want ErrNoFinder", err)
	}
}

func TestCheckFailureIsReported(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		lookup := errors.New("all sources timed out")
		disc := &fakeDisc{err: lookup}
		m := &recMailer{t: t}
		l := startLoop(t, baseOptions(disc, m, &memStore{}))
		defer l.stop()

		synctest.Wait()
		st := l.p.Status()
		if !errors.Is(st.LastError, lookup) || !st.Addrs.IsZero() || st.LastCheck.IsZero() {
			t.Errorf("Status() after a failed check = %+v, want the check error and no address", st)
		}
		if n := len(m.all()); n != 0 {
			t.Errorf("sent %d messages without an address, want 0", n)
		}
		l.p.PublishNow() // nothing to publish yet: no busy loop, no send
		synctest.Wait()

		disc.set(addrA, nil)
		time.Sleep(DefaultCheckEvery)
		synctest.Wait()
		if st := l.p.Status(); st.LastError != nil || st.LastSeq != 1 {
			t.Errorf("Status() after recovery = %+v, want no error and seq 1", st)
		}
	})
}
