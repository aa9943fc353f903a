package loopmail

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	smtpTimeout      = 30 * time.Second
	smtpMaxMsgBytes  = 32 << 20
	smtpMaxRcpts     = 10000
	smtpShutdownWait = 10 * time.Second
)

func (s *Server) startSMTP(tlsConfig *tls.Config) error {
	ln, err := listenLoopback()
	if err != nil {
		return fmt.Errorf("loopmail: listen for SMTP: %w", err)
	}
	ln.reject = s.smtpDown.Load

	srv := smtp.NewServer(smtp.BackendFunc(s.newSMTPSession))
	srv.Domain = "localhost"
	srv.ReadTimeout = smtpTimeout
	srv.WriteTimeout = smtpTimeout
	srv.MaxMessageBytes = smtpMaxMsgBytes
	srv.MaxRecipients = smtpMaxRcpts
	srv.ErrorLog = slogPrintf{log: s.log, name: "loopmail smtp"}
	switch s.opts.SMTPTLS {
	case TLSImplicit:
		ln.wrap = func(c net.Conn) net.Conn { return tls.Server(c, tlsConfig) }
	case TLSStartTLS:
		srv.TLSConfig = tlsConfig
	default:
		srv.AllowInsecureAuth = true // plain text is allowed on loopback only
	}
	s.smtpSrv, s.smtpLn = srv, ln

	s.smtpServing.Add(1)
	go func() {
		defer s.smtpServing.Done()
		if err := srv.Serve(ln); err != nil && !s.closed() {
			s.log.Debug("loopmail: SMTP server stopped", "err", err)
		}
	}()
	return nil
}

func (s *Server) stopSMTP() error {
	// Let Serve return before Shutdown waits for the connection goroutines:
	// go-smtp adds to its WaitGroup in the accept loop.
	err := s.smtpLn.Listener.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	s.smtpServing.Wait()
	if lerr := s.smtpLn.shutdown(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), smtpShutdownWait)
	defer cancel()
	// Shutdown closes the (closed) listener again, whose error is expected.
	if serr := s.smtpSrv.Shutdown(ctx); serr != nil && !errors.Is(serr, net.ErrClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("loopmail: stop SMTP: %w", err)
	}
	return nil
}

// smtpSession is one SMTP connection's state.
type smtpSession struct {
	s     *Server
	login string // authenticated login, "" before AUTH
	rcpts []*account
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *Server) newSMTPSession(*smtp.Conn) (smtp.Session, error) {
	return &smtpSession{s: s}, nil
}

// AuthMechanisms implements smtp.AuthSession.
func (ss *smtpSession) AuthMechanisms() []string {
	if ss.s.opts.CheckToken != nil {
		return []string{sasl.Plain, sasl.Login, mechXOAuth2, mechOAuthBearer}
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return errors.New("identity differs from username")
			}
			return ss.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: ss.authenticate}, nil
	case mechXOAuth2, mechOAuthBearer:
		if ss.s.opts.CheckToken != nil {
			return &smtpBearer{bearerServer{mech: mech, auth: ss.authenticateToken}}, nil
		}
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *smtpSession) authenticate(username, password string) error {
	ss.s.stats.smtpAuths.Add(1)
	acc := ss.s.checkPassword(username, password)
	if acc == nil {
		return smtp.ErrAuthFailed
	}
	ss.login = acc.login
	return nil
}

func (ss *smtpSession) authenticateToken(user, token string) error {
	acc, _, err := ss.s.checkToken(user, token)
	if err != nil {
		return err
	}
	ss.login = acc.login
	return nil
}

// smtpBearer answers a refused token with 535 5.7.8.
type smtpBearer struct{ bearerServer }

func (b *smtpBearer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := b.bearerServer.Next(response)
	if errors.Is(err, errTokenRefused) {
		err = smtp.ErrAuthFailed
	}
	return challenge, done, err
}

// checkPassword returns the account if username and password match, in
// constant time with respect to the password.
func (s *Server) checkPassword(username, password string) *account {
	acc := s.accounts[strings.ToLower(username)]
	if acc == nil {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(acc.password)) != 1 {
		return nil
	}
	return acc
}

// Mail implements smtp.Session.
func (ss *smtpSession) Mail(string, *smtp.MailOptions) error {
	if ss.login == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	return nil
}

// Rcpt implements smtp.Session.
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	acc := ss.s.accounts[strings.ToLower(to)]
	if acc == nil {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	for _, r := range ss.rcpts {
		if r == acc {
			return nil // one copy per mailbox
		}
	}
	ss.rcpts = append(ss.rcpts, acc)
	return nil
}

// Data implements smtp.Session.
func (ss *smtpSession) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	for _, acc := range ss.rcpts {
		if err := ss.s.deliver(acc, buf.Bytes()); err != nil {
			ss.s.log.Debug("loopmail: SMTP delivery failed", "to", acc.login, "err", err)
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Delivery failed"}
		}
	}
	ss.s.stats.smtpMessages.Add(1)
	ss.s.stats.smtpRecipients.Add(int64(len(ss.rcpts)))
	ss.s.log.Debug("loopmail: SMTP message accepted", "from_login", ss.login, "recipients", len(ss.rcpts), "bytes", buf.Len())
	ss.rcpts = nil
	return nil
}

// Reset implements smtp.Session.
func (ss *smtpSession) Reset() { ss.rcpts = nil }

// Logout implements smtp.Session.
func (ss *smtpSession) Logout() error { return nil }

// loginServer is the server side of the obsolete but common SASL LOGIN
// mechanism (draft-murchison-sasl-login), which go-sasl lacks.
type loginServer struct {
	auth     func(username, password string) error
	username string
	step     int // 0: start, 1: want username, 2: want password, 3: done
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil { // no initial response
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth(l.username, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
