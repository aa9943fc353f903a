package interop

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/codec"
	"ipsync/fetcher"
	"ipsync/internal/dovecottest"
	"ipsync/mailconn"
	"ipsync/publisher"
)

const (
	serverName = "office"
	subject    = "ipsync office"
	fromAddr   = "server@example.test"
)

// waitTimeout bounds every wait for something over the network.
const waitTimeout = 20 * time.Second

// dovecotLimitText is the text Dovecot 2.3 answers a LOGIN with (after
// "NO [LIMIT]") when mail_max_userip_connections is reached.
const dovecotLimitText = "Maximum number of connections from user+IP exceeded"

// env is a running Dovecot with a server key and an admin connection.
type env struct {
	t     testing.TB
	srv   *dovecottest.Server
	sk    codec.ServerKey
	ck    codec.ClientKey
	admin *appender
}

// newEnv starts Dovecot (or skips the test) and opens the admin connection.
func newEnv(t testing.TB, opts dovecottest.Options) *env {
	t.Helper()
	srv := dovecottest.Start(t, opts)
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatalf("GenerateServerKey: %v", err)
	}
	e := &env{t: t, srv: srv, sk: sk, ck: sk.ClientKey()}
	e.admin = dialAdmin(t, srv)
	return e
}

// endpoint is Dovecot's IMAP listener.
func (e *env) endpoint() mailconn.Endpoint {
	return endpointOf(e.t, e.srv.Addr)
}

func endpointOf(t testing.TB, addr string) mailconn.Endpoint {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("ParseAddrPort(%q): %v", addr, err)
	}
	return mailconn.Endpoint{Host: ap.Addr().String(), Port: int(ap.Port()), TLS: mailconn.TLSNone}
}

// log returns the Dovecot log so far.
func (e *env) log() string {
	b, err := os.ReadFile(filepath.Join(e.srv.Dir, "dovecot.log"))
	if err != nil {
		e.t.Errorf("read dovecot log: %v", err)
	}
	return string(b)
}

// fetcherOptions returns working fetcher Options reaching Dovecot at ep
// (Dovecot itself or a proxy), logging to the test log at Warn and above.
func (e *env) fetcherOptions(ep mailconn.Endpoint) fetcher.Options {
	return fetcher.Options{
		IMAP:      ep,
		Auth:      e.auth(),
		Name:      serverName,
		Keys:      []codec.ClientKey{e.ck},
		OpTimeout: 10 * time.Second,
		Logger:    testLogger(e.t, slog.LevelWarn),
	}
}

func (e *env) newFetcher(o fetcher.Options) *fetcher.Fetcher {
	e.t.Helper()
	f, err := fetcher.New(o)
	if err != nil {
		e.t.Fatalf("fetcher.New: %v", err)
	}
	return f
}

// newPublisher returns a publisher whose mail is APPENDed to Dovecot's
// INBOX by m; retention, if not nil, prunes on Dovecot.
func (e *env) newPublisher(m *appendMailer, retention *publisher.RetentionOptions) *publisher.Publisher {
	e.t.Helper()
	log := testLogger(e.t, slog.LevelWarn)
	var pruner publisher.Pruner
	if retention != nil {
		r := *retention
		r.Logger = log
		if r.Open == nil {
			own := e.sk.ClientKey()
			r.Open = func(body string) (codec.Payload, error) { return codec.Open(body, own) }
		}
		pr, err := publisher.NewIMAPPruner(r)
		if err != nil {
			e.t.Fatalf("publisher.NewIMAPPruner: %v", err)
		}
		pruner = pr
	}
	p, err := publisher.New(publisher.Options{
		Name:   serverName,
		From:   fromAddr,
		To:     []string{e.srv.User},
		Mailer: m,
		Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, e.sk, nil) },
		Store:  publisher.FileStore{Path: filepath.Join(e.t.TempDir(), "publisher.json")},
		Pruner: pruner,
		Logger: log,
	})
	if err != nil {
		e.t.Fatalf("publisher.New: %v", err)
	}
	return p
}

// publish publishes v4 and fails the test on error.
func publish(t testing.TB, p *publisher.Publisher, v4 string) publisher.Sent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sent, err := p.PublishAddrs(ctx, publisher.Addrs{IPv4: netip.MustParseAddr(v4)})
	if err != nil {
		t.Fatalf("PublishAddrs(%s): %v", v4, err)
	}
	return sent
}

// sealedMail renders a publisher message for payload p, as the publisher
// would send it.
func (e *env) sealedMail(p codec.Payload) []byte {
	e.t.Helper()
	body, err := codec.Seal(p, e.sk, nil)
	if err != nil {
		e.t.Fatalf("Seal: %v", err)
	}
	raw, err := publisher.Render(publisher.Message{
		From: fromAddr, To: []string{e.srv.User}, Subject: subject, Name: p.Name, Body: body, Date: p.IssuedAt,
	})
	if err != nil {
		e.t.Fatalf("render: %v", err)
	}
	return raw
}

func payload(seq uint64, v4 netip.Addr, issued time.Time) codec.Payload {
	return codec.Payload{Name: serverName, IPv4: v4, Seq: seq, IssuedAt: issued.UTC().Truncate(time.Second), Heartbeat: time.Hour}
}

// v4 returns the documentation-range address number n (n < 65536).
func v4(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)})
}

func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: level}))
}

// tLogWriter sends log lines to t.Log.
type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// appender is a logged-in IMAP connection for setting up and inspecting
// the mailbox. It connects from 127.0.0.2 where it can, so it does not take
// one of the fetchers' per-user-and-IP connection slots (delivery over SMTP
// would not either). Safe for concurrent use.
type appender struct {
	t  testing.TB
	mu sync.Mutex
	c  *imapclient.Client
}

func dialAdmin(t testing.TB, srv *dovecottest.Server) *appender {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	conn, err := d.DialContext(ctx, "tcp", srv.Addr)
	if err != nil {
		t.Logf("cannot connect from 127.0.0.2 (%v); the admin connection takes a fetcher slot", err)
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", srv.Addr)
	}
	if err != nil {
		t.Fatalf("connect to dovecot: %v", err)
	}
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	a := &appender{t: t, c: c}
	if err := a.do(ctx, func() error { return c.Login(srv.User, srv.Password).Wait() }); err != nil {
		t.Fatalf("admin login: %v", err)
	}
	return a
}

// do runs fn with the connection closed if ctx ends first.
func (a *appender) do(ctx context.Context, fn func() error) error {
	stop := context.AfterFunc(ctx, func() { a.c.Close() })
	err := fn()
	if !stop() {
		return fmt.Errorf("imap admin connection: %w", ctx.Err())
	}
	return err
}

// Append stores raw in mailbox and returns its UID (Dovecot has UIDPLUS).
func (a *appender) Append(ctx context.Context, mailbox string, raw []byte) (imap.UID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var uid imap.UID
	err := a.do(ctx, func() error {
		cmd := a.c.Append(mailbox, int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			cmd.Close()
			return fmt.Errorf("append: %w", err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		data, err := cmd.Wait()
		if err != nil {
			return fmt.Errorf("append: %w", err)
		}
		uid = data.UID
		return nil
	})
	return uid, err
}

// mustAppend appends raw to mailbox and fails the test on error.
func (a *appender) mustAppend(mailbox string, raw []byte) imap.UID {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	uid, err := a.Append(ctx, mailbox, raw)
	if err != nil {
		a.t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
	return uid
}

// command runs fn (one or more IMAP commands on c) under the lock and a
// timeout, failing the test on error.
func (a *appender) command(what string, fn func(c *imapclient.Client) error) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.do(ctx, func() error { return fn(a.c) }); err != nil {
		a.t.Fatalf("%s: %v", what, err)
	}
}

// appendMailer is a publisher.Mailer that APPENDs each message to INBOX.
type appendMailer struct {
	a *appender

	mu   sync.Mutex
	sent []appended
}

// appended is one delivered message.
type appended struct {
	UID imap.UID
	Msg publisher.Message
}

var _ publisher.Mailer = (*appendMailer)(nil)

// Send renders m as go-mail would and APPENDs it; it blocks until Dovecot
// has stored it.
func (m *appendMailer) Send(ctx context.Context, msg publisher.Message) error {
	raw, err := publisher.Render(msg)
	if err != nil {
		return err
	}
	uid, err := m.a.Append(ctx, "INBOX", raw)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.sent = append(m.sent, appended{UID: uid, Msg: msg})
	m.mu.Unlock()
	return nil
}

func (m *appendMailer) Sent() []appended {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]appended(nil), m.sent...)
}

// updates is a fetcher.Consumer that queues every Update for the test.
type updates struct {
	ch chan fetcher.Update

	mu     sync.Mutex
	errors []string // Err of every State Error Update
}

func newUpdates() *updates { return &updates{ch: make(chan fetcher.Update, 100000)} }

func (u *updates) Update(up fetcher.Update) {
	if up.State == fetcher.Error {
		u.mu.Lock()
		u.errors = append(u.errors, fmt.Sprint(up.Err))
		u.mu.Unlock()
	}
	select {
	case u.ch <- up:
	default:
		panic("test consumer queue full")
	}
}

// Errors returns the errors of the State Error Updates seen so far.
func (u *updates) Errors() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.errors...)
}

// waitFor returns the first queued Update matching ok, failing after
// waitTimeout.
func (u *updates) waitFor(t testing.TB, what string, ok func(fetcher.Update) bool) fetcher.Update {
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

// settled matches an Update that ends a fetch with payload sequence seq.
func settled(seq uint64) func(fetcher.Update) bool {
	return func(u fetcher.Update) bool { return !u.Fetching && u.Payload.Seq == seq && !u.LastCheck.IsZero() }
}

// runFetcher starts f.Run in the background; the returned stop cancels it
// and waits for Run to return (also done by t.Cleanup).
func runFetcher(t testing.TB, f *fetcher.Fetcher, c fetcher.Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, c) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			timer := time.NewTimer(waitTimeout)
			defer timer.Stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-timer.C:
				t.Errorf("Run did not return within %v of cancel", waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// proxy is a counting TCP proxy in front of Dovecot. It counts the
// client's tagged command lines, the bytes each way, logged-in sessions
// (from a tagged OK to LOGIN until the server's BYE or the end of the
// connection) and Dovecot's connection-limit refusals.
type proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu   sync.Mutex
	open map[*proxyConn]struct{}
	st   proxyStats
}

// proxyStats are the proxy's counters.
type proxyStats struct {
	Conns       int   // TCP connections accepted
	Commands    int   // client command lines (tagged; not IDLE's DONE)
	BytesUp     int64 // client → server
	BytesDown   int64 // server → client
	LoggedIn    int   // sessions logged in now
	MaxLoggedIn int   // most sessions logged in at once
	Refusals    int   // server lines carrying dovecotLimitText
	RefusalLine string
	LastExists  time.Time // when the last "* n EXISTS" line passed
}

type proxyConn struct {
	client, server net.Conn
	loginTag       string // tag of a LOGIN awaiting its answer; guarded by proxy.mu
	loggedIn       bool   // guarded by proxy.mu
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{target: target, ln: ln, open: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.CloseAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) endpoint(t testing.TB) mailconn.Endpoint { return endpointOf(t, p.ln.Addr().String()) }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		pc := &proxyConn{client: client, server: server}
		p.mu.Lock()
		p.open[pc] = struct{}{}
		p.st.Conns++
		p.mu.Unlock()
		p.wg.Add(1)
		go p.relay(pc)
	}
}

// relay copies both ways until either side ends, then closes both.
func (p *proxy) relay(pc *proxyConn) {
	defer p.wg.Done()
	up := &lineScanner{onLine: func(l []byte) { p.clientLine(pc, l) }}
	down := &lineScanner{onLine: func(l []byte) { p.serverLine(pc, l) }}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(pc.server, pc.client, up, &p.st.BytesUp); pc.close() }()
	go func() { defer both.Done(); p.pipe(pc.client, pc.server, down, &p.st.BytesDown); pc.close() }()
	both.Wait()
	p.mu.Lock()
	delete(p.open, pc)
	p.loggedOutLocked(pc)
	p.mu.Unlock()
}

func (pc *proxyConn) close() {
	pc.client.Close()
	pc.server.Close()
}

// pipe copies src to dst; each chunk is scanned and counted before it is
// passed on, so the counters are up to date before the peer sees it.
func (p *proxy) pipe(dst, src net.Conn, sc *lineScanner, n *int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			p.mu.Lock()
			*n += int64(k)
			p.mu.Unlock()
			sc.feed(buf[:k])
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) clientLine(pc *proxyConn, line []byte) {
	tag, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(tag) == 0 {
		return // IDLE's DONE, or a SASL continuation
	}
	cmd, _, _ := bytes.Cut(rest, []byte(" "))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Commands++
	if bytes.EqualFold(cmd, []byte("LOGIN")) || bytes.EqualFold(cmd, []byte("AUTHENTICATE")) {
		pc.loginTag = string(tag)
	}
}

func (p *proxy) serverLine(pc *proxyConn, line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytes.Contains(line, []byte(dovecotLimitText)) {
		p.st.Refusals++
		p.st.RefusalLine = string(line)
	}
	if bytes.HasPrefix(line, []byte("* ")) && bytes.HasSuffix(line, []byte(" EXISTS")) {
		p.st.LastExists = time.Now()
	}
	switch {
	case pc.loginTag != "" && bytes.HasPrefix(line, []byte(pc.loginTag+" ")):
		status, _, _ := bytes.Cut(line[len(pc.loginTag)+1:], []byte(" "))
		pc.loginTag = ""
		if bytes.EqualFold(status, []byte("OK")) && !pc.loggedIn {
			pc.loggedIn = true
			p.st.LoggedIn++
			p.st.MaxLoggedIn = max(p.st.MaxLoggedIn, p.st.LoggedIn)
		}
	case len(line) >= 5 && bytes.EqualFold(line[:5], []byte("* BYE")):
		p.loggedOutLocked(pc)
	}
}

func (p *proxy) loggedOutLocked(pc *proxyConn) {
	if pc.loggedIn {
		pc.loggedIn = false
		p.st.LoggedIn--
	}
}

// Stats returns a snapshot of the counters.
func (p *proxy) Stats() proxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Reset zeroes the counters, keeping the sessions logged in now.
func (p *proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st = proxyStats{LoggedIn: p.st.LoggedIn, MaxLoggedIn: p.st.LoggedIn}
}

// CloseAll drops every open connection (both sides) and returns how many.
func (p *proxy) CloseAll() int {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.open))
	for pc := range p.open {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
	return len(conns)
}

// lineScanner splits an IMAP stream into lines, skipping literals ({n} or
// {n+} at a line's end announces n bytes that belong to the line). onLine
// gets the first segment of each logical line, without CRLF; the slice is
// only valid during the call.
type lineScanner struct {
	onLine func([]byte)
	buf    []byte
	skip   int64 // literal bytes still to skip
	cont   bool  // the next segment continues a line after a literal
}

const maxLine = 1 << 20

func (s *lineScanner) feed(p []byte) {
	for len(p) > 0 {
		if s.skip > 0 {
			n := min(int64(len(p)), s.skip)
			p, s.skip = p[n:], s.skip-n
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(s.buf) < maxLine {
				s.buf = append(s.buf, p...)
			}
			return
		}
		s.buf = append(s.buf, p[:i]...)
		p = p[i+1:]
		line := bytes.TrimSuffix(s.buf, []byte("\r"))
		if !s.cont {
			s.onLine(line)
		}
		n, ok := literalSize(line)
		s.skip, s.cont = n, ok
		s.buf = s.buf[:0]
	}
}

// literalSize parses a trailing "{n}", "{n+}" or "{n-}".
func literalSize(line []byte) (int64, bool) {
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	digits := strings.TrimRight(string(line[i+1:len(line)-1]), "+-")
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// percentile returns the p-th percentile (0..100) of sorted durations, by
// the nearest-rank method.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// auth signs in as the Dovecot test user with its password.
func (e *env) auth() mailconn.Auth {
	pw := e.srv.Password
	return mailconn.PasswordAuth(e.srv.User, func(context.Context) (string, error) { return pw, nil })
}
