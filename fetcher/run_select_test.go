package fetcher

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
)

// junkStream delivers junk with the ipsync subject to e until stop is
// called, as fast as the server takes it (at most max messages).
func junkStream(t *testing.T, e *env, max int) (wait func(n int), stop func() int) {
	other, _ := codec.GenerateServerKey(nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var count atomic.Int64
	n := 0
	raw := make([][]byte, 0, 2)
	now := time.Now()
	raw = append(raw, e.junk(t, junkOtherKey, other, 0, now), e.junk(t, junkText, other, 1, now))
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for ; n < max; n++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if err := e.srv.Deliver(testUser, raw[n%len(raw)]); err != nil {
				t.Errorf("Deliver junk: %v", err)
				return
			}
			count.Add(1)
		}
	}()
	// wait blocks until at least n junk messages were delivered.
	wait = func(n int) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for count.Load() < int64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("only %d junk messages delivered within %v, want %d", count.Load(), waitTimeout, n)
			}
			<-tick.C
		}
	}
	var once sync.Once
	stop = func() int {
		once.Do(func() { close(done) })
		wg.Wait()
		return n
	}
	t.Cleanup(func() { stop() })
	return wait, stop
}

// TestJunkStreamPolling: with junk arriving all the time, a polling client
// gets the genuine update at the first poll after it.
func TestJunkStreamPolling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", t0)), t0))
	o, logs := e.options()
	o.Clock, o.Rand, o.Idle, o.PollEvery = clk, seededRand(5), IdleOff, time.Minute
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()
	ups := newUpdates()
	runFetcher(t, e.newFetcher(o), ups)
	ups.waitFor(t, "with the first address", hasV4("192.0.2.1"))
	wait, stop := junkStream(t, e, 5000)
	for i := range 3 {
		wait(200 * (i + 1))
		clk.WaitTimers(t, 1)
		clk.AdvanceToNext()
		ups.waitFor(t, "after a poll", checked)
	}
	clk.WaitTimers(t, 1)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", t0)), t0))
	clk.AdvanceToNext() // one poll interval
	u := ups.waitFor(t, "with the genuine update", hasV4("192.0.2.2"))
	t.Logf("junk delivered: %d", stop())
	if u.State != Current || u.Problem != "" {
		t.Errorf("Update = state %v problem %q, want current, no problem", u.State, u.Problem)
	}
}

// TestJunkStreamIdle: with junk arriving all the time, an IDLE client gets
// the genuine update pushed (no timer fires), promptly.
func TestJunkStreamIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", t0)), t0))
	o, logs := e.options()
	o.Clock, o.Rand, o.Idle = clk, seededRand(6), IdleOn
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()
	ups := newUpdates()
	runFetcher(t, e.newFetcher(o), ups)
	ups.waitFor(t, "with the first address", hasV4("192.0.2.1"))
	wait, stop := junkStream(t, e, 3000)
	wait(200)
	for range 50 {
		ups.waitFor(t, "a fetch of junk", checked)
	}
	start := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", time.Now())), time.Now()))
	ups.waitFor(t, "with the genuine update", hasV4("192.0.2.2"))
	took := time.Since(start)
	t.Logf("genuine update pushed %v after delivery, with %d junk messages delivered", took.Round(time.Millisecond), stop())
	if clk.Now() != t0 {
		t.Errorf("the fake clock moved: the update did not come by IDLE push alone")
	}
}

// TestAuthRefusedBacksOff: a refused password is its own state, is retried
// no more than 6 times an hour (counted by the server), and Fetch now
// retries at once.
func TestAuthRefusedBacksOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	o, logs := e.options()
	const wrong = "wrong-password"
	o.Auth = passwordAuth(testUser, wrong)
	o.Clock, o.Rand = clk, seededRand(7)
	f := e.newFetcher(o)
	ups := newUpdates()
	runFetcher(t, f, ups)
	u := ups.waitFor(t, "password refused", func(u Update) bool { return u.State == AuthRefused })
	if !errors.Is(u.Err, ErrAuthRefused) || u.State.String() != "password refused" {
		t.Errorf("Update = state %v err %v, want password refused wrapping ErrAuthRefused", u.State, u.Err)
	}
	for {
		clk.WaitTimers(t, 1)
		if clk.nextAt().Sub(t0) > time.Hour {
			break
		}
		clk.AdvanceToNext()
		ups.waitFor(t, "refused again", func(u Update) bool { return u.State == AuthRefused })
	}
	logins := e.srv.Stats().IMAPLogins
	t.Logf("logins in the first hour: %d; next attempt after %v", logins, clk.nextAt().Sub(t0))
	if logins > 6 || logins < 3 {
		t.Errorf("logins in an hour = %d, want 3 to 6 (a backoff from minutes to hours)", logins)
	}
	// Fetch now tries at once, and the backoff starts again from minutes.
	f.FetchNow()
	ups.waitFor(t, "refused after Fetch now", func(u Update) bool { return u.State == AuthRefused })
	if got := e.srv.Stats().IMAPLogins; got != logins+1 {
		t.Errorf("logins after Fetch now = %d, want %d", got, logins+1)
	}
	clk.WaitTimers(t, 1)
	if d := clk.nextAt().Sub(clk.Now()); d > authBackoffMin || d < authBackoffMin/2 {
		t.Errorf("retry after Fetch now in %v, want the first backoff (%v, jittered)", d, authBackoffMin)
	}
	if strings.Contains(logs.String(), wrong) {
		t.Errorf("log reveals the password")
	}
	if n := len(logs.Lines("refused the login")); n == 0 {
		t.Errorf("no log line for the refused login")
	}
}
