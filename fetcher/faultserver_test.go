package fetcher

import (
	"bytes"
	"context"
	"log"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"ipsync/codec"
	"ipsync/mailconn"
)

// faultServer is an in-process IMAP server on 127.0.0.1 (imapserver over
// imapmemserver) that answers chosen commands with an error, for faults
// loopmail cannot produce. It counts LOGIN commands.
type faultServer struct {
	addr netip.AddrPort
	user *imapmemserver.User
	sk   codec.ServerKey

	failSearch atomic.Bool // UID SEARCH answers NO [SERVERBUG]
	failFetch  atomic.Bool // FETCH answers NO [SERVERBUG]

	logins   atomic.Int64
	maxLogin int64         // beyond this many LOGINs, refuse and close tooMany
	tooMany  chan struct{} // closed at the first LOGIN beyond maxLogin
	once     sync.Once
}

var errServerBug = &imap.Error{Type: imap.StatusResponseTypeNo, Code: "SERVERBUG", Text: "internal error, try again"}

// newFaultServer starts a fault server with testUser/testPassword and an
// empty INBOX; it stops when the test ends. maxLogin bounds the LOGINs it
// accepts (a runaway client is cut off, and tooMany is closed).
func newFaultServer(t testing.TB, maxLogin int64) *faultServer {
	t.Helper()
	fs := &faultServer{
		user:     imapmemserver.NewUser(testUser, testPassword),
		maxLogin: maxLogin,
		tooMany:  make(chan struct{}),
	}
	if err := fs.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	fs.sk = sk
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &faultSession{fs: fs}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapESearch: {}},
		Logger:       log.New(&bytes.Buffer{}, "", 0),
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs.addr = netip.MustParseAddrPort(ln.Addr().String())
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
		srv.Close()
	})
	return fs
}

// options returns working Options for fs with a captured logger.
func (fs *faultServer) options(t testing.TB) (Options, *logBuffer) {
	log, buf := newLogger(t)
	return Options{
		IMAP:   mailconn.Endpoint{Host: fs.addr.Addr().String(), Port: int(fs.addr.Port()), TLS: mailconn.TLSNone},
		Auth:   passwordAuth(testUser, testPassword),
		Name:   testName,
		Keys:   []codec.ClientKey{fs.sk.ClientKey()},
		Logger: log,
	}, buf
}

// deliver appends raw to the INBOX.
func (fs *faultServer) deliver(t testing.TB, raw []byte) {
	t.Helper()
	if _, err := fs.user.Append("INBOX", &literal{bytes.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l *literal) Size() int64 { return l.n }

// faultSession is imapmemserver's session with LOGIN counted and SEARCH or
// FETCH failing on demand.
type faultSession struct {
	*imapmemserver.UserSession // nil before login
	fs                         *faultServer
}

func (s *faultSession) Login(username, password string) error {
	if n := s.fs.logins.Add(1); n > s.fs.maxLogin {
		s.fs.once.Do(func() { close(s.fs.tooMany) })
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "test login budget spent"}
	}
	if err := s.fs.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.fs.user)
	return nil
}

func (s *faultSession) Search(kind imapserver.NumKind, c *imap.SearchCriteria, o *imap.SearchOptions) (*imap.SearchData, error) {
	if s.fs.failSearch.Load() {
		return nil, errServerBug
	}
	return s.UserSession.Search(kind, c, o)
}

func (s *faultSession) Fetch(w *imapserver.FetchWriter, set imap.NumSet, o *imap.FetchOptions) error {
	if s.fs.failFetch.Load() {
		return errServerBug
	}
	return s.UserSession.Fetch(w, set, o)
}

func (s *faultSession) Close() error { return s.UserSession.Close() } // nil-safe

// waitTimersOr blocks until at least n timers are pending on c and reports
// true, or reports false as soon as stop is closed.
func (c *fakeClock) waitTimersOr(t testing.TB, n int, stop <-chan struct{}) bool {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, ch := len(c.timers), c.changed
		c.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-stop:
			return false
		case <-deadline.C:
			t.Fatalf("fake clock: %d timers pending after %v, want %d", got, waitTimeout, n)
		}
	}
}

// nextAt returns when the earliest pending timer fires; zero if none.
func (c *fakeClock) nextAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	return next
}

// TestFaultServerWorks checks the fault server itself: with no fault set a
// fetch reads its mail.
func TestFaultServerWorks(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, 100)
	now := time.Now()
	fs.deliver(t, plainMail(testSubject, sealWith(t, fs.sk, payload(1, "192.0.2.1", now)), now))
	o, _ := fs.options(t)
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	got, err := f.FetchOnce(ctx)
	if err != nil || got.Seq != 1 {
		t.Fatalf("FetchOnce(fault server, no fault) = %+v, %v; want seq 1", got, err)
	}
	fs.failSearch.Store(true)
	fs.deliver(t, plainMail(testSubject, sealWith(t, fs.sk, payload(2, "192.0.2.2", now)), now))
	if _, err := f.FetchOnce(ctx); err == nil || !strings.Contains(err.Error(), "SERVERBUG") {
		t.Fatalf("FetchOnce(failing SEARCH) = %v, want the SERVERBUG error", err)
	}
}

// TestRunBacksOffWhenFetchFails: a server that logs in but fails every UID
// SEARCH (or FETCH) must not be hammered with reconnects, and the failure
// must be shown as State Error, not as an endless "fetching".
func TestRunBacksOffWhenFetchFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(*faultServer) *atomic.Bool
	}{
		{"search fails", func(fs *faultServer) *atomic.Bool { return &fs.failSearch }},
		{"fetch fails", func(fs *faultServer) *atomic.Bool { return &fs.failFetch }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A runaway client is cut off after 1000 LOGINs.
			fs := newFaultServer(t, 1000)
			t0 := time.Now()
			fs.deliver(t, plainMail(testSubject, sealWith(t, fs.sk, payload(1, "192.0.2.1", t0)), t0))
			fault := tt.fault(fs)
			fault.Store(true)
			clk := newFakeClock(t0)
			o, logs := fs.options(t)
			defer func() {
				if t.Failed() {
					t.Logf("log:\n%s", logs)
				}
			}()
			o.Clock, o.Rand = clk, seededRand(7)
			f, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var all []Update
			ups := newUpdates()
			runFetcher(t, f, ConsumerFunc(func(u Update) {
				mu.Lock()
				all = append(all, u)
				mu.Unlock()
				ups.Update(u)
			}))

			// Ten minutes of fake time, one timer (the retry) at a time.
			const span = 10 * time.Minute
			for {
				if !clk.waitTimersOr(t, 1, fs.tooMany) {
					t.Fatalf("LOGINs = over %d before %v of clock time passed (%v), want a backoff", fs.maxLogin, span, clk.Now().Sub(t0))
				}
				if clk.nextAt().Sub(t0) > span {
					break
				}
				clk.AdvanceToNext()
			}
			// Backoff from 1s doubling to 5m, each wait at least half of
			// that: at most 12 sessions in 10 minutes, each with one
			// spare-connection LOGIN (Idle auto).
			logins := fs.logins.Load()
			t.Logf("%s: %d LOGINs in %v of clock time (next retry at %v)", tt.name, logins, span, clk.nextAt().Sub(t0))
			if logins > 24 {
				t.Errorf("LOGINs in %v with a failing %s = %d, want at most 24", span, tt.name, logins)
			}
			mu.Lock()
			last := all[len(all)-1]
			var errUp *Update
			for i := range all {
				if all[i].State == Error {
					errUp = &all[i]
					break
				}
			}
			mu.Unlock()
			if errUp == nil || errUp.Err == nil || !strings.Contains(errUp.Err.Error(), "SERVERBUG") {
				t.Fatalf("Updates with a failing %s: first Error = %+v, want State Error with the SERVERBUG error", tt.name, errUp)
			}
			if last.Fetching || last.State != Error {
				t.Errorf("last Update while failing = fetching %v state %v, want not fetching, error", last.Fetching, last.State)
			}

			// The fault clears: the next retry reads the mailbox.
			fault.Store(false)
			clk.AdvanceToNext()
			u := ups.waitFor(t, "after the fault cleared", hasV4("192.0.2.1"))
			if u.State != Current || u.Err != nil || u.Mode != ModeIdle {
				t.Errorf("Update after recovery = state %v err %v mode %q, want current, nil, idle", u.State, u.Err, u.Mode)
			}
		})
	}
}
