package interop

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/fetcher"
	"ipsync/internal/dovecottest"
)

// BenchmarkDovecotManyClients runs 1,000 fetchers (goroutines in this
// process, idle auto, polling every 30 s once the mailbox is at its cap) on
// one shared Dovecot mailbox with mail_max_userip_connections = 15, and
// per iteration publishes a new address and waits until every client shows
// it. The clients start 10 ms apart (PCs do not all boot in the same
// second). It reports the time from the publish until the last client is
// current, Dovecot's CPU over that time, the sessions and limit refusals
// over it, and fails on any State Error after start-up (those during
// start-up are reported).
func BenchmarkDovecotManyClients(b *testing.B) {
	const clients, connCap = 1000, 15
	const pollEvery = 30 * time.Second
	e := newEnv(b, dovecottest.Options{MaxUserIPConnections: connCap})
	px := startProxy(b, e.srv.Addr)
	pub := e.newPublisher(&appendMailer{a: e.admin}, nil)
	first := publish(b, pub, "198.51.100.10")

	var errs atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	seqOf := make([]uint64, clients)
	seenAt := make([]time.Time, clients) // when seqOf last changed
	modeOf := make([]string, clients)
	changed := make(chan struct{}, 1)
	start := time.Now()
	for i := range clients {
		o := e.fetcherOptions(px.endpoint(b))
		o.Idle = fetcher.IdleAuto
		o.PollEvery = pollEvery
		o.Logger = nil
		if i > 0 {
			pace := time.NewTimer(10 * time.Millisecond)
			<-pace.C
		}
		runFetcher(b, e.newFetcher(o), fetcher.ConsumerFunc(func(u fetcher.Update) {
			if u.State == fetcher.Error || u.State == fetcher.AuthRefused {
				if errs.Add(1) == 1 {
					firstErr.Store(fmt.Sprintf("client %d: %v", i, u.Err))
				}
			}
			if u.Fetching || u.LastCheck.IsZero() {
				return
			}
			mu.Lock()
			if seqOf[i] != u.Payload.Seq {
				seqOf[i], seenAt[i] = u.Payload.Seq, time.Now()
			}
			modeOf[i] = u.Mode
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}))
	}
	// waitAll waits until every client shows seq (at most 3 poll intervals).
	waitAll := func(seq uint64) {
		b.Helper()
		deadline := time.NewTimer(3 * pollEvery)
		defer deadline.Stop()
		for {
			mu.Lock()
			behind := 0
			for _, s := range seqOf {
				if s != seq {
					behind++
				}
			}
			mu.Unlock()
			if behind == 0 {
				return
			}
			select {
			case <-changed:
			case <-deadline.C:
				b.Fatalf("%d of %d clients do not show seq %d after %v", behind, clients, seq, 3*pollEvery)
			}
		}
	}
	waitAll(first.Seq)
	startupErrs := errs.Swap(0)
	b.Logf("start-up: all %d clients current %v after the first started; %d error Updates (first: %v)", clients, time.Since(start).Round(time.Millisecond), startupErrs, firstErr.Load())
	var worst time.Duration
	var cpu time.Duration
	var conns, refusals int
	b.ResetTimer()
	for i := range b.N {
		px.Reset()
		cpu0 := e.dovecotCPU()
		start := time.Now()
		sent := publish(b, pub, fmt.Sprintf("198.51.100.%d", 11+i%200))
		waitAll(sent.Seq)
		took := time.Since(start)
		worst = max(worst, took)
		cpu += e.dovecotCPU() - cpu0
		st := px.Stats()
		conns += st.Conns
		refusals += st.Refusals
		b.Logf("change %d: all %d clients current after %v; %d connections, %d limit refusals, at most %d logged in",
			i+1, clients, took.Round(time.Millisecond), st.Conns, st.Refusals, st.MaxLoggedIn)
		mu.Lock()
		lat := make([]time.Duration, 0, clients)
		modes := map[string]int{}
		for c := range clients {
			lat = append(lat, seenAt[c].Sub(start))
			modes[modeOf[c]]++
		}
		mu.Unlock()
		slices.Sort(lat)
		late := len(lat) - sort.Search(len(lat), func(k int) bool { return lat[k] > pollEvery })
		b.Logf("change %d: time to current p50 %v, p90 %v, p99 %v, max %v; %d clients later than the poll interval (%v); modes %v",
			i+1, lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*9/10].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond),
			lat[len(lat)-1].Round(time.Millisecond), late, pollEvery, modes)
	}
	b.StopTimer()
	b.ReportMetric(worst.Seconds(), "s-to-all-current(max)")
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "dovecot-cpu-ms/change")
	b.ReportMetric(float64(conns)/float64(b.N), "conns/change")
	b.ReportMetric(float64(refusals)/float64(b.N), "refusals/change")
	b.ReportMetric(float64(errs.Load()), "error-updates")
	b.ReportMetric(float64(startupErrs), "startup-error-updates")
	if n := errs.Load(); n > 0 {
		b.Errorf("clients reported State Error or AuthRefused %d times, first: %v", n, firstErr.Load())
	}
}
