package discover

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testWait bounds every wait on the network or on another goroutine.
const testWait = 10 * time.Second

// loopbackDial connects to 127.0.0.1 on the port of address, whatever its
// host and network family: test specs use names like a.test so that each
// fixture counts as its own operator.
func loopbackDial(ctx context.Context, network, address string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, strings.TrimRight(network, "46"), net.JoinHostPort("127.0.0.1", port))
}

// fixture starts loopback echo servers and builds Options that reach them.
type fixture struct {
	t      testing.TB
	client *http.Client
	logs   *recorder
	clock  *clock
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return &fixture{t: t, logs: newRecorder(), clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
}

// https serves h over TLS on 127.0.0.1 and returns the spec
// https://host:PORT/ for it. Handlers should end when stop is closed or the
// request is cancelled.
func (f *fixture) https(host string, h http.HandlerFunc) string {
	f.t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// Cancelled lookups make the server log handshake errors; they are expected.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	f.t.Cleanup(srv.Close)
	if f.client == nil {
		// Every httptest TLS server uses the same certificate (for
		// example.com and 127.0.0.1), so one client trusts them all.
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.DialContext = loopbackDial
		tr.TLSClientConfig.ServerName = "example.com"
		f.client = &http.Client{Transport: tr}
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "https://" + host + ":" + port + "/"
}

// text returns a handler that answers body.
func text(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) }
}

// block returns a handler that blocks until the test ends or the request
// is cancelled, and a channel closed once it has been asked.
func (f *fixture) block() (http.HandlerFunc, <-chan struct{}) {
	stop := make(chan struct{})
	f.t.Cleanup(func() { close(stop) }) // runs before the servers close
	asked := make(chan struct{})
	var once sync.Once
	return func(_ http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(asked) })
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}, asked
}

// waitAll waits for every channel in chs, failing the test after testWait.
func (f *fixture) waitAll(what string, chs ...<-chan struct{}) {
	f.t.Helper()
	timeout := time.After(testWait)
	for _, ch := range chs {
		select {
		case <-ch:
		case <-timeout:
			f.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// after returns a handler that answers body once the recorder has seen a
// record msg about source (ensures a deterministic order).
func (f *fixture) after(msg, source, body string) http.HandlerFunc {
	ch := f.logs.wait(msg, source)
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		case <-time.After(testWait):
			f.t.Errorf("handler for %q: no %q log about %s", body, msg, source)
		}
		fmt.Fprint(w, body)
	}
}

// gate makes handlers answer only once the current step's condition holds.
type gate struct {
	ch atomic.Pointer[<-chan struct{}]
}

// set makes later requests wait for ch; nil lets them through.
func (g *gate) set(ch <-chan struct{}) {
	if ch == nil {
		c := make(chan struct{})
		close(c)
		ch = c
	}
	g.ch.Store(&ch)
}

// handler answers body once the gate's channel is closed.
func (g *gate) handler(t testing.TB, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-*g.ch.Load():
		case <-r.Context().Done():
			return
		case <-time.After(testWait):
			t.Errorf("handler for %q: gate never opened", body)
		}
		fmt.Fprint(w, body)
	}
}

// options returns Options for specs with fast timeouts, the fixture's
// client, dialer, clock and logs, and IPv6 off.
func (f *fixture) options(specs ...string) Options {
	return Options{
		Sources:       specs,
		IPv4:          On,
		IPv6:          Off,
		SourceTimeout: 5 * time.Second,
		Timeout:       testWait,
		HTTPClient:    f.client,
		Dial:          loopbackDial,
		UserAgent:     UserAgent("1.2.3"),
		LocalAddrs:    func() ([]LocalAddr, error) { return nil, nil },
		Now:           f.clock.Now,
		Logger:        slog.New(f.logs),
	}
}

// discoverer builds a Discoverer whose timeouts run on the fixture's
// clock: they fire only when the test advances it.
func (f *fixture) discoverer(o Options) *Discoverer {
	f.t.Helper()
	o.HTTPClient = f.client
	d, err := New(o)
	if err != nil {
		f.t.Fatalf("New() = %v", err)
	}
	d.afterFunc = f.clock.AfterFunc
	return d
}

func (f *fixture) discover(d *Discoverer) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	return d.Discover(ctx)
}

// discoverAsync starts Discover and returns a func that waits for its
// outcome (at most testWait).
func (f *fixture) discoverAsync(d *Discoverer) func() (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		res, err := f.discover(d)
		ch <- outcome{res, err}
	}()
	return func() (Result, error) {
		f.t.Helper()
		select {
		case o := <-ch:
			return o.res, o.err
		case <-time.After(testWait + time.Second):
			f.t.Fatal("Discover did not return")
			return Result{}, nil
		}
	}
}

// dnsServer serves answers on 127.0.0.1 UDP; answers maps
// "NAME TYPE CLASS" (e.g. "myip.test. A IN") to zone-file records. Other
// questions get NXDOMAIN. It returns the port.
func dnsServer(t *testing.T, answers map[string][]string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveDNS(t, &dns.Server{PacketConn: pc, Handler: dnsHandler(t, answers)})
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	return port
}

// dotServer serves answers (as dnsServer) over DNS over TLS on 127.0.0.1
// with a fresh certificate for name. It returns the port and a pool that
// trusts the certificate.
func dotServer(t *testing.T, name string, answers map[string][]string) (string, *x509.CertPool) {
	t.Helper()
	cert, pool := selfSigned(t, name)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	serveDNS(t, &dns.Server{Listener: l, Net: "tcp-tls", Handler: dnsHandler(t, answers)})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, pool
}

// dnsHandler answers from answers (see dnsServer).
func dnsHandler(t *testing.T, answers map[string][]string) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		key := fmt.Sprintf("%s %s %s", q.Name, dns.TypeToString[q.Qtype], dns.ClassToString[q.Qclass])
		rrs, ok := answers[key]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				t.Errorf("dns.NewRR(%q) = %v", s, err)
				continue
			}
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})
}

// serveDNS starts srv, waits until it serves and shuts it down at cleanup.
func serveDNS(t *testing.T, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(testWait):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
}

// selfSigned makes a certificate for name and a pool that trusts it.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// clock is an adjustable time source whose timers fire only when Add
// moves it past them.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d and runs the timers that are then due.
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due, kept []*fakeTimer
	for _, tm := range c.timers {
		if tm.at.After(c.t) {
			kept = append(kept, tm)
		} else {
			due = append(due, tm)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
}

// AfterFunc is time.AfterFunc on this clock; it returns the timer's Stop.
func (c *clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &fakeTimer{at: c.t.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, tm)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(slices.Clone(c.timers), i, i+1)
		return true
	}
}

// record is one captured log record.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder is a slog.Handler that keeps every record and lets tests wait
// for one.
type recorder struct {
	mu      sync.Mutex
	records []record
	waiters []waiter
}

type waiter struct {
	msg, source string
	n           int
	ch          chan struct{}
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	a := map[string]string{}
	rec.Attrs(func(at slog.Attr) bool {
		a[at.Key] = at.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, record{rec.Level, rec.Message, a})
	kept := r.waiters[:0]
	for _, w := range r.waiters {
		if r.countLocked(w.msg, w.source) >= w.n {
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	r.waiters = kept
	return nil
}

// wait returns a channel closed once a record msg with source=source is
// logged.
func (r *recorder) wait(msg, source string) <-chan struct{} {
	return r.waitN(msg, source, 1)
}

// waitN returns a channel closed once n records msg with source=source
// have been logged.
func (r *recorder) waitN(msg, source string, n int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	if r.countLocked(msg, source) >= n {
		close(ch)
		return ch
	}
	r.waiters = append(r.waiters, waiter{msg, source, n, ch})
	return ch
}

func (r *recorder) countLocked(msg, source string) int {
	n := 0
	for _, rec := range r.records {
		if rec.msg == msg && rec.attrs["source"] == source {
			n++
		}
	}
	return n
}

// find returns the records with message msg.
func (r *recorder) find(msg string) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record
	for _, rec := range r.records {
		if rec.msg == msg {
			out = append(out, rec)
		}
	}
	return out
}
