package interop

import (
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/fetcher"
	"ipsync/internal/dovecottest"
)

// idleRig is a fetcher IDLEing on Dovecot through a proxy, with its first
// message accepted.
type idleRig struct {
	e     *env
	px    *proxy
	ups   *updates
	start time.Time
}

func newIdleRig(tb testing.TB) *idleRig {
	e := newEnv(tb, dovecottest.Options{})
	px := startProxy(tb, e.srv.Addr)
	o := e.fetcherOptions(px.endpoint(tb))
	o.Idle = fetcher.IdleOn
	ups := newUpdates()
	now := time.Now()
	e.admin.mustAppend("INBOX", e.sealedMail(payload(1, v4(1), now)))
	runFetcher(tb, e.newFetcher(o), ups)
	ups.waitFor(tb, "with the first message, idling", func(u fetcher.Update) bool {
		return settled(1)(u) && u.Mode == fetcher.ModeIdle
	})
	return &idleRig{e: e, px: px, ups: ups, start: now}
}

// mails returns n sealed messages with sequences from 2 and new addresses.
func (r *idleRig) mails(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = r.e.sealedMail(payload(uint64(i+2), v4(i+2), r.start))
	}
	return out
}

// timing splits the time from the start of an APPEND to the fetcher's
// Update: the APPEND itself, Dovecot's wait before it tells the IDLEing
// fetcher (EXISTS), and the fetcher's own share (from EXISTS passing the
// proxy to the Update).
type timing struct {
	Total, Append, Dovecot, Fetcher time.Duration
	started                         time.Time // when the APPEND began
}

// deliver APPENDs mail (sequence seq) and waits for the Update carrying it.
func (r *idleRig) deliver(tb testing.TB, mail []byte, seq uint64) (timing, fetcher.Update) {
	tb.Helper()
	start := time.Now()
	r.e.admin.mustAppend("INBOX", mail)
	appended := time.Now()
	u := r.ups.waitFor(tb, "with the appended message", settled(seq))
	end := time.Now()
	tm := timing{Total: end.Sub(start), Append: appended.Sub(start), started: start}
	if exists := r.px.Stats().LastExists; exists.After(appended) {
		tm.Dovecot, tm.Fetcher = exists.Sub(appended), end.Sub(exists)
	}
	return tm, u
}

// TestDovecotIdlePush: with IDLE on Dovecot, each appended message reaches
// the fetcher over its one open connection (no reconnect, no poll), with
// the right address and Changed set.
func TestDovecotIdlePush(t *testing.T) {
	t.Parallel()
	r := newIdleRig(t)
	conns := r.px.Stats().Conns
	var lat []timing
	for i, mail := range r.mails(3) {
		seq := uint64(i + 2)
		tm, u := r.deliver(t, mail, seq)
		lat = append(lat, tm)
		if u.Payload.IPv4 != v4(i+2) || !u.Changed || u.Mode != fetcher.ModeIdle || u.State != fetcher.Current {
			t.Errorf("Update for seq %d = {IPv4 %v, Changed %v, Mode %q, State %v}; want {%v, true, %q, %v}",
				seq, u.Payload.IPv4, u.Changed, u.Mode, u.State, v4(i+2), fetcher.ModeIdle, fetcher.Current)
		}
	}
	if got := r.px.Stats().Conns; got != conns {
		t.Errorf("connections to Dovecot = %d after the pushes, want %d (mail must arrive over IDLE)", got, conns)
	}
	if errs := r.ups.Errors(); len(errs) > 0 {
		t.Errorf("fetcher reported State Error: %s", errs[0])
	}
	for _, tm := range lat {
		t.Logf("APPEND → Update with IDLE on Dovecot: %v (APPEND %v, Dovecot's wait for EXISTS %v, fetcher %v)",
			tm.Total.Round(time.Millisecond), tm.Append.Round(time.Millisecond), tm.Dovecot.Round(time.Millisecond), tm.Fetcher.Round(time.Millisecond))
	}
}

// BenchmarkDovecotIdleLatency measures, per iteration, the time from the
// start of an APPEND of a new sealed message to the fetcher's Update with
// its address, with the fetcher IDLEing on Dovecot, and splits it into the
// APPEND, Dovecot's wait before it sends EXISTS (its mailbox-watch delay of
// up to 0.5 s, which dominates) and the fetcher's own share. A bare IDLE
// client (go-imap, EXAMINE + IDLE, nothing else) on the same mailbox in the
// same run gives the floor: ratio-p50 is ipsync's p50 over the bare
// client's. Messages are paced 0.3–1 s apart (jittered, untimed), so that
// none falls in the fetcher's settle window after the previous one, where a
// NOOP would pick it up before Dovecot's notify delay.
func BenchmarkDovecotIdleLatency(b *testing.B) {
	r := newIdleRig(b)
	bare := startBareIdle(b, r.e)
	mails := r.mails(b.N)
	rng := rand.New(rand.NewPCG(1, 2))
	var lat, apps, dovecot, own, floor []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		pace := time.NewTimer(300*time.Millisecond + time.Duration(rng.Int64N(int64(700*time.Millisecond))))
		<-pace.C
		bare.drain()
		b.StartTimer()
		tm, _ := r.deliver(b, mails[i], uint64(i+2))
		b.StopTimer()
		floor = append(floor, bare.wait(b).Sub(tm.started))
		b.StartTimer()
		lat, apps = append(lat, tm.Total), append(apps, tm.Append)
		dovecot, own = append(dovecot, tm.Dovecot), append(own, tm.Fetcher)
	}
	b.StopTimer()
	rounded := make([]time.Duration, len(lat))
	for i, d := range lat {
		rounded[i] = d.Round(time.Millisecond)
	}
	b.Logf("APPEND → Update, in order: %v", rounded)
	for _, s := range [][]time.Duration{lat, apps, dovecot, own, floor} {
		slices.Sort(s)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 95)), "p95-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(percentile(apps, 50)), "append-p50-ms")
	b.ReportMetric(ms(percentile(dovecot, 50)), "dovecot-wait-p50-ms")
	b.ReportMetric(ms(percentile(own, 50)), "fetcher-p50-ms")
	b.ReportMetric(ms(percentile(own, 95)), "fetcher-p95-ms")
	b.ReportMetric(ms(percentile(floor, 50)), "bare-idle-p50-ms")
	b.ReportMetric(float64(percentile(lat, 50))/float64(percentile(floor, 50)), "ratio-p50")
}

// bareIdle is a minimal IDLE client: it reports when Dovecot tells it of a
// new message (EXISTS).
type bareIdle struct {
	exists chan time.Time
}

func startBareIdle(b *testing.B, e *env) *bareIdle {
	b.Helper()
	bi := &bareIdle{exists: make(chan time.Time, 64)}
	conn, err := net.DialTimeout("tcp", e.srv.Addr, waitTimeout)
	if err != nil {
		b.Fatal(err)
	}
	c := imapclient.New(conn, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case bi.exists <- time.Now():
				default:
				}
			}
		},
	}})
	b.Cleanup(func() { c.Close() })
	if err := c.Login(e.srv.User, e.srv.Password).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { idle.Close() })
	return bi
}

// drain forgets EXISTS reports from before.
func (bi *bareIdle) drain() {
	for {
		select {
		case <-bi.exists:
		default:
			return
		}
	}
}

// wait returns when the next EXISTS arrived.
func (bi *bareIdle) wait(b *testing.B) time.Time {
	b.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case t := <-bi.exists:
		return t
	case <-timer.C:
		b.Fatalf("bare IDLE client: no EXISTS within %v", waitTimeout)
	}
	return time.Time{}
}
