package publisher

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testSchedule is the schedule of a loop that started at t0 with a 5m
// check interval, a 1h heartbeat and retries from 10s to 40s, and has just
// checked.
func testSchedule() *schedule {
	s := newSchedule(Options{
		CheckEvery:     5 * time.Minute,
		HeartbeatEvery: time.Hour,
		RetryMin:       10 * time.Second,
		RetryMax:       40 * time.Second,
	}, t0)
	s.checked(t0, false)
	return s
}

// sentAt is the state after message 1 with addrA went out at at.
func sentAt(at time.Time) sendState {
	return sendState{addrs: addrA, sent: addrA, sentSeq: 1, sentAt: at}
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	changed := sendState{addrs: addrB, sent: addrA, sentSeq: 1, sentAt: t0}
	tests := []struct {
		name        string
		edit        func(*schedule)
		st          sendState
		wantWake    time.Time
		wantPending bool
	}{
		{"nothing known: the next check", nil, sendState{}, t0.Add(5 * time.Minute), false},
		{"never sent: at once", nil, sendState{addrs: addrA}, t0, false},
		{"address changed: at once", nil, changed, t0, false},
		{"sent: the next check before the heartbeat", nil, sentAt(t0), t0.Add(5 * time.Minute), false},
		{"sent: the heartbeat before the next check", nil, sentAt(t0.Add(-58 * time.Minute)), t0.Add(2 * time.Minute), false},
		{"heartbeat overdue: at once", nil, sentAt(t0.Add(-2 * time.Hour)), t0, false},
		{"clock moved back: heartbeat at once", nil, sentAt(t0.Add(time.Hour)), t0, false},
		{"paused: only the next check", nil, sendState{addrs: addrB, paused: true}, t0.Add(5 * time.Minute), false},
		{"PublishNow: at once", func(s *schedule) { s.forced = true }, sentAt(t0), t0, false},
		{"PublishNow while paused: the next check", func(s *schedule) { s.forced = true },
			sendState{addrs: addrA, paused: true}, t0.Add(5 * time.Minute), false},
		{"failed: the retry before the next check", func(s *schedule) { s.failed, s.retryAt = true, t0.Add(30*time.Second) },
			changed, t0.Add(30 * time.Second), true},
		{"failed: the next check before the retry", func(s *schedule) { s.failed, s.retryAt = true, t0.Add(time.Hour) },
			changed, t0.Add(5 * time.Minute), true},
		{"failed while paused: not pending", func(s *schedule) { s.failed, s.retryAt = true, t0.Add(30*time.Second) },
			sendState{addrs: addrB, sent: addrA, sentSeq: 1, paused: true}, t0.Add(5 * time.Minute), false},
		{"failed, but another process sent it since", func(s *schedule) { s.failed, s.retryAt = true, t0.Add(30*time.Second) },
			sentAt(t0.Add(-58 * time.Minute)), t0.Add(2 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSchedule()
			if tt.edit != nil {
				tt.edit(s)
			}
			wake, pending := s.next(t0, tt.st)
			if !wake.Equal(tt.wantWake) || pending != tt.wantPending {
				t.Errorf("next(t0, %+v) = t0%+v, %v; want t0%+v, %v",
					tt.st, wake.Sub(t0), pending, tt.wantWake.Sub(t0), tt.wantPending)
			}
		})
	}
}

func TestScheduleSendDue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		edit       func(*schedule)
		st         sendState
		want       bool
		wantForced bool
	}{
		{"nothing known", nil, sendState{}, false, false},
		{"never sent", nil, sendState{addrs: addrA}, true, false},
		{"unchanged, heartbeat not due", nil, sentAt(t0.Add(-time.Minute)), false, false},
		{"unchanged, heartbeat due", nil, sentAt(t0.Add(-time.Hour)), true, false},
		{"PublishNow", func(s *schedule) { s.forced = true }, sentAt(t0), true, true},
		{"PublishNow with nothing known", func(s *schedule) { s.forced = true }, sendState{}, true, true},
		{"paused drops PublishNow", func(s *schedule) { s.forced = true }, sendState{addrs: addrA, paused: true}, false, false},
		{"retry wait running", func(s *schedule) { s.failed, s.retryAt = true, t0.Add(time.Second) },
			sendState{addrs: addrA}, false, false},
		{"retry wait over", func(s *schedule) { s.failed, s.retryAt = true, t0 }, sendState{addrs: addrA}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSchedule()
			if tt.edit != nil {
				tt.edit(s)
			}
			if got := s.sendDue(t0, tt.st); got != tt.want || s.forced != tt.wantForced {
				t.Errorf("sendDue(t0, %+v) = %v with forced %v; want %v with forced %v",
					tt.st, got, s.forced, tt.want, tt.wantForced)
			}
		})
	}
}

// errChanged stands for a check that found a new address in
// TestScheduleRetryWaits.
var errChanged = errors.New("address changed")

func TestScheduleRetryWaits(t *testing.T) {
	t.Parallel()
	down := errors.New("connection refused")
	rejected := fmt.Errorf("535 authentication failed: %w", ErrRejected)
	tests := []struct {
		name   string
		r      float64 // the jitter draw
		events []error // outcomes of sends, or errChanged for a check
		want   []string
	}{
		{"doubling up to the maximum", 0.5, []error{down, down, down, down},
			[]string{"10s", "20s", "40s", "40s"}},
		{"jitter low", 0, []error{down, down, down, down}, []string{"5s", "10s", "20s", "20s"}},
		{"jitter high, capped", 0.9, []error{down, down, down}, []string{"14s", "28s", "40s"}},
		{"success resets", 0.5, []error{down, down, nil, down}, []string{"10s", "20s", "none", "10s"}},
		{"a new address resets", 0.5, []error{down, down, errChanged, down}, []string{"10s", "20s", "none", "10s"}},
		{"refusal waits a heartbeat", 0.5, []error{rejected, down}, []string{"1h0m0s", "10s"}},
		{"nothing to send", 0.5, []error{ErrNoAddress}, []string{"none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSchedule()
			var got []string
			for _, err := range tt.events {
				if err == errChanged {
					s.checked(t0, true)
				} else {
					s.sent(t0, err, func() float64 { return tt.r })
				}
				if s.retryAt.IsZero() {
					got = append(got, "none")
				} else {
					got = append(got, s.retryAt.Sub(t0).String())
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("retry waits after %v = %v, want %v", tt.events, got, tt.want)
			}
		})
	}
}

func TestScheduleChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		step func(*schedule)
		now  time.Time
		want bool
	}{
		{"just checked", func(*schedule) {}, t0, false},
		{"before the interval", func(*schedule) {}, t0.Add(5*time.Minute - 1), false},
		{"at the interval", func(*schedule) {}, t0.Add(5 * time.Minute), true},
		{"PublishNow", func(s *schedule) { s.publishNow(t0.Add(time.Minute)) }, t0.Add(time.Minute), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := testSchedule()
			tt.step(s)
			if got := s.checkDue(tt.now); got != tt.want {
				t.Errorf("checkDue(t0%+v) = %v, want %v", tt.now.Sub(t0), got, tt.want)
			}
		})
	}
}

func TestHeartbeatAt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		sentSeq uint64
		sentAt  time.Time
		want    time.Time
	}{
		{"nothing sent", 0, time.Time{}, time.Time{}},
		{"an interval after the send", 7, t0.Add(-10 * time.Minute), t0.Add(50 * time.Minute)},
		{"overdue", 7, t0.Add(-3 * time.Hour), t0.Add(-2 * time.Hour)},
		{"sent in the future", 7, t0.Add(time.Minute), t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := heartbeatAt(tt.sentSeq, tt.sentAt, t0, time.Hour); !got.Equal(tt.want) {
				t.Errorf("heartbeatAt(%d, %v, t0, 1h) = %v, want %v", tt.sentSeq, tt.sentAt, got, tt.want)
			}
		})
	}
}

func TestScheduleJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		r    float64
		want time.Duration
	}{
		{10 * time.Second, 0, 5 * time.Second},
		{10 * time.Second, 0.5, 10 * time.Second},
		{10 * time.Second, 0.75, 12500 * time.Millisecond},
		{30 * time.Second, 0.9, 40 * time.Second}, // capped at the maximum
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v,%v", tt.d, tt.r), func(t *testing.T) {
			t.Parallel()
			if got := testSchedule().jitter(tt.d, tt.r); got != tt.want {
				t.Errorf("jitter(%v, %v) = %v, want %v", tt.d, tt.r, got, tt.want)
			}
		})
	}
}

func TestScheduleAuthBackoff(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("535 5.7.8 authentication failed: %w (%w)", ErrAuthRefused, ErrRejected)
	st := sentAt(t0.Add(-2 * time.Hour)) // a heartbeat is due
	t.Run("waits grow from minutes to hours", func(t *testing.T) {
		t.Parallel()
		s := testSchedule()
		var got []string
		for range 8 {
			s.sent(t0, refused, func() float64 { return 0 })
			got = append(got, s.auth.until.Sub(t0).String())
		}
		want := "[5m0s 10m0s 20m0s 40m0s 1h20m0s 2h40m0s 4h0m0s 4h0m0s]"
		if fmt.Sprint(got) != want {
			t.Errorf("waits = %v, want %v", got, want)
		}
		s.sent(t0, refused, func() float64 { return 0.99 })
		if d := s.auth.until.Sub(t0); d <= 4*time.Hour || d > 5*time.Hour {
			t.Errorf("jittered wait = %v, want within a quarter above 4h", d)
		}
	})
	t.Run("a new address does not shorten it", func(t *testing.T) {
		t.Parallel()
		s := testSchedule()
		s.sent(t0, refused, func() float64 { return 0 })
		s.checked(t0.Add(time.Minute), true)
		if s.sendDue(t0.Add(time.Minute), st) {
			t.Error("sendDue() right after a refused login and an address change = true, want false")
		}
		if wake, pending := s.next(t0.Add(time.Minute), st); !pending || !wake.Equal(t0.Add(5*time.Minute)) {
			t.Errorf("next() = %v, %v, want the login wait's end %v, pending", wake, pending, t0.Add(5*time.Minute))
		}
		if !s.sendDue(t0.Add(5*time.Minute), st) {
			t.Error("sendDue() when the wait is over = false, want true")
		}
	})
	t.Run("publish now and success reset it", func(t *testing.T) {
		t.Parallel()
		s := testSchedule()
		s.sent(t0, refused, func() float64 { return 0 })
		s.sent(t0, refused, func() float64 { return 0 })
		s.publishNow(t0)
		if !s.sendDue(t0, st) {
			t.Error("sendDue() after PublishNow = false, want true")
		}
		s.sent(t0, refused, func() float64 { return 0 })
		if d := s.auth.until.Sub(t0); d != authRetryMin {
			t.Errorf("wait after PublishNow and a new refusal = %v, want %v (restarted)", d, authRetryMin)
		}
		s.sent(t0, nil, nil)
		if s.auth.blocked(t0) || s.auth.fails != 0 {
			t.Errorf("after a success the login backoff = %+v, want none", s.auth)
		}
	})
}
