package fetcher

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"net/smtp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

const (
	testUser     = "client@example.test"
	testPassword = "client-password"
	testName     = "office"
	testSubject  = "ipsync office"
)

// waitTimeout bounds every wait for something over the network.
const waitTimeout = 15 * time.Second

// fakeClock is a manual Clock: timers fire only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced on every change of timers
}

type fakeTimer struct {
	clk *fakeClock
	at  time.Time
	c   chan time.Time
}

func newFakeClock(t0 time.Time) *fakeClock {
	return &fakeClock{now: t0, changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.notifyLocked()
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	c := t.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	c.notifyLocked()
	return true
}

// WaitTimers blocks until at least n timers are pending.
func (c *fakeClock) WaitTimers(t testing.TB, n int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, ch := len(c.timers), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("fake clock: %d timers pending after %v, want %d", got, waitTimeout, n)
		}
	}
}

// Advance moves the clock by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

// AdvanceToNext moves the clock to the earliest pending timer and fires it
// (and any due at the same time). It returns how far it moved.
func (c *fakeClock) AdvanceToNext() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0
	}
	next := c.timers[0].at
	for _, t := range c.timers {
		if t.at.Before(next) {
			next = t.at
		}
	}
	d := max(0, next.Sub(c.now))
	c.now = c.now.Add(d)
	c.fireLocked()
	return d
}

func (c *fakeClock) fireLocked() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
			continue
		}
		kept = append(kept, t)
	}
	clear(c.timers[len(kept):])
	c.timers = kept
	c.notifyLocked()
}

// logBuffer collects slog text output safely.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) Lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

func newLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// env is a loopback mail server with one user and one server key.
type env struct {
	t   testing.TB
	srv *loopmail.Server
	sk  codec.ServerKey
	ck  codec.ClientKey
}

func newEnv(t testing.TB, lo loopmail.Options) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if lo.Users == nil {
		lo.Users = map[string]string{testUser: testPassword}
	}
	srv, err := loopmail.Start(ctx, lo)
	if err != nil {
		t.Fatalf("loopmail.Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, sk: sk, ck: sk.ClientKey()}
}

func (e *env) endpoint() mailconn.Endpoint {
	ap := netip.MustParseAddrPort(e.srv.IMAPAddr())
	return mailconn.Endpoint{Host: ap.Addr().String(), Port: int(ap.Port()), TLS: mailconn.TLSNone}
}

// options returns working Options for e with a captured logger.
func (e *env) options() (Options, *logBuffer) {
	log, buf := newLogger(e.t)
	return Options{
		IMAP:   e.endpoint(),
		Auth:   passwordAuth(testUser, testPassword),
		Name:   testName,
		Keys:   []codec.ClientKey{e.ck},
		Logger: log,
	}, buf
}

func (e *env) newFetcher(o Options) *Fetcher {
	e.t.Helper()
	f, err := New(o)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return f
}

func payload(seq uint64, v4 string, issued time.Time) codec.Payload {
	return codec.Payload{
		Name:      testName,
		IPv4:      netip.MustParseAddr(v4),
		Seq:       seq,
		IssuedAt:  issued.UTC().Truncate(time.Second),
		Heartbeat: time.Hour,
	}
}

func sealWith(t testing.TB, sk codec.ServerKey, p codec.Payload) string {
	t.Helper()
	text, err := codec.Seal(p, sk, nil)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return text
}

var msgCounter struct {
	sync.Mutex
	n int
}

// plainMail builds a text/plain 7bit mail.
func plainMail(subject, body string, date time.Time) []byte {
	return rawMail(subject, date, "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit", body)
}

// rawMail builds a mail with the given MIME headers and body.
func rawMail(subject string, date time.Time, mimeHeaders, body string) []byte {
	msgCounter.Lock()
	msgCounter.n++
	n := msgCounter.n
	msgCounter.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "From: server@example.test\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%d@example.test>\r\nMIME-Version: 1.0\r\n%s\r\n\r\n",
		testUser, subject, date.Format(time.RFC1123Z), n, rand.Int64(), mimeHeaders)
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n"))
	return []byte(b.String())
}

// sendSMTP submits raw over SMTP to the loopback server.
func (e *env) sendSMTP(raw []byte) {
	e.t.Helper()
	auth := smtp.PlainAuth("", testUser, testPassword, "127.0.0.1")
	if err := smtp.SendMail(e.srv.SMTPAddr(), auth, "server@example.test", []string{testUser}, raw); err != nil {
		e.t.Fatalf("SendMail: %v", err)
	}
}

func (e *env) deliver(raw []byte) {
	e.t.Helper()
	if err := e.srv.Deliver(testUser, raw); err != nil {
		e.t.Fatalf("Deliver: %v", err)
	}
}

// updates is a Consumer that queues every Update for the test.
type updates struct {
	ch chan Update
}

func newUpdates() *updates { return &updates{ch: make(chan Update, 10000)} }

func (u *updates) Update(up Update) {
	select {
	case u.ch <- up:
	default:
		panic("test consumer queue full")
	}
}

// waitFor returns the first Update matching ok, failing after waitTimeout.
func (u *updates) waitFor(t testing.TB, what string, ok func(Update) bool) Update {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case up := <-u.ch:
			if ok(up) {
				return up
			}
		case <-timer.C:
			t.Fatalf("no Update %s within %v", what, waitTimeout)
		}
	}
}

// runFetcher starts f.Run in the background; the returned stop cancels it
// and waits for Run to return.
func runFetcher(t testing.TB, f *Fetcher, c Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, c) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v of cancel", waitTimeout)
		}
	}
	t.Cleanup(stop)
	return stop
}

func seededRand(seed uint64) func() float64 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

func mustPool(t testing.TB, pem []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in CertPEM")
	}
	return pool
}

// waitConnsClosed waits until the server has seen every IMAP connection
// close: a client's LOGOUT returns before the server's side of the socket
// is gone, and a stats reset must not count that connection.
func (e *env) waitConnsClosed(t testing.TB) { e.waitConnsAtMost(t, 0) }

// waitConnsAtMost waits until the server has at most n IMAP connections
// open (see waitConnsClosed).
func (e *env) waitConnsAtMost(t testing.TB, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for e.srv.Stats().IMAPConnsOpen > n {
		if time.Now().After(deadline) {
			t.Fatalf("IMAP connections still open on the server: %d", e.srv.Stats().IMAPConnsOpen)
		}
		<-tick.C
	}
}

// passwordAuth signs in as user with password.
func passwordAuth(user, password string) mailconn.Auth {
	return mailconn.PasswordAuth(user, func(context.Context) (string, error) { return password, nil })
}
