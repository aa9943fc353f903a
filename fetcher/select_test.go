package fetcher

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
)

// arrivals sets the INTERNALDATE the loopback server gives delivered mail.
type arrivals struct{ ns atomic.Int64 }

func (a *arrivals) set(t time.Time) { a.ns.Store(t.UnixNano()) }
func (a *arrivals) now() time.Time  { return time.Unix(0, a.ns.Load()) }

// newArrivalEnv is newEnv whose deliveries arrive at the time set on the
// returned arrivals (now until set).
func newArrivalEnv(t testing.TB, lo loopmail.Options) (*env, *arrivals) {
	a := &arrivals{}
	a.set(time.Now())
	lo.Now = a.now
	return newEnv(t, lo), a
}

// junkKind is one kind of mail an attacker sends with the ipsync subject.
type junkKind int

const (
	junkOtherKey junkKind = iota // a sealed message of another server key
	junkText                     // plain text
	junkLarge                    // 100 KiB of text
)

func (e *env) junk(t testing.TB, kind junkKind, other codec.ServerKey, i int, now time.Time) []byte {
	switch kind {
	case junkOtherKey:
		return plainMail(testSubject, sealWith(t, other, payload(uint64(1_000_000+i), "198.51.100.66", now)), now)
	case junkText:
		return plainMail(testSubject, fmt.Sprintf("not an address %d", i), now)
	}
	return plainMail(testSubject, strings.Repeat("junk line of a large message\n", 100<<10/29), now)
}

// TestGenuineUnderJunk: junk with the ipsync subject sent after a genuine
// message must not hide it: one fresh `fetch --once` finds it, and a
// second run downloads nothing again.
func TestGenuineUnderJunk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		junk      int
		kinds     []junkKind
		noESearch bool
	}{
		{"5 other-key", 5, []junkKind{junkOtherKey}, false},
		{"5 mixed, plain search", 5, []junkKind{junkOtherKey, junkText, junkLarge}, true},
		{"1000 small and large", 1000, []junkKind{junkOtherKey, junkLarge}, false},
		{"10000 small and large", 10000, []junkKind{junkOtherKey, junkText, junkLarge, junkLarge}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.junk >= 10000 && testing.Short() {
				t.Skip("seeds 10,000 messages")
			}
			t.Parallel()
			e, arrive := newArrivalEnv(t, loopmail.Options{NoESEARCH: tt.noESearch})
			now := time.Now()
			other, _ := codec.GenerateServerKey(nil)
			arrive.set(now.Add(-2 * time.Hour))
			e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(41, "192.0.2.41", now.Add(-2*time.Hour))), now))
			arrive.set(now.Add(-time.Hour))
			e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(42, "192.0.2.42", now.Add(-time.Hour))), now))
			for i := range tt.junk {
				arrive.set(now.Add(-time.Hour + time.Duration(i+1)*time.Second/10))
				e.deliver(e.junk(t, tt.kinds[i%len(tt.kinds)], other, i, now))
			}
			o, _ := e.options()
			o.StatePath = filepath.Join(t.TempDir(), "state.json")
			e.srv.ResetStats()
			got, err := fetchOnce(t, e.newFetcher(o))
			if err != nil || got.Seq != 42 || got.IPv4 != netip.MustParseAddr("192.0.2.42") {
				t.Fatalf("FetchOnce(genuine under %d junk) = %+v, %v; want seq 42", tt.junk, got, err)
			}
			first := e.srv.Stats()
			t.Logf("first fetch: %d commands, %d bytes from the server", first.IMAPCommands, first.IMAPBytesOut)
			if got.Problem != "" {
				t.Errorf("Problem = %q, want none: the address is current", got.Problem)
			}
			e.srv.ResetStats()
			if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 42 {
				t.Fatalf("second FetchOnce = %+v, %v; want seq 42", got, err)
			}
			if again := e.srv.Stats().IMAPBytesOut; again > 2000 {
				t.Errorf("second fetch read %d bytes from the server, want only the protocol overhead (nothing read twice)", again)
			}
		})
	}
}

// TestKnownSeqUnderJunk: a client that knew seq 100 finds seq 200 under
// 1,000 junk messages in one run.
func TestKnownSeqUnderJunk(t *testing.T) {
	t.Parallel()
	e, arrive := newArrivalEnv(t, loopmail.Options{})
	now := time.Now()
	other, _ := codec.GenerateServerKey(nil)
	arrive.set(now.Add(-3 * time.Hour))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(100, "192.0.2.100", now.Add(-3*time.Hour))), now))
	o, _ := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 100 {
		t.Fatalf("FetchOnce = %+v, %v; want seq 100", got, err)
	}
	arrive.set(now.Add(-time.Hour))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(200, "192.0.2.200", now.Add(-time.Hour))), now))
	for i := range 1000 {
		arrive.set(now.Add(-time.Hour + time.Duration(i+1)*time.Second))
		e.deliver(e.junk(t, junkOtherKey, other, i, now))
	}
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 200 {
		t.Fatalf("FetchOnce(seq 200 under 1000 junk) = %+v, %v; want seq 200 in one run", got, err)
	}
}

// TestReplayedOldAboveNewest: a genuine old message re-appended above the
// newest must not roll a client back, whether it has no state or was
// offline while both were sent.
func TestReplayedOldAboveNewest(t *testing.T) {
	t.Parallel()
	for _, offline := range []bool{false, true} {
		t.Run(fmt.Sprintf("offline=%v", offline), func(t *testing.T) {
			t.Parallel()
			e, arrive := newArrivalEnv(t, loopmail.Options{})
			now := time.Now()
			o, _ := e.options()
			o.StatePath = filepath.Join(t.TempDir(), "state.json")
			if offline {
				arrive.set(now.Add(-5 * 24 * time.Hour))
				e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now.Add(-5*24*time.Hour))), now))
				if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 1 {
					t.Fatalf("FetchOnce = %+v, %v; want seq 1", got, err)
				}
			}
			s1 := plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", now.Add(-3*24*time.Hour))), now)
			arrive.set(now.Add(-3 * 24 * time.Hour))
			e.deliver(s1)
			arrive.set(now.Add(-time.Hour))
			e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(3, "192.0.2.3", now.Add(-time.Hour))), now))
			arrive.set(now)
			e.deliver(s1) // the replay
			got, err := fetchOnce(t, e.newFetcher(o))
			if err != nil || got.Seq != 3 || got.IPv4 != netip.MustParseAddr("192.0.2.3") {
				t.Fatalf("FetchOnce(replayed seq 2 above seq 3) = %+v, %v; want seq 3", got, err)
			}
		})
	}
}

// TestReplayWithServerClockAhead: the early stop must leave room for the
// server's clock running ahead of the mail server's (up to MaxFuture). With
// the server 8 min ahead, G and then N (newer) delivered a minute apart,
// and G replayed exactly Slack after its issued_at, the replay passes as
// "delivered on time"; its cutoff must still reach below N.
func TestReplayWithServerClockAhead(t *testing.T) {
	t.Parallel()
	e, arrive := newArrivalEnv(t, loopmail.Options{})
	o, _ := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	const skew = 8 * time.Minute // less than the default MaxFuture
	slack := o.Slack
	if slack == 0 {
		slack = DefaultSlack
	}
	real0 := time.Now().Add(-2 * time.Hour) // the mail server's clock
	g := plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", real0.Add(skew))), real0)
	arrive.set(real0)
	e.deliver(g)
	arrive.set(real0.Add(time.Minute))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", real0.Add(time.Minute+skew))), real0))
	arrive.set(real0.Add(skew + slack)) // the replay, just "on time"
	e.deliver(g)
	got, err := fetchOnce(t, e.newFetcher(o))
	if err != nil || got.Seq != 2 {
		t.Fatalf("FetchOnce(replayed seq 1 above seq 2, server clock %v ahead) = %+v, %v; want seq 2", skew, got, err)
	}
}

// TestWrongKeyThenRightKey: with the wrong key the client reports why,
// keeps the cached address only as the last known one, and once the right
// key is configured it finds the server's message without a new publish.
func TestWrongKeyThenRightKey(t *testing.T) {
	t.Parallel()
	e, arrive := newArrivalEnv(t, loopmail.Options{})
	now := time.Now()
	o, _ := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	arrive.set(now.Add(-5 * time.Hour))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now.Add(-5*time.Hour))), now))
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 1 {
		t.Fatalf("FetchOnce = %+v, %v; want seq 1", got, err)
	}
	for i := range 12 {
		arrive.set(now.Add(-4*time.Hour + time.Duration(i)*20*time.Minute))
		e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(uint64(2+i), "192.0.2.2", now.Add(-4*time.Hour+time.Duration(i)*20*time.Minute))), now))
	}
	wrong, _ := codec.GenerateServerKey(nil)
	bad := o
	bad.Keys = []codec.ClientKey{wrong.ClientKey()}
	got, err := fetchOnce(t, e.newFetcher(bad))
	want := fmt.Sprintf("12 messages signed by another key (key id %s; this client holds %s)", e.sk.ID(), wrong.ID())
	if err != nil || got.Seq != 1 || got.Problem != want {
		t.Fatalf("FetchOnce(wrong key) = seq %d, problem %q, %v; want the cached seq 1 with problem %q", got.Seq, got.Problem, err, want)
	}
	// Again with the wrong key: the diagnosis persists without reading them again.
	e.srv.ResetStats()
	if got, err := fetchOnce(t, e.newFetcher(bad)); err != nil || got.Problem != want {
		t.Fatalf("FetchOnce(wrong key, again) = problem %q, %v; want %q", got.Problem, err, want)
	}
	if n := e.srv.Stats().IMAPBytesOut; n > 2000 {
		t.Errorf("second wrong-key fetch read %d bytes, want nothing read again", n)
	}
	got, err = fetchOnce(t, e.newFetcher(o))
	if err != nil || got.Seq != 13 || got.Problem != "" {
		t.Fatalf("FetchOnce(right key again) = seq %d, problem %q, %v; want seq 13, no problem", got.Seq, got.Problem, err)
	}
}

// TestFreshClientWrongKey: no address at all and only messages of another
// key: ErrNoMessage with the diagnosis.
func TestFreshClientWrongKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now)), now))
	wrong, _ := codec.GenerateServerKey(nil)
	o, logs := e.options()
	o.Keys = []codec.ClientKey{wrong.ClientKey()}
	got, err := fetchOnce(t, e.newFetcher(o))
	want := fmt.Sprintf("1 message signed by another key (key id %s; this client holds %s)", e.sk.ID(), wrong.ID())
	if !errors.Is(err, ErrNoMessage) || got.Problem != want {
		t.Fatalf("FetchOnce = %+v, %v; want ErrNoMessage with problem %q", got, err, want)
	}
	if len(logs.Lines("no current address")) != 1 {
		t.Errorf("problem not logged:\n%s", logs)
	}
}

// TestFutureMessageBecomesValid: a message dated beyond MaxFuture is
// diagnosed, kept, and accepted when its time comes, with its real age.
func TestFutureMessageBecomesValid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	o, _ := e.options()
	o.Clock = clk
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", t0.Add(-time.Minute))), t0))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", t0.Add(21*time.Minute))), t0))
	got, err := fetchOnce(t, e.newFetcher(o))
	want := "1 message dated 21 min in the future (is this PC's clock right?)"
	if err != nil || got.Seq != 1 || got.Problem != want {
		t.Fatalf("FetchOnce = seq %d, problem %q, %v; want seq 1 with %q", got.Seq, got.Problem, err, want)
	}
	clk.Advance(12 * time.Minute)
	got, err = fetchOnce(t, e.newFetcher(o))
	if err != nil || got.Seq != 2 || got.Problem != "" || got.Age != -9*time.Minute {
		t.Fatalf("FetchOnce 12 min later = seq %d, age %v, problem %q, %v; want seq 2 dated 9 min ahead, no problem", got.Seq, got.Age, got.Problem, err)
	}
}

// TestRunAcceptsFutureMessageWhenDue: a running client wakes up when a
// future-dated message may be accepted, without a poll or new mail.
func TestRunAcceptsFutureMessageWhenDue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	o, _ := e.options()
	o.Clock, o.Rand, o.Idle, o.PollEvery = clk, seededRand(9), IdleOff, 24*time.Hour
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", t0)), t0))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", t0.Add(30*time.Minute))), t0))
	ups := newUpdates()
	runFetcher(t, e.newFetcher(o), ups)
	u := ups.waitFor(t, "with the problem", func(u Update) bool { return checked(u) && u.Problem != "" })
	if u.Payload.Seq != 1 || !strings.Contains(u.Problem, "30 min in the future") {
		t.Errorf("Update = seq %d problem %q, want seq 1 and a message 30 min in the future", u.Payload.Seq, u.Problem)
	}
	clk.WaitTimers(t, 1)
	if d := clk.AdvanceToNext(); d != 20*time.Minute {
		t.Errorf("next timer after %v, want 20m (when the message is MaxFuture ahead)", d)
	}
	u = ups.waitFor(t, "with seq 2", func(u Update) bool { return !u.Fetching && u.Payload.Seq == 2 })
	if u.Problem != "" {
		t.Errorf("Problem after acceptance = %q, want none", u.Problem)
	}
}

// TestNameMismatchDiagnosed: messages of this key naming another server.
func TestNameMismatchDiagnosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	p := payload(1, "192.0.2.1", now)
	p.Name = "office-2"
	e.deliver(plainMail("ipsync office-2", sealWith(t, e.sk, p), now))
	o, _ := e.options() // name office, subject "ipsync office" (a prefix)
	got, err := fetchOnce(t, e.newFetcher(o))
	want := "1 message from `office-2`, this client is `office` (check `name` in the config)"
	if !errors.Is(err, ErrNoMessage) || got.Problem != want {
		t.Fatalf("FetchOnce = %+v, %v; want ErrNoMessage with %q", got, err, want)
	}
}

// TestNameTypoDiagnosed: with default subjects, a client named office-pc
// never finds office's messages by subject; it still says why.
func TestNameTypoDiagnosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now)), now))
	o, _ := e.options()
	o.Name = "office-pc"
	got, err := fetchOnce(t, e.newFetcher(o))
	want := "1 message from `office`, this client is `office-pc` (check `name` in the config)"
	if !errors.Is(err, ErrNoMessage) || got.Problem != want {
		t.Fatalf("FetchOnce = %+v, %v; want ErrNoMessage with %q", got, err, want)
	}
}

// TestCheckNewest: check opens the newest message with the configured key
// and name and says what is wrong.
func TestCheckNewest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(7, "192.0.2.7", now)), now))
	wrong, _ := codec.GenerateServerKey(nil)
	tests := []struct {
		name string
		mod  func(*Options)
		want string
		ok   bool
	}{
		{"valid", func(*Options) {}, `newest message from "office" opens and verifies: 192.0.2.7 (seq 7`, true},
		{"wrong key", func(o *Options) { o.Keys = []codec.ClientKey{wrong.ClientKey()} },
			fmt.Sprintf("signed by another key (key id %s; this client holds %s)", e.sk.ID(), wrong.ID()), false},
		{"wrong name", func(o *Options) { o.Name, o.Subject = "office-pc", testSubject }, "newest ipsync message is from `office`, this client is `office-pc`", false},
		{"wrong name, default subject", func(o *Options) { o.Name = "office-pc" }, "from `office`, this client is `office-pc`", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, _ := e.options()
			tt.mod(&o)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			got, err := e.newFetcher(o).CheckNewest(ctx)
			if tt.ok {
				if err != nil || !strings.Contains(got, tt.want) {
					t.Errorf("CheckNewest(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckNewest(%s) = %q, %v; want an error with %q", tt.name, got, err, tt.want)
			}
		})
	}
}

// TestManyValidMessagesOverRounds: a fresh client, a mailbox of genuine
// messages that all arrived late (a restored mailbox: no early stop) and a
// small byte budget: the scan goes on round after round, reading each
// message once, and takes the highest sequence, wherever it is.
func TestManyValidMessagesOverRounds(t *testing.T) {
	t.Parallel()
	e, arrive := newArrivalEnv(t, loopmail.Options{})
	now := time.Now()
	arrive.set(now)
	for i := range 300 {
		seq := uint64(i + 1)
		if i == 100 {
			seq = 5000 // the newest, low in the mailbox
		}
		e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(seq, fmt.Sprintf("192.0.2.%d", i%200+1), now.Add(-48*time.Hour+time.Duration(i)*time.Minute))), now))
	}
	o, logs := e.options()
	o.RoundBytes = 16 << 10
	e.srv.ResetStats()
	got, err := fetchOnce(t, e.newFetcher(o))
	if err != nil || got.Seq != 5000 {
		t.Fatalf("FetchOnce = %+v, %v; want seq 5000", got, err)
	}
	st := e.srv.Stats()
	rounds := len(logs.Lines("reading on"))
	t.Logf("%d bytes from the server, %d commands, %d rounds", st.IMAPBytesOut, st.IMAPCommands, rounds+1)
	if rounds < 2 {
		t.Errorf("rounds = %d, want several with a 16 KiB budget", rounds+1)
	}
	if max := int64(300 * 1400); st.IMAPBytesOut > max {
		t.Errorf("bytes from the server = %d, want under %d (each message read about once)", st.IMAPBytesOut, max)
	}
}
