package fetcher

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

func hasV4(a string) func(Update) bool {
	want := netip.MustParseAddr(a)
	return func(u Update) bool { return !u.Fetching && u.Payload.IPv4 == want }
}

func checked(u Update) bool { return !u.Fetching && !u.LastCheck.IsZero() }

func TestRunIdlePushAndReconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now)), now))
	o, logs := e.options()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()
	f := e.newFetcher(o)
	ups := newUpdates()
	runFetcher(t, f, ups)

	first := ups.waitFor(t, "with the first address", hasV4("192.0.2.1"))
	if first.Mode != ModeIdle || first.State != Current || !first.Changed {
		t.Errorf("first Update = mode %q state %v changed %v, want idle, current, changed", first.Mode, first.State, first.Changed)
	}

	// Push: a mail sent over SMTP during IDLE arrives without any poll.
	e.sendSMTP(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", now)), now))
	u := ups.waitFor(t, "pushed by IDLE", hasV4("192.0.2.2"))
	if !u.Changed || u.Previous.IPv4 != netip.MustParseAddr("192.0.2.1") || u.Mode != ModeIdle {
		t.Errorf("pushed Update = changed %v previous %v mode %q, want changed from 192.0.2.1 in idle", u.Changed, u.Previous.IPv4, u.Mode)
	}

	// The server drops every connection mid-IDLE; a later delivery still
	// arrives after the reconnect.
	e.srv.DropIMAPConnections()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(3, "192.0.2.3", now)), now))
	ups.waitFor(t, "after the connection drop", hasV4("192.0.2.3"))
	e.srv.DropIMAPConnections()
	e.sendSMTP(plainMail(testSubject, sealWith(t, e.sk, payload(4, "192.0.2.4", now)), now))
	u = ups.waitFor(t, "after the second drop", hasV4("192.0.2.4"))
	if u.State != Current {
		t.Errorf("State after reconnect = %v, want current", u.State)
	}
}

func TestRunPollWhenNoIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{NoIDLE: true})
	clk := newFakeClock(time.Now())
	o, logs := e.options()
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	}()
	o.Clock = clk
	o.Rand = seededRand(1)
	f := e.newFetcher(o)
	ups := newUpdates()
	runFetcher(t, f, ups)

	u := ups.waitFor(t, "after the first poll", checked)
	if u.Mode != ModePoll || u.State != Unknown {
		t.Errorf("first poll Update = mode %q state %v, want poll, unknown", u.Mode, u.State)
	}
	clk.WaitTimers(t, 1)
	e.sendSMTP(plainMail(testSubject, sealWith(t, e.sk, payload(5, "192.0.2.5", clk.Now())), clk.Now()))
	start := clk.Now()
	e.waitConnsClosed(t) // the first poll session has logged out
	e.srv.ResetStats()
	clk.Advance(DefaultPollEvery)
	ups.waitFor(t, "from the next poll", hasV4("192.0.2.5"))
	if clk.Now().Sub(start) > DefaultPollEvery {
		t.Errorf("poll took %v of clock time, want at most %v", clk.Now().Sub(start), DefaultPollEvery)
	}
	if m := e.srv.Stats().IMAPConnsMax; m > 1 {
		t.Errorf("IMAPConnsMax during a poll = %d, want 1", m)
	}
}

// TestFetchNowCoalesces: many FetchNow calls while one is pending lead to
// at most two fetches.
func TestFetchNowCoalesces(t *testing.T) {
	t.Parallel()
	for _, idle := range []IdleMode{IdleOff, IdleOn} {
		t.Run(string(idle), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, loopmail.Options{})
			clk := newFakeClock(time.Now())
			o, _ := e.options()
			o.Clock, o.Rand, o.Idle = clk, seededRand(2), idle
			f := e.newFetcher(o)
			var fetches atomic.Int64
			ups := newUpdates()
			runFetcher(t, f, ConsumerFunc(func(u Update) {
				if u.Fetching {
					fetches.Add(1)
				}
				ups.Update(u)
			}))
			ups.waitFor(t, "after the first fetch", checked)
			clk.WaitTimers(t, 1)
			fetches.Store(0)
			e.srv.ResetStats()
			for range 100 {
				f.FetchNow()
			}
			ups.waitFor(t, "after FetchNow", checked)
			clk.WaitTimers(t, 1)
			// Any request merged while the first fetch ran is served now.
			for len(ups.ch) > 0 {
				<-ups.ch
			}
			if n := fetches.Load(); n < 1 || n > 2 {
				t.Errorf("fetches after 100 FetchNow calls = %d, want 1 or 2", n)
			}
			t.Logf("100 FetchNow calls: %d fetches, %d IMAP commands", fetches.Load(), e.srv.Stats().IMAPCommands)
		})
	}
}

func TestStatePersistsAcrossRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	o, _ := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "client-state.json")
	issued := time.Now().Add(-3 * time.Minute)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(4, "192.0.2.44", issued)), issued))
	if _, err := fetchOnce(t, e.newFetcher(o)); err != nil {
		t.Fatal(err)
	}

	// Restart with the server unreachable: the first Update already shows
	// the last known address and its age.
	o2 := o
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o2.IMAP.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	o2.Clock = newFakeClock(time.Now())
	o2.Rand = seededRand(3)
	ups := newUpdates()
	runFetcher(t, e.newFetcher(o2), ups)
	var first Update
	select {
	case first = <-ups.ch:
	case <-time.After(waitTimeout):
		t.Fatal("no first Update")
	}
	if first.Payload.IPv4 != netip.MustParseAddr("192.0.2.44") || first.Payload.Seq != 4 || first.State != Current || first.Mode != "" || first.ReceivedAt.IsZero() || !first.Payload.IssuedAt.Equal(issued.UTC().Truncate(time.Second)) {
		t.Errorf("first Update after restart = %+v, want the saved address 192.0.2.44 (seq 4), current, before connecting", first)
	}
	u := ups.waitFor(t, "reporting the unreachable mail server", func(u Update) bool { return u.State == Error })
	if u.Payload.IPv4 != netip.MustParseAddr("192.0.2.44") || u.Err == nil {
		t.Errorf("error Update = %+v, want the last address kept and Err set", u)
	}
}

func TestOnChangeHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	dir := t.TempDir()
	out := filepath.Join(dir, "env.txt")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$1\"\necho hook ran\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now)), now))
	o, logs := e.options()
	o.OnChange = []string{script, out}
	f := e.newFetcher(o)
	ups := newUpdates()
	stop := runFetcher(t, f, ups)
	ups.waitFor(t, "first", hasV4("192.0.2.1"))
	p := payload(2, "192.0.2.2", now)
	p.IPv6 = netip.MustParseAddr("2001:db8::2")
	e.sendSMTP(plainMail(testSubject, sealWith(t, e.sk, p), now))
	ups.waitFor(t, "second", hasV4("192.0.2.2"))
	// Wait for the hook's log line, then stop.
	deadline := time.Now().Add(waitTimeout)
	for len(logs.Lines("on_change command ran")) < 2 {
		select {
		case <-ups.ch:
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hook did not run twice:\n%s", logs)
		}
	}
	stop()
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(string(data), "\n")
	for _, want := range []string{"IPSYNC_NAME=office", "IPSYNC_IPV4=192.0.2.2", "IPSYNC_IPV6=2001:db8::2", "IPSYNC_PREVIOUS_IPV4=192.0.2.1"} {
		if !slices.Contains(env, want) {
			t.Errorf("hook environment lacks %q", want)
		}
	}
	if !strings.Contains(logs.String(), "hook ran") {
		t.Errorf("hook output not logged:\n%s", logs)
	}
}

func TestStalenessAndRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", t0)), t0))
	o, _ := e.options()
	o.Clock, o.Rand, o.Idle = clk, seededRand(4), IdleOff
	o.PollEvery = 24 * time.Hour
	f := e.newFetcher(o)
	ups := newUpdates()
	runFetcher(t, f, ups)
	if u := ups.waitFor(t, "first", hasV4("192.0.2.1")); u.State != Current {
		t.Fatalf("State = %v, want current", u.State)
	}
	clk.WaitTimers(t, 1)
	// Heartbeat 1h: stale after 2h10m without a newer message.
	if d := clk.AdvanceToNext(); d != 2*time.Hour+10*time.Minute {
		t.Errorf("next timer after %v, want the stale deadline 2h10m", d)
	}
	if u := ups.waitFor(t, "stale", func(u Update) bool { return u.State == Stale }); u.Payload.IPv4 != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("stale Update payload = %v, want the last address kept", u.Payload.IPv4)
	}
	clk.WaitTimers(t, 1)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.1", clk.Now())), clk.Now()))
	f.FetchNow()
	if u := ups.waitFor(t, "current again", func(u Update) bool { return u.State == Current }); u.Payload.Seq != 2 || u.Changed {
		t.Errorf("recovered Update = seq %d changed %v, want seq 2, unchanged address", u.Payload.Seq, u.Changed)
	}
}

func TestProbeUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := netip.MustParseAddrPort(closed.Addr().String())
	closed.Close()
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	openAddr := netip.MustParseAddrPort(open.Addr().String())
	var target atomic.Pointer[netip.AddrPort]
	target.Store(&closedAddr)

	t0 := time.Now()
	clk := newFakeClock(t0)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "203.0.113.1", t0)), t0))
	o, logs := e.options()
	o.Clock, o.Rand = clk, seededRand(5)
	o.ProbePort = 22
	o.ProbeTarget = func(p codec.Payload) netip.AddrPort {
		if p.IPv4 != netip.MustParseAddr("203.0.113.1") {
			t.Errorf("probe for %v, want the payload's address", p.IPv4)
		}
		return *target.Load()
	}
	f := e.newFetcher(o)
	var fetches atomic.Int64
	ups := newUpdates()
	runFetcher(t, f, ConsumerFunc(func(u Update) {
		if u.Fetching {
			fetches.Add(1)
		}
		ups.Update(u)
	}))
	u := ups.waitFor(t, "unreachable", func(u Update) bool { return u.State == Unreachable })
	if u.Err == nil || u.Payload.IPv4 != netip.MustParseAddr("203.0.113.1") {
		t.Errorf("unreachable Update = %+v, want Err and the address kept", u)
	}
	// The failed probe triggers an immediate fetch.
	ups.waitFor(t, "fetch after the failed probe", func(u Update) bool { return u.Fetching })
	if n := fetches.Load(); n < 2 {
		t.Errorf("fetches = %d, want the initial one and one after the probe failed", n)
	}
	target.Store(&openAddr)
	// Step the clock to the next probe.
	for moved := time.Duration(0); moved < DefaultProbeEvery; {
		clk.WaitTimers(t, 1)
		moved += clk.AdvanceToNext()
	}
	ups.waitFor(t, "current after recovery", func(u Update) bool { return u.State == Current && !u.Fetching })
	if len(logs.Lines("reachable again")) != 1 {
		t.Errorf("no recovery log line")
	}
}

// TestSharedMailboxConnectionCap: ten clients (Idle auto) on a mailbox
// capped at three connections all get a new address within one poll
// interval, none reports Error, and never more than three connections are
// open while they do.
func TestSharedMailboxConnectionCap(t *testing.T) {
	t.Parallel()
	for _, style := range []loopmail.LimitStyle{loopmail.LimitLoginNO, loopmail.LimitGreetingBYE} {
		t.Run(string(style), func(t *testing.T) {
			t.Parallel()
			testConnectionCap(t, style)
		})
	}
}

func testConnectionCap(t *testing.T, style loopmail.LimitStyle) {
	const clients, connCap = 10, 3
	e := newEnv(t, loopmail.Options{MaxIMAPConnsPerUser: connCap, LimitStyle: style})
	t0 := time.Now()
	clk := newFakeClock(t0)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", t0)), t0))

	var mu sync.Mutex
	last := make([]Update, clients)
	var errorsSeen []string
	changed := make(chan int, 1000)
	logs := make([]*logBuffer, clients)
	defer func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("client %d log:\n%s", i, l)
			}
		}
	}()
	for i := range clients {
		o, lb := e.options()
		logs[i] = lb
		o.Clock, o.Rand = clk, seededRand(uint64(100+i))
		f := e.newFetcher(o)
		runFetcher(t, f, ConsumerFunc(func(u Update) {
			mu.Lock()
			defer mu.Unlock()
			if u.State == Error {
				errorsSeen = append(errorsSeen, u.Err.Error())
			}
			if !u.Fetching {
				last[i] = u
				if u.Payload.Seq == 2 {
					select {
					case changed <- i:
					default:
					}
				}
			}
		}))
	}
	allChecked := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range last {
			if u.LastCheck.IsZero() || u.Payload.Seq != 1 {
				return false
			}
		}
		return true
	}
	// Start-up: step the clock (one timer at a time) until every client
	// has read the mailbox once.
	for steps := 0; !allChecked(); steps++ {
		clk.WaitTimers(t, clients)
		if allChecked() {
			break
		}
		if steps > 1000 {
			t.Fatal("clients did not all read the mailbox during start-up")
		}
		clk.AdvanceToNext()
	}
	clk.WaitTimers(t, clients)
	modes := map[string]int{}
	mu.Lock()
	for _, u := range last {
		modes[u.Mode]++
	}
	mu.Unlock()
	t.Logf("modes after start-up: %v", modes)
	if modes[ModeIdle] > connCap-1 {
		t.Errorf("%d clients idle, want at most %d (one connection left for pollers)", modes[ModeIdle], connCap-1)
	}

	e.srv.ResetStats()
	start := clk.Now()
	e.sendSMTP(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", start)), start))
	got := map[int]bool{}
	for len(got) < clients {
		clk.WaitTimers(t, clients)
		for drained := false; !drained; {
			select {
			case i := <-changed:
				got[i] = true
			default:
				drained = true
			}
		}
		if len(got) == clients {
			break
		}
		if clk.Now().Sub(start) > DefaultPollEvery {
			t.Fatalf("after one poll interval only %d of %d clients have the new address", len(got), clients)
		}
		// Real poll sessions are minutes apart; here the next one starts
		// at once, so let the server finish closing the last one first
		// (only the idling clients keep a connection).
		e.waitConnsAtMost(t, int64(modes[ModeIdle]))
		clk.AdvanceToNext()
		// Let pushed updates land before judging the clock.
	}
	if clk.Now().Sub(start) > DefaultPollEvery {
		t.Errorf("last client updated %v after the mail, want within %v", clk.Now().Sub(start), DefaultPollEvery)
	}
	st := e.srv.Stats()
	t.Logf("after the new mail: %v of clock time, %d IMAP commands, max %d sessions logged in (%d connections open, refused ones included), %d limit refusals",
		clk.Now().Sub(start), st.IMAPCommands, st.IMAPLoggedInMax, st.IMAPConnsMax, st.IMAPLimitRefusals)
	// The cap counts sessions the server admits; a connection it is
	// refusing is open for a moment too, and is not over the cap.
	if st.IMAPLoggedInMax > connCap {
		t.Errorf("IMAPLoggedInMax = %d, want at most %d", st.IMAPLoggedInMax, connCap)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errorsSeen) > 0 {
		t.Errorf("clients reported State Error %d times: %q", len(errorsSeen), errorsSeen[0])
	}
}

// BenchmarkPublishToUpdateLatency measures SMTP submission of a new address
// to the Update reporting it, with IDLE over loopback.
func BenchmarkPublishToUpdateLatency(b *testing.B) {
	e := newEnv(b, loopmail.Options{})
	o, _ := e.options()
	f := e.newFetcher(o)
	ups := newUpdates()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx, ups) }()
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(b, e.sk, payload(1, "10.0.0.1", now)), now))
	f.FetchNow()
	ups.waitFor(b, "first", func(u Update) bool { return u.Payload.Seq == 1 && u.Mode == ModeIdle && !u.Fetching })
	// Prepare the mails outside the timed part.
	mails := make([][]byte, b.N)
	for i := range b.N {
		p := payload(uint64(i+2), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), now)
		mails[i] = plainMail(testSubject, sealWith(b, e.sk, p), now)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		e.sendSMTP(mails[i])
		seq := uint64(i + 2)
		ups.waitFor(b, "with the new address", func(u Update) bool { return u.Payload.Seq == seq && !u.Fetching })
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*95)/100].Microseconds())/1000, "p95-ms")
	cancel()
	<-done
}

func TestHookEnv(t *testing.T) {
	t.Parallel()
	environ := []string{"PATH=/bin", "IPSYNC_PASSWORD=s3cret", "ipsync_password=lower", "HOME=/home/u", "=C:=C:\\dir", "IPSYNC_PASSWORD_FILE=/f"}
	tests := []struct {
		name     string
		exclude  []string
		foldCase bool
		want     []string
	}{
		{"none", nil, false, environ},
		{"exact", []string{"IPSYNC_PASSWORD"}, false, []string{"PATH=/bin", "ipsync_password=lower", "HOME=/home/u", "=C:=C:\\dir", "IPSYNC_PASSWORD_FILE=/f"}},
		{"windows case", []string{"IPSYNC_PASSWORD"}, true, []string{"PATH=/bin", "HOME=/home/u", "=C:=C:\\dir", "IPSYNC_PASSWORD_FILE=/f"}},
		{"several", []string{"HOME", "PATH", "NOT_SET"}, false, []string{"IPSYNC_PASSWORD=s3cret", "ipsync_password=lower", "=C:=C:\\dir", "IPSYNC_PASSWORD_FILE=/f"}},
		{"no prefix match", []string{"IPSYNC"}, true, environ},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := hookEnv(slices.Clone(environ), tt.exclude, tt.foldCase); !slices.Equal(got, tt.want) {
				t.Errorf("hookEnv(%q, fold %v) = %q, want %q", tt.exclude, tt.foldCase, got, tt.want)
			}
		})
	}
}

// TestOnChangeHookEnvExclude runs a real on_change command: a variable
// named in HookEnvExclude (a secret) is not in its environment, so neither
// the command nor its logged output can see it. Not parallel: it sets
// process environment variables.
func TestOnChangeHookEnvExclude(t *testing.T) {
	t.Setenv("IPSYNC_TEST_SECRET", "s3cret-value")
	t.Setenv("IPSYNC_TEST_KEEP", "kept-value")
	dir := t.TempDir()
	out := filepath.Join(dir, "env.txt")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$1\"\necho \"secret=[$IPSYNC_TEST_SECRET] keep=[$IPSYNC_TEST_KEEP]\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	log, logs := newLogger(t)
	f, err := New(Options{
		IMAP:           mailconn.Endpoint{Host: "127.0.0.1", Port: 1, TLS: mailconn.TLSNone},
		Auth:           passwordAuth(testUser, ""),
		Name:           testName,
		Decode:         func(string) (codec.Payload, error) { return codec.Payload{}, nil },
		OnChange:       []string{script, out},
		HookEnvExclude: []string{"IPSYNC_TEST_SECRET"},
		Logger:         log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	f.execHook(ctx, payload(1, "192.0.2.1", time.Now()), payload(2, "192.0.2.2", time.Now()))
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("hook did not run: %v\n%s", err, logs)
	}
	env := strings.Split(string(data), "\n")
	for _, want := range []string{"IPSYNC_TEST_KEEP=kept-value", "IPSYNC_IPV4=192.0.2.2", "IPSYNC_PREVIOUS_IPV4=192.0.2.1"} {
		if !slices.Contains(env, want) {
			t.Errorf("hook environment lacks %q", want)
		}
	}
	if strings.Contains(string(data), "s3cret-value") || strings.Contains(logs.String(), "s3cret-value") {
		t.Errorf("excluded secret reached the hook or the log:\nenv:\n%s\nlog:\n%s", data, logs)
	}
	if !strings.Contains(logs.String(), "secret=[] keep=[kept-value]") {
		t.Errorf("hook output not logged as expected:\n%s", logs)
	}
}
