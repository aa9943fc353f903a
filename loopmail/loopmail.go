// Package loopmail runs a small SMTP+IMAP server on loopback for ipsync's demo and tests.
//
// Start listens on 127.0.0.1 with an SMTP server (github.com/emersion/go-smtp)
// that delivers every accepted message into go-imap v2's in-memory IMAP
// server (imapmemserver), served by imapserver. Each configured user gets an
// INBOX. The server also offers the hooks tests need: direct delivery,
// reading a mailbox back, protocol statistics, connection caps, dropped
// connections and an SMTP outage switch.
//
// With Options.CheckToken, both servers also accept OAuth2 access tokens
// (SASL XOAUTH2 and OAUTHBEARER), checked on every sign-in, and
// EndExpiredTokenSessions ends IMAP sessions whose token has expired, as
// Exchange Online does.
//
// IMAP capabilities mimic a common provider (Gmail, Dovecot 2.3): IMAP4rev1
// with IDLE, NAMESPACE, UIDPLUS, ESEARCH, MOVE, LIST-EXTENDED, LIST-STATUS,
// STATUS=SIZE, LITERAL+, UNSELECT, ENABLE and UTF8=ACCEPT; IMAP4rev2 is not
// advertised. Like the real imapmemserver, the server accepts some commands
// it does not advertise (ESEARCH when NoESEARCH is set), so clients must check
// capabilities themselves.
package loopmail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-smtp"
)

// TLSMode says how a protocol is protected; the words are those of ipsync's config.
type TLSMode string

// TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain text; authentication allowed (loopback only)
	TLSImplicit TLSMode = "implicit" // the listener speaks TLS from the first byte
	TLSStartTLS TLSMode = "starttls" // STARTTLS is offered and required before authentication
)

// LimitStyle says how the IMAP server refuses a connection beyond
// Options.MaxIMAPConnsPerUser.
type LimitStyle string

// Limit styles.
const (
	// LimitLoginNO answers LOGIN/AUTHENTICATE with a tagged
	// "NO [LIMIT] Too many simultaneous connections" (as Gmail and Yahoo do)
	// and leaves the connection unauthenticated. The cap is counted per user,
	// over authenticated connections. This is the default.
	LimitLoginNO LimitStyle = "login-no"
	// LimitGreetingBYE refuses the connection in its greeting with
	// "* BYE [LIMIT] Too many simultaneous connections" and closes it.
	// Before LOGIN the server cannot know the user, so in this style the cap
	// counts every open IMAP connection of the server (all of them come from
	// 127.0.0.1, like a per-IP limit); with a single user that is the
	// per-user cap.
	LimitGreetingBYE LimitStyle = "greeting-bye"
)

// limitText is the human text of a connection-limit refusal.
const limitText = "Too many simultaneous connections"

// Options configures Start. The zero value of every field but Users is a
// usable default.
type Options struct {
	// Users maps a login (= mail address) to its password; each user gets an
	// INBOX. Required (at least one). Logins and recipients are matched
	// case-insensitively.
	Users map[string]string
	// SMTPTLS protects the SMTP listener. "" means TLSNone.
	SMTPTLS TLSMode
	// IMAPTLS protects the IMAP listener. "" means TLSNone.
	IMAPTLS TLSMode
	// TLSConfig holds the server certificate for implicit/starttls. nil with
	// a TLS mode generates a self-signed ECDSA P-256 certificate for
	// 127.0.0.1, ::1 and localhost, valid for 24 hours (see Server.CertPEM).
	TLSConfig *tls.Config
	// NoIDLE hides IDLE from the IMAP capabilities and makes the IDLE command
	// fail with "BAD Unknown command", for poll-fallback tests.
	NoIDLE bool
	// NoESEARCH hides ESEARCH from the IMAP capabilities (the command still
	// works, as with imapmemserver itself), for fallback tests.
	NoESEARCH bool
	// MaxIMAPConnsPerUser caps simultaneous IMAP connections; 0 means
	// unlimited. See LimitStyle for how and what is counted.
	MaxIMAPConnsPerUser int
	// LimitStyle chooses how a connection beyond the cap is refused.
	// "" means LimitLoginNO.
	LimitStyle LimitStyle
	// CheckToken, if set, enables signing in with an OAuth2 access token:
	// SMTP AUTH and IMAP AUTHENTICATE then offer XOAUTH2 and OAUTHBEARER,
	// and every attempt calls CheckToken, which returns the login the token
	// belongs to and when it expires (zero if unknown), for example from
	// the token issuer's introspection endpoint, or an error to refuse it.
	// The login must be in Users and match the user the client names.
	// Passwords still work. nil offers only PLAIN and LOGIN. See also
	// Server.EndExpiredTokenSessions.
	CheckToken func(ctx context.Context, token string) (login string, expires time.Time, err error)
	// Logger receives debug logs of both servers. nil discards them.
	// Passwords and tokens are never logged.
	Logger *slog.Logger
	// Now gives the internal date of delivered mail. nil means time.Now.
	Now func() time.Time
}

// Stats counts protocol activity. See Server.Stats.
type Stats struct {
	IMAPCommands  int64 // tagged client command lines received (IDLE's DONE is part of IDLE)
	IMAPBytesIn   int64 // IMAP bytes read from clients (plain text, after TLS)
	IMAPBytesOut  int64 // IMAP bytes written to clients (plain text, before TLS)
	IMAPConnsOpen int64 // IMAP connections open now
	IMAPConnsMax  int64 // the most IMAP connections open at once since Start or ResetStats
	// IMAPLoggedInMax is the most IMAP sessions logged in at once since
	// Start or ResetStats: what a provider's per-account cap counts. Unlike
	// IMAPConnsMax it leaves out connections being refused.
	IMAPLoggedInMax   int64
	IMAPLimitRefusals int64 // connections refused by MaxIMAPConnsPerUser
	SMTPMessages      int64 // messages accepted over SMTP (one per transaction)
	SMTPRecipients    int64 // recipients of those messages
	// IMAPLogins counts LOGIN attempts on client connections, refused ones
	// included (what a provider counts toward locking an account).
	IMAPLogins int64
	// SMTPAuths counts SMTP AUTH attempts, refused ones included.
	SMTPAuths int64
}

// ErrUnknownUser is returned by Deliver and Messages for a user not in Options.Users.
var ErrUnknownUser = errors.New("loopmail: unknown user")

// errClosed is returned by methods called after Close.
var errClosed = errors.New("loopmail: server closed")

// messagesTimeout bounds Messages.
const messagesTimeout = 30 * time.Second

// account is one configured user.
type account struct {
	login    string // as given in Options.Users
	password string
	mem      *imapmemserver.User
}

// Server is a running loopback SMTP+IMAP server. Its methods are safe for
// concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	accounts map[string]*account // by lower-case login
	certPEM  []byte

	smtpSrv *smtp.Server
	smtpLn  *trackListener
	imapSrv *imapserver.Server
	imapLn  *trackListener
	pipeLn  *pipeListener

	imapStartTLS *tls.Config // non-nil when IMAP offers STARTTLS
	smtpDown     atomic.Bool

	stats struct {
		imapCommands, imapBytesIn, imapBytesOut atomic.Int64
		imapLimitRefusals                       atomic.Int64
		smtpMessages, smtpRecipients            atomic.Int64
		imapLogins, smtpAuths                   atomic.Int64
	}

	mu        sync.Mutex
	imapConns map[*imapConn]struct{}
	connsMax  int64
	loggedIn  int64 // authenticated external IMAP sessions, all users
	loggedMax int64
	userConns map[string]int             // authenticated external IMAP sessions by lower-case login
	tokenSess map[*imapSession]time.Time // IMAP sessions signed in with a token, and its expiry
	admitted  int                        // external IMAP sessions past the greeting

	closeOnce   sync.Once
	closeErr    error
	done        chan struct{}
	wg          sync.WaitGroup // the context watcher
	imapServing sync.WaitGroup // imapserver.Serve goroutines
	smtpServing sync.WaitGroup // smtp.Server.Serve goroutine
}

// Start validates opts, starts the SMTP and IMAP servers on 127.0.0.1 with
// kernel-chosen ports and returns without blocking. The servers stop when ctx
// ends or Close is called.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if len(opts.Users) == 0 {
		return nil, errors.New("loopmail: start: Options.Users is empty")
	}
	for _, m := range []TLSMode{opts.SMTPTLS, opts.IMAPTLS} {
		switch m {
		case "", TLSNone, TLSImplicit, TLSStartTLS:
		default:
			return nil, fmt.Errorf("loopmail: start: unknown TLS mode %q (want none, implicit or starttls)", m)
		}
	}
	switch opts.LimitStyle {
	case "", LimitLoginNO, LimitGreetingBYE:
	default:
		return nil, fmt.Errorf("loopmail: start: unknown limit style %q (want %s or %s)", opts.LimitStyle, LimitLoginNO, LimitGreetingBYE)
	}
	if opts.MaxIMAPConnsPerUser < 0 {
		return nil, fmt.Errorf("loopmail: start: MaxIMAPConnsPerUser is %d, want 0 or more", opts.MaxIMAPConnsPerUser)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loopmail: start: %w", err)
	}

	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		accounts:  make(map[string]*account, len(opts.Users)),
		imapConns: make(map[*imapConn]struct{}),
		userConns: make(map[string]int),
		tokenSess: make(map[*imapSession]time.Time),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}

	mem := imapmemserver.New()
	for login, password := range opts.Users {
		key := strings.ToLower(login)
		if login == "" {
			return nil, errors.New("loopmail: start: Options.Users has an empty login")
		}
		if _, dup := s.accounts[key]; dup {
			return nil, fmt.Errorf("loopmail: start: login %q is given twice (logins are case-insensitive)", login)
		}
		u := imapmemserver.NewUser(login, password)
		if err := u.Create("INBOX", nil); err != nil {
			return nil, fmt.Errorf("loopmail: start: create INBOX of %q: %w", login, err)
		}
		mem.AddUser(u)
		s.accounts[key] = &account{login: login, password: password, mem: u}
	}

	tlsConfig := opts.TLSConfig
	needTLS := isTLS(opts.SMTPTLS) || isTLS(opts.IMAPTLS)
	if needTLS && tlsConfig == nil {
		cert, pemBytes, err := SelfSignedCert(time.Now())
		if err != nil {
			return nil, fmt.Errorf("loopmail: start: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.certPEM = pemBytes
	}

	if err := s.startIMAP(tlsConfig); err != nil {
		return nil, err
	}
	if err := s.startSMTP(tlsConfig); err != nil {
		s.stopIMAP()
		return nil, err
	}

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			go s.Close() // Close waits for s.wg, so it cannot run here
		case <-s.done:
		}
	}()
	return s, nil
}

func isTLS(m TLSMode) bool { return m == TLSImplicit || m == TLSStartTLS }

// SMTPAddr returns the SMTP listener's address, "127.0.0.1:port".
func (s *Server) SMTPAddr() string { return s.smtpLn.Addr().String() }

// IMAPAddr returns the IMAP listener's address, "127.0.0.1:port".
func (s *Server) IMAPAddr() string { return s.imapLn.Addr().String() }

// CertPEM returns the PEM of the generated self-signed certificate that
// clients must trust (it is its own CA), or nil when no TLS mode is set or
// Options.TLSConfig was given.
func (s *Server) CertPEM() []byte {
	if s.certPEM == nil {
		return nil
	}
	return append([]byte(nil), s.certPEM...)
}

// Close stops both servers, closes every connection and waits for the
// server goroutines to end. Later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = errors.Join(s.stopSMTP(), s.stopIMAP())
		s.wg.Wait()
	})
	return s.closeErr
}

func (s *Server) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Deliver appends msg, raw RFC 5322 bytes, to the INBOX of user as SMTP
// delivery would, without any protocol (for seeding mailboxes quickly). IDLE
// clients of that INBOX are notified. msg is copied.
func (s *Server) Deliver(to string, msg []byte) error {
	acc := s.accounts[strings.ToLower(to)]
	if acc == nil {
		return fmt.Errorf("loopmail: deliver to %q: %w", to, ErrUnknownUser)
	}
	return s.deliver(acc, msg)
}

func (s *Server) deliver(acc *account, msg []byte) error {
	_, err := acc.mem.Append("INBOX", &literal{r: bytes.NewReader(msg), size: int64(len(msg))}, &imap.AppendOptions{Time: s.now()})
	if err != nil {
		return fmt.Errorf("loopmail: deliver to %q: %w", acc.login, err)
	}
	return nil
}

// literal adapts a reader to imap.LiteralReader.
type literal struct {
	r    io.Reader
	size int64
}

func (l *literal) Read(p []byte) (int, error) { return l.r.Read(p) }
func (l *literal) Size() int64                { return l.size }

// Messages returns the raw messages in user's INBOX, oldest first. It reads
// them over a private in-memory IMAP connection (EXAMINE + FETCH BODY.PEEK[]),
// so flags are unchanged and Stats and connection caps are not affected. It
// blocks for at most 30 seconds.
func (s *Server) Messages(user string) ([][]byte, error) {
	acc := s.accounts[strings.ToLower(user)]
	if acc == nil {
		return nil, fmt.Errorf("loopmail: read messages of %q: %w", user, ErrUnknownUser)
	}
	msgs, err := s.readInbox(acc)
	if err != nil {
		return nil, fmt.Errorf("loopmail: read messages of %q: %w", user, err)
	}
	return msgs, nil
}

func (s *Server) readInbox(acc *account) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), messagesTimeout)
	defer cancel()
	conn, err := s.pipeLn.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if err := c.Login(acc.login, acc.password).Wait(); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	data, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("examine INBOX: %w", err)
	}
	if data.NumMessages == 0 {
		return nil, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	fetched, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	msgs := make([][]byte, 0, len(fetched))
	for _, m := range fetched {
		msgs = append(msgs, m.FindBodySection(section))
	}
	if err := c.Logout().Wait(); err != nil && ctx.Err() == nil {
		s.log.Debug("loopmail: logout of internal IMAP connection", "err", err)
	}
	return msgs, nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open, max, loggedMax := int64(len(s.imapConns)), s.connsMax, s.loggedMax
	s.mu.Unlock()
	return Stats{
		IMAPCommands:      s.stats.imapCommands.Load(),
		IMAPBytesIn:       s.stats.imapBytesIn.Load(),
		IMAPBytesOut:      s.stats.imapBytesOut.Load(),
		IMAPConnsOpen:     open,
		IMAPConnsMax:      max,
		IMAPLoggedInMax:   loggedMax,
		IMAPLimitRefusals: s.stats.imapLimitRefusals.Load(),
		SMTPMessages:      s.stats.smtpMessages.Load(),
		SMTPRecipients:    s.stats.smtpRecipients.Load(),
		IMAPLogins:        s.stats.imapLogins.Load(),
		SMTPAuths:         s.stats.smtpAuths.Load(),
	}
}

// ResetStats sets the counters to zero; IMAPConnsOpen is a gauge and keeps
// its value, and IMAPConnsMax and IMAPLoggedInMax restart from the
// connections and sessions open now.
func (s *Server) ResetStats() {
	s.stats.imapCommands.Store(0)
	s.stats.imapBytesIn.Store(0)
	s.stats.imapBytesOut.Store(0)
	s.stats.imapLimitRefusals.Store(0)
	s.stats.smtpMessages.Store(0)
	s.stats.smtpRecipients.Store(0)
	s.stats.imapLogins.Store(0)
	s.stats.smtpAuths.Store(0)
	s.mu.Lock()
	s.connsMax = int64(len(s.imapConns))
	s.loggedMax = s.loggedIn
	s.mu.Unlock()
}

// DropIMAPConnections abruptly closes every open client IMAP connection
// (mid-IDLE included) without a BYE, as a network failure or server crash
// would. The listener stays up, so clients can reconnect.
func (s *Server) DropIMAPConnections() {
	s.mu.Lock()
	conns := make([]*imapConn, 0, len(s.imapConns))
	for c := range s.imapConns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drop()
	}
}

// SetSMTPDown switches the SMTP outage on or off. While down, open SMTP
// connections are closed and new ones are closed right after accept, before
// any greeting.
func (s *Server) SetSMTPDown(down bool) {
	s.smtpDown.Store(down)
	if down {
		s.smtpLn.closeConns()
	}
}

// slogPrintf adapts *slog.Logger to the Printf/Println loggers of imapserver
// and go-smtp, at debug level.
type slogPrintf struct {
	log  *slog.Logger
	name string
}

func (l slogPrintf) Printf(format string, v ...any) {
	l.log.Debug(l.name + ": " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (l slogPrintf) Println(v ...any) {
	l.log.Debug(l.name + ": " + strings.TrimSpace(fmt.Sprintln(v...)))
}

// trackListener is a TCP listener that tracks accepted connections so they
// can be closed together and waited for. reject, if set, closes a new
// connection right after accept.
type trackListener struct {
	net.Listener
	reject func() bool
	wrap   func(net.Conn) net.Conn // nil = as is

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func listenLoopback() (*trackListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &trackListener{Listener: ln, conns: make(map[*trackedConn]struct{})}, nil
}

func (l *trackListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.reject != nil && l.reject() {
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, ln: l}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return nil, net.ErrClosed
		}
		l.conns[tc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		if l.wrap != nil {
			return l.wrap(tc), nil
		}
		return tc, nil
	}
}

// shutdown closes the listener and every connection, then waits until each
// connection has been closed by its owner too.
func (l *trackListener) shutdown() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.Listener.Close()
	l.closeConns()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (l *trackListener) closeConns() {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Conn.Close() // the owner's Close still runs and is counted
	}
}

type trackedConn struct {
	net.Conn
	ln   *trackListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.ln.mu.Lock()
		delete(c.ln.conns, c)
		c.ln.mu.Unlock()
		c.ln.wg.Done()
	})
	return err
}

// pipeListener serves in-memory connections for the server's own use.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.ch <- internalConn{server}:
		return client, nil
	case <-l.done:
		client.Close()
		server.Close()
		return nil, errClosed
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	}
}

// internalConn marks the server end of a private connection.
type internalConn struct{ net.Conn }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "loopmail-internal" }
