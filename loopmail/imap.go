package loopmail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

const (
	startTLSTimeout = 30 * time.Second
	maxInspectLine  = 64 << 10 // longer client lines pass through uninspected (imapserver rejects them)
	readChunk       = 4096
)

func (s *Server) startIMAP(tlsConfig *tls.Config) error {
	ln, err := listenLoopback()
	if err != nil {
		return fmt.Errorf("loopmail: listen for IMAP: %w", err)
	}
	switch s.opts.IMAPTLS {
	case TLSImplicit:
		ln.wrap = func(c net.Conn) net.Conn { return s.newIMAPConn(c, tls.Server(c, tlsConfig), true) }
	case TLSStartTLS:
		s.imapStartTLS = tlsConfig
		ln.wrap = func(c net.Conn) net.Conn { return s.newIMAPConn(c, c, false) }
	default:
		ln.wrap = func(c net.Conn) net.Conn { return s.newIMAPConn(c, c, false) }
	}

	caps := imap.CapSet{
		imap.CapIMAP4rev1:    {},
		imap.CapNamespace:    {},
		imap.CapUIDPlus:      {},
		imap.CapESearch:      {},
		imap.CapMove:         {},
		imap.CapListExtended: {},
		imap.CapListStatus:   {},
		imap.CapStatusSize:   {},
		imap.CapLiteralPlus:  {},
	}
	if s.opts.NoESEARCH {
		delete(caps, imap.CapESearch)
	}
	s.imapSrv = imapserver.New(&imapserver.Options{
		NewSession: s.newIMAPSession,
		Caps:       caps,
		Logger:     slogPrintf{log: s.log, name: "loopmail imap"},
		// TLS is enforced by imapConn: the implicit-TLS listener, or
		// STARTTLS before LOGIN (imapSession.Login). imapserver only sees
		// imapConn, never a *tls.Conn.
		InsecureAuth: true,
	})
	s.imapLn = ln
	s.pipeLn = newPipeListener()

	for _, l := range []net.Listener{ln, s.pipeLn} {
		s.imapServing.Add(1)
		go func() {
			defer s.imapServing.Done()
			if err := s.imapSrv.Serve(l); err != nil && !s.closed() {
				s.log.Debug("loopmail: IMAP server stopped", "err", err)
			}
		}()
	}
	return nil
}

func (s *Server) stopIMAP() error {
	// Stop accepting and let Serve return before imapserver.Close: Close
	// racing with Serve's start is a data race inside imapserver.
	err := s.imapLn.Listener.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	s.pipeLn.Close()
	s.imapServing.Wait()
	// Close the connections imapserver knows of, then any accepted but not
	// yet registered, and wait until all are closed.
	if cerr := s.imapSrv.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if lerr := s.imapLn.shutdown(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	if err != nil {
		return fmt.Errorf("loopmail: stop IMAP: %w", err)
	}
	return nil
}

// imapSession checks logins against Options.Users, enforces the per-user
// connection cap and otherwise is imapmemserver's UserSession.
type imapSession struct {
	*imapmemserver.UserSession // nil before login

	s        *Server
	imapConn *imapserver.Conn
	conn     *imapConn // nil for the server's own connections
	admitted bool      // counted in Server.admitted
	user     string    // lower-case login counted in Server.userConns, "" if none
}

var (
	_ imapserver.SessionIMAP4rev2 = (*imapSession)(nil)
	_ imapserver.SessionSASL      = (*imapSession)(nil)
)

func (s *Server) newIMAPSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ic, _ := c.NetConn().(*imapConn)
	sess := &imapSession{s: s, conn: ic, imapConn: c}
	if ic == nil {
		return sess, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.LimitStyle == LimitGreetingBYE && s.opts.MaxIMAPConnsPerUser > 0 && s.admitted >= s.opts.MaxIMAPConnsPerUser {
		s.stats.imapLimitRefusals.Add(1)
		s.log.Debug("loopmail: IMAP connection refused in greeting: too many connections", "max", s.opts.MaxIMAPConnsPerUser)
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Code: imap.ResponseCodeLimit, Text: limitText}
	}
	s.admitted++
	sess.admitted = true
	return sess, nil, nil
}

// Login implements imapserver.Session.
func (ss *imapSession) Login(username, password string) error {
	if ss.conn != nil {
		ss.s.stats.imapLogins.Add(1)
	}
	if ss.conn != nil && ss.conn.needsTLS() {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	}
	acc := ss.s.checkPassword(username, password)
	if acc == nil {
		return imapserver.ErrAuthFailed
	}
	return ss.admit(acc)
}

// AuthenticateMechanisms implements imapserver.SessionSASL.
func (ss *imapSession) AuthenticateMechanisms() []string {
	if ss.s.opts.CheckToken != nil {
		return []string{sasl.Plain, mechXOAuth2, mechOAuthBearer}
	}
	return []string{sasl.Plain}
}

// Authenticate implements imapserver.SessionSASL.
func (ss *imapSession) Authenticate(mech string) (sasl.Server, error) {
	if ss.conn != nil && ss.conn.needsTLS() {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "SASL identity not supported"}
			}
			return ss.Login(username, password)
		}), nil
	case mechXOAuth2, mechOAuthBearer:
		if ss.s.opts.CheckToken != nil {
			return &imapBearer{bearerServer{mech: mech, auth: func(user, token string) error {
				acc, expires, err := ss.s.checkToken(user, token)
				if err != nil {
					return err
				}
				if err := ss.admit(acc); err != nil {
					return err
				}
				if ss.conn != nil {
					ss.s.mu.Lock()
					ss.s.tokenSess[ss] = expires
					ss.s.mu.Unlock()
				}
				return nil
			}}}, nil
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// imapBearer answers a refused token with NO [AUTHENTICATIONFAILED]; a
// refusal by admit (the connection cap) keeps its own reply.
type imapBearer struct{ bearerServer }

func (b *imapBearer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := b.bearerServer.Next(response)
	if errors.Is(err, errTokenRefused) {
		err = imapserver.ErrAuthFailed
	}
	return challenge, done, err
}

// admit counts an authenticated session against the connection cap and
// opens the account's mailboxes.
func (ss *imapSession) admit(acc *account) error {
	if ss.conn != nil {
		key := strings.ToLower(acc.login)
		limit := ss.s.opts.MaxIMAPConnsPerUser
		ss.s.mu.Lock()
		if limit > 0 && ss.s.opts.LimitStyle != LimitGreetingBYE && ss.s.userConns[key] >= limit {
			ss.s.mu.Unlock()
			ss.s.stats.imapLimitRefusals.Add(1)
			ss.s.log.Debug("loopmail: IMAP login refused: too many connections", "user", acc.login, "max", limit)
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: limitText}
		}
		ss.s.userConns[key]++
		ss.s.loggedIn++
		ss.s.loggedMax = max(ss.s.loggedMax, ss.s.loggedIn)
		ss.s.mu.Unlock()
		ss.user = key
		ss.conn.setAuthenticated()
	}
	ss.UserSession = imapmemserver.NewUserSession(acc.mem)
	return nil
}

// Idle sends the changes queued since the last command before it waits:
// imapmemserver alone holds them back until the next command, so mail
// that arrived between a client's SEARCH and its IDLE would not be pushed.
// Real servers (Dovecot, Gmail) sync the mailbox when IDLE starts.
func (ss *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := ss.UserSession.Poll(w, true); err != nil {
		return err
	}
	return ss.UserSession.Idle(w, stop)
}

// Close implements imapserver.Session.
func (ss *imapSession) Close() error {
	ss.s.mu.Lock()
	if ss.admitted {
		ss.s.admitted--
		ss.admitted = false
	}
	delete(ss.s.tokenSess, ss)
	if ss.user != "" {
		ss.s.userConns[ss.user]--
		ss.s.loggedIn--
		ss.user = ""
	}
	ss.s.mu.Unlock()
	return ss.UserSession.Close() // nil-safe
}

// imapConn sits between a client connection and imapserver, in plain text
// (above TLS). It counts bytes and command lines, implements STARTTLS itself
// (so that it stays in plain text), rewrites capability lists (NoIDLE,
// STARTTLS/LOGINDISABLED before TLS) and disables IDLE when asked.
//
// Client input is parsed as IMAP command lines with literals ({N} / {N+}),
// server output as response lines with literals, so literal contents are
// never inspected.
type imapConn struct {
	s        *Server
	raw      net.Conn    // the tracked TCP connection
	startTLS *tls.Config // non-nil in starttls mode

	mu        sync.Mutex
	transport net.Conn // raw, or the *tls.Conn above it
	tlsDone   bool
	authed    bool
	cmdStart  bool  // the next client line starts a command
	litLeft   int64 // client literal bytes still to pass through
	litSync   bool  // that literal is synchronizing ({N}): the server may refuse it
	litGot    bool  // some of that literal has arrived

	// read side: used only by imapserver's reading goroutine
	rbuf     []byte // unprocessed client bytes
	line     []byte // current client line
	out      []byte // processed bytes for imapserver
	outOff   int
	overlong bool // inside an uninspected overlong line
	tmp      []byte

	// write side
	wmu   sync.Mutex
	wline []byte // current response line, held until complete
	wlit  int64  // response literal bytes still to pass through
	wcont bool   // the current line continues after a literal
	wbuf  []byte

	closeOnce sync.Once
	closeErr  error
}

func (s *Server) newIMAPConn(raw, transport net.Conn, tlsDone bool) *imapConn {
	c := &imapConn{
		s:         s,
		raw:       raw,
		startTLS:  s.imapStartTLS,
		transport: transport,
		tlsDone:   tlsDone,
		cmdStart:  true,
	}
	s.mu.Lock()
	s.imapConns[c] = struct{}{}
	if n := int64(len(s.imapConns)); n > s.connsMax {
		s.connsMax = n
	}
	s.mu.Unlock()
	return c
}

func (c *imapConn) needsTLS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startTLS != nil && !c.tlsDone
}

func (c *imapConn) setAuthenticated() {
	c.mu.Lock()
	c.authed = true
	c.mu.Unlock()
}

func (c *imapConn) getTransport() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transport
}

// Read implements net.Conn for imapserver.
func (c *imapConn) Read(p []byte) (int, error) {
	for c.outOff == len(c.out) {
		if len(c.rbuf) == 0 {
			if c.tmp == nil {
				c.tmp = make([]byte, readChunk)
			}
			n, err := c.getTransport().Read(c.tmp)
			if n == 0 && err != nil {
				return 0, err
			}
			c.s.stats.imapBytesIn.Add(int64(n))
			c.rbuf = append(c.rbuf, c.tmp[:n]...)
		}
		if tag, ok := c.process(); ok {
			if err := c.doStartTLS(tag); err != nil {
				return 0, err
			}
		}
	}
	n := copy(p, c.out[c.outOff:])
	c.outOff += n
	if c.outOff == len(c.out) {
		c.out, c.outOff = c.out[:0], 0
	}
	return n, nil
}

// process moves c.rbuf through the command parser into c.out. It returns
// the tag of a STARTTLS command to carry out, with c.out empty.
func (c *imapConn) process() (startTLSTag string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := c.rbuf
	for len(data) > 0 {
		if c.litLeft > 0 {
			n := min(int64(len(data)), c.litLeft)
			c.out = append(c.out, data[:n]...)
			c.litLeft -= n
			c.litGot = true
			data = data[n:]
			continue
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.line = append(c.line, data...)
			data = nil
			if len(c.line) > maxInspectLine {
				c.out = append(c.out, c.line...)
				c.line = c.line[:0]
				c.overlong = true
			}
			break
		}
		c.line = append(c.line, data[:i+1]...)
		data = data[i+1:]
		if c.overlong {
			c.out = append(c.out, c.line...)
			c.line = c.line[:0]
			c.overlong = false
			c.cmdStart = true
			continue
		}
		if tag, ok := c.handleLineLocked(); ok {
			if len(c.out) > c.outOff {
				// Earlier pipelined commands go to imapserver first; the
				// STARTTLS line is parsed again when they are done.
				c.rbuf = append(append([]byte(nil), c.line...), data...)
				c.line = c.line[:0]
				return "", false
			}
			c.line = c.line[:0]
			c.rbuf = c.rbuf[:0] // plain text sent after STARTTLS is discarded
			c.s.stats.imapCommands.Add(1)
			return tag, true
		}
		c.line = c.line[:0]
	}
	c.rbuf = c.rbuf[:0]
	return "", false
}

// handleLineLocked inspects the complete client line c.line and appends it,
// maybe rewritten, to c.out, unless it is a STARTTLS to carry out.
func (c *imapConn) handleLineLocked() (startTLSTag string, startTLS bool) {
	line := c.line
	body := trimCRLF(line)
	if c.cmdStart {
		if tag, name, rest, ok := parseCommand(body); ok {
			if name == "STARTTLS" && len(rest) == 0 && c.startTLS != nil && !c.tlsDone {
				return tag, true
			}
			c.s.stats.imapCommands.Add(1)
			if name == "IDLE" && c.s.opts.NoIDLE && c.authed {
				// An unknown command: imapserver answers "BAD Unknown command".
				line = []byte(tag + " X-LOOPMAIL-NO-IDLE\r\n")
			}
		}
	}
	c.out = append(c.out, line...)
	if n, sync, ok := literalSuffix(body); ok {
		c.litLeft, c.litSync, c.litGot = n, sync, false
		c.cmdStart = false
	} else {
		c.cmdStart = true
	}
	return "", false
}

// doStartTLS answers STARTTLS and switches the connection to TLS.
func (c *imapConn) doStartTLS(tag string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.raw.Write([]byte(tag + " OK Begin TLS negotiation now\r\n"))
	c.s.stats.imapBytesOut.Add(int64(n))
	if err != nil {
		return err
	}
	tlsConn := tls.Server(c.raw, c.startTLS)
	ctx, cancel := context.WithTimeout(context.Background(), startTLSTimeout)
	defer cancel()
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("loopmail: IMAP STARTTLS handshake: %w", err)
	}
	c.mu.Lock()
	c.transport = tlsConn
	c.tlsDone = true
	c.cmdStart = true
	c.mu.Unlock()
	return nil
}

// Write implements net.Conn for imapserver. It holds an incomplete response
// line until its end arrives (imapserver always completes lines).
func (c *imapConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := c.wbuf[:0]
	data := p
	for len(data) > 0 {
		if c.wlit > 0 {
			n := min(int64(len(data)), c.wlit)
			out = append(out, data[:n]...)
			c.wlit -= n
			data = data[n:]
			continue
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.wline = append(c.wline, data...)
			break
		}
		c.wline = append(c.wline, data[:i+1]...)
		data = data[i+1:]
		body := trimCRLF(c.wline)
		line := c.wline
		if !c.wcont {
			line = c.filterResponse(line, body)
		}
		if n, _, ok := literalSuffix(body); ok {
			c.wlit, c.wcont = n, true
		} else {
			c.wcont = false
		}
		out = append(out, line...)
		c.wline = c.wline[:0]
	}
	c.wbuf = out[:0]
	if len(out) > 0 {
		n, err := c.getTransport().Write(out)
		c.s.stats.imapBytesOut.Add(int64(n))
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// filterResponse rewrites the capability list of a response line, if any,
// and notes a tagged completion that refuses a pending client literal.
func (c *imapConn) filterResponse(line, body []byte) []byte {
	first, afterFirst, _ := bytes.Cut(body, []byte(" "))
	if !bytes.Equal(first, []byte("*")) && !bytes.Equal(first, []byte("+")) {
		c.mu.Lock()
		if c.litLeft > 0 && c.litSync && !c.litGot {
			c.litLeft = 0 // the client will not send the refused literal
			c.cmdStart = true
		}
		c.mu.Unlock()
	}

	var start, end int
	switch {
	case bytes.Equal(first, []byte("*")) && hasPrefixFold(afterFirst, "CAPABILITY "):
		start = len(body) - len(afterFirst) + len("CAPABILITY ")
		end = len(body)
	default:
		typ, rest, _ := bytes.Cut(afterFirst, []byte(" "))
		switch strings.ToUpper(string(typ)) {
		case "OK", "PREAUTH", "BYE", "NO", "BAD":
		default:
			return line
		}
		if !hasPrefixFold(rest, "[CAPABILITY ") {
			return line
		}
		start = len(body) - len(rest) + len("[CAPABILITY ")
		close := bytes.IndexByte(body[start:], ']')
		if close < 0 {
			return line
		}
		end = start + close
	}

	caps := c.rewriteCaps(strings.Fields(string(body[start:end])))
	var b bytes.Buffer
	b.Write(body[:start])
	b.WriteString(strings.Join(caps, " "))
	b.Write(body[end:])
	b.WriteString("\r\n")
	return b.Bytes()
}

func (c *imapConn) rewriteCaps(caps []string) []string {
	c.mu.Lock()
	beforeTLS := c.startTLS != nil && !c.tlsDone
	c.mu.Unlock()
	out := caps[:0]
	for _, cp := range caps {
		u := strings.ToUpper(cp)
		switch {
		case c.s.opts.NoIDLE && u == "IDLE":
		case beforeTLS && (strings.HasPrefix(u, "AUTH=") || u == "STARTTLS" || u == "LOGINDISABLED"):
		default:
			out = append(out, cp)
		}
	}
	if beforeTLS {
		out = append(out, "STARTTLS", "LOGINDISABLED")
	}
	return out
}

// Close implements net.Conn.
func (c *imapConn) Close() error {
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		delete(c.s.imapConns, c)
		c.s.mu.Unlock()
		c.closeErr = c.getTransport().Close()
		if c.raw != c.getTransport() {
			c.raw.Close() // tls.Conn.Close closes it too; this is for failed handshakes
		}
	})
	return c.closeErr
}

// drop closes the TCP connection under any TLS, without goodbye; imapserver
// then notices and calls Close.
func (c *imapConn) drop() { c.raw.Close() }

func (c *imapConn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *imapConn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *imapConn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *imapConn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *imapConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// parseCommand splits "tag SP name [SP rest]". It reports false for lines
// that are not commands (IDLE's DONE, SASL responses, empty lines).
func parseCommand(body []byte) (tag, name string, rest []byte, ok bool) {
	t, after, found := bytes.Cut(body, []byte(" "))
	if !found || len(t) == 0 {
		return "", "", nil, false
	}
	for _, b := range t {
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`(){%*"\]+`, b) >= 0 {
			return "", "", nil, false
		}
	}
	n, rest, _ := bytes.Cut(after, []byte(" "))
	if len(n) == 0 {
		return "", "", nil, false
	}
	for i, b := range n {
		letter := (b|0x20) >= 'a' && (b|0x20) <= 'z'
		if !letter && (i == 0 || (b != '-' && (b < '0' || b > '9'))) {
			return "", "", nil, false
		}
	}
	return string(t), strings.ToUpper(string(n)), rest, true
}

// literalSuffix reports whether a line (without CRLF) announces a literal,
// "{N}" (synchronizing) or "{N+}" (LITERAL+/LITERAL-), and its size.
func literalSuffix(body []byte) (size int64, sync, ok bool) {
	if len(body) < 3 || body[len(body)-1] != '}' {
		return 0, false, false
	}
	open := bytes.LastIndexByte(body, '{')
	if open < 0 {
		return 0, false, false
	}
	digits := body[open+1 : len(body)-1]
	sync = true
	if n := len(digits); n > 0 && digits[n-1] == '+' {
		digits, sync = digits[:n-1], false
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false, false
		}
	}
	size, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, false, false
	}
	return size, sync, true
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}
