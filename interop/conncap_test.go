package interop

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"ipsync/fetcher"
	"ipsync/internal/dovecottest"
)

// TestDovecotConnectionCap: ten fetchers (idle auto) share a mailbox whose
// Dovecot allows 3 connections per user and IP. Dovecot refuses some with
// its real text; the fetchers treat that as normal (never State Error),
// at most cap-1 of them hold an IDLE connection, and all ten get a new
// address within a few poll intervals.
func TestDovecotConnectionCap(t *testing.T) {
	t.Parallel()
	const clients, connCap = 10, 3
	const pollEvery = 2 * time.Second
	e := newEnv(t, dovecottest.Options{MaxUserIPConnections: connCap})
	px := startProxy(t, e.srv.Addr)
	pub := e.newPublisher(&appendMailer{a: e.admin}, nil)
	first := publish(t, pub, "198.51.100.10")

	// One consumer per fetcher; each forwards Updates that end a fetch.
	type report struct {
		i int
		u fetcher.Update
	}
	reports := make(chan report, 100000)
	var mu sync.Mutex
	var errorsSeen []string
	for i := range clients {
		o := e.fetcherOptions(px.endpoint(t))
		o.Idle = fetcher.IdleAuto
		o.PollEvery = pollEvery
		runFetcher(t, e.newFetcher(o), fetcher.ConsumerFunc(func(u fetcher.Update) {
			if u.State == fetcher.Error {
				mu.Lock()
				errorsSeen = append(errorsSeen, fmt.Sprintf("client %d: %v", i, u.Err))
				mu.Unlock()
			}
			if !u.Fetching && !u.LastCheck.IsZero() {
				reports <- report{i, u}
			}
		}))
	}

	// waitAll waits until every client has reported an Update matching ok
	// and returns the last such Update of each.
	waitAll := func(what string, ok func(fetcher.Update) bool) []fetcher.Update {
		t.Helper()
		got := make([]fetcher.Update, clients)
		have := 0
		timer := time.NewTimer(waitTimeout)
		defer timer.Stop()
		for have < clients {
			select {
			case r := <-reports:
				if ok(r.u) {
					if got[r.i].LastCheck.IsZero() {
						have++
					}
					got[r.i] = r.u
				}
			case <-timer.C:
				t.Fatalf("after %v only %d of %d clients reported %s", waitTimeout, have, clients, what)
			}
		}
		return got
	}
	start := time.Now()
	waitAll("the first address", settled(first.Seq))
	t.Logf("all %d clients read the mailbox %v after start", clients, time.Since(start).Round(time.Millisecond))

	// Dovecot 2.3 checks the limit at login against the sessions already
	// registered, so logins racing each other can all pass: a burst of 8
	// plain LOGINs with mail_max_userip_connections=3 admitted 4 in one of
	// three tries. The start-up burst (ten clients at once) is therefore
	// only reported; the cap is checked once the clients have spread out.
	startup := px.Stats()
	px.Reset()
	start = time.Now()
	second := publish(t, pub, "198.51.100.11")
	latest := waitAll("the new address", func(u fetcher.Update) bool {
		return settled(second.Seq)(u) && u.Payload.IPv4.String() == "198.51.100.11"
	})
	t.Logf("all %d clients have the new address %v after it was published", clients, time.Since(start).Round(time.Millisecond))
	modes := map[string]int{}
	for i, u := range latest {
		modes[u.Mode]++
		if u.State != fetcher.Current {
			t.Errorf("client %d: State = %v, want %v", i, u.State, fetcher.Current)
		}
	}
	steady := px.Stats()
	for _, ph := range []struct {
		name string
		st   proxyStats
	}{{"start-up", startup}, {"new address", steady}} {
		t.Logf("%s: %d connections, at most %d logged in at once, %d limit refusals, %d commands, %d bytes up, %d down",
			ph.name, ph.st.Conns, ph.st.MaxLoggedIn, ph.st.Refusals, ph.st.Commands, ph.st.BytesUp, ph.st.BytesDown)
	}
	t.Logf("modes after the new address: %v", modes)
	if modes[fetcher.ModeIdle] > connCap-1 {
		t.Errorf("%d clients idle, want at most %d (one connection left for pollers)", modes[fetcher.ModeIdle], connCap-1)
	}
	// Pollers are jittered, so two racing logins are rare; allow one.
	if steady.MaxLoggedIn > connCap+1 {
		t.Errorf("after start-up, at most %d sessions logged in at once, want at most %d (+1 for Dovecot's racy check)", steady.MaxLoggedIn, connCap)
	}
	refusal := steady.RefusalLine
	if refusal == "" {
		refusal = startup.RefusalLine
	}
	if startup.Refusals+steady.Refusals == 0 {
		t.Errorf("Dovecot refused no connection; the test did not reach the limit")
	} else if !strings.Contains(refusal, "NO [LIMIT] "+dovecotLimitText) {
		t.Errorf("Dovecot's refusal = %q, want a NO [LIMIT] %q", refusal, dovecotLimitText)
	}
	if log := e.log(); !strings.Contains(log, dovecotLimitText) {
		t.Errorf("dovecot.log does not mention %q", dovecotLimitText)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errorsSeen) > 0 {
		t.Errorf("clients reported State Error %d times, first: %s", len(errorsSeen), errorsSeen[0])
	}
}
