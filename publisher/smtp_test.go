package publisher

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

const (
	alice    = "alice@example.test"
	bob      = "bob@example.test"
	carol    = "carol@example.test"
	password = "correct horse"
)

var testUsers = map[string]string{alice: password, bob: password, carol: password}

// startMail starts a loopmail server for the test with both protocols in
// mode and stops it at the end.
func startMail(t *testing.T, mode loopmail.TLSMode) *loopmail.Server {
	t.Helper()
	srv, err := loopmail.Start(t.Context(), loopmail.Options{Users: testUsers, SMTPTLS: mode, IMAPTLS: mode})
	if err != nil {
		t.Fatalf("loopmail.Start() = %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// endpointOf describes the loopmail listener at addr for mailconn, trusting
// the server's self-signed certificate.
func endpointOf(t *testing.T, srv *loopmail.Server, addr string, mode mailconn.TLSMode) mailconn.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	ep := mailconn.Endpoint{Host: host, Port: portNum, TLS: mode}
	if pem := srv.CertPEM(); pem != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("loopmail CertPEM holds no certificate")
		}
		ep.RootCAs = pool
	}
	return ep
}

func newMailer(t *testing.T, ep mailconn.Endpoint, user, pass string) *SMTPMailer {
	t.Helper()
	m, err := NewSMTPMailer(SMTPOptions{Endpoint: ep, Auth: pwAuth(user, pass), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("NewSMTPMailer() = %v", err)
	}
	return m
}

func testMessage(to ...string) Message {
	return Message{From: alice, To: to, Subject: "ipsync srv1", Name: "srv1", Body: "hello"}
}

func TestSMTPMailerTLSModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		server loopmail.TLSMode
		client mailconn.TLSMode
		caFile bool
	}{
		{"implicit", loopmail.TLSImplicit, mailconn.TLSImplicit, false},
		{"implicit with CA file", loopmail.TLSImplicit, mailconn.TLSImplicit, true},
		{"starttls", loopmail.TLSStartTLS, mailconn.TLSStartTLS, false},
		{"none on loopback", loopmail.TLSNone, mailconn.TLSNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startMail(t, tt.server)
			ep := endpointOf(t, srv, srv.SMTPAddr(), tt.client)
			if tt.caFile {
				path := filepath.Join(t.TempDir(), "ca.pem")
				if err := os.WriteFile(path, srv.CertPEM(), 0o600); err != nil {
					t.Fatal(err)
				}
				pool, err := mailconn.LoadCAFile(path)
				if err != nil {
					t.Fatalf("LoadCAFile() = %v", err)
				}
				ep.RootCAs = pool
			}
			m := newMailer(t, ep, alice, password)
			if err := m.Check(t.Context()); err != nil {
				t.Fatalf("Check() = %v, want nil", err)
			}
			if err := m.Send(t.Context(), testMessage(bob)); err != nil {
				t.Fatalf("Send() = %v, want nil", err)
			}
			msgs, err := srv.Messages(bob)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 1 {
				t.Errorf("Messages(bob) = %d messages, want 1", len(msgs))
			}
		})
	}
}

func TestSMTPMailerRefusesInsecure(t *testing.T) {
	t.Parallel()
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		srv := startMail(t, loopmail.TLSImplicit)
		ep := endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit)
		ep.RootCAs = x509.NewCertPool() // trusts nothing
		err := newMailer(t, ep, alice, password).Send(t.Context(), testMessage(bob))
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("Send() = %v, want x509.UnknownAuthorityError", err)
		}
		if st := srv.Stats(); st.SMTPMessages != 0 {
			t.Errorf("SMTPMessages = %d, want 0", st.SMTPMessages)
		}
	})
	t.Run("starttls not offered", func(t *testing.T) {
		t.Parallel()
		// A go-smtp server without a TLS config does not offer STARTTLS;
		// it would take mail in plain text, so any MAIL is a failure.
		var mails atomic.Int64
		be := smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &countSession{mails: &mails}, nil })
		s := smtp.NewServer(be)
		s.Domain = "localhost"
		s.AllowInsecureAuth = true
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(ln)
		t.Cleanup(func() { s.Close() })
		ep := mailconn.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: mailconn.TLSStartTLS}

		err = newMailer(t, ep, alice, password).Send(t.Context(), testMessage(bob))
		if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("Send() = %v, want an error about missing STARTTLS", err)
		}
		if n := mails.Load(); n != 0 {
			t.Errorf("MAIL commands = %d, want 0 (no plaintext fallback)", n)
		}
	})
	t.Run("none on a remote host", func(t *testing.T) {
		t.Parallel()
		_, err := NewSMTPMailer(SMTPOptions{Endpoint: mailconn.Endpoint{Host: "mail.example.com", Port: 25, TLS: mailconn.TLSNone}})
		if !errors.Is(err, mailconn.ErrPlaintextRemote) {
			t.Errorf("NewSMTPMailer(tls none, remote) = %v, want ErrPlaintextRemote", err)
		}
	})
}

// countSession is a go-smtp session that accepts anything and counts MAIL
// commands.
type countSession struct{ mails *atomic.Int64 }

func (s *countSession) Mail(string, *smtp.MailOptions) error { s.mails.Add(1); return nil }
func (s *countSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *countSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (s *countSession) Reset()                               {}
func (s *countSession) Logout() error                        { return nil }

func TestSMTPMailerAuthFailureIsPermanent(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	ep := endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit)
	m := newMailer(t, ep, alice, "wrong password")
	err := m.Send(t.Context(), testMessage(bob))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "535") {
		t.Errorf("Send(wrong password) = %v, want ErrRejected with 535", err)
	}
	if err := m.Check(t.Context()); !errors.Is(err, ErrRejected) {
		t.Errorf("Check(wrong password) = %v, want ErrRejected", err)
	}
	// An unknown recipient (550) is permanent too.
	err = newMailer(t, ep, alice, password).Send(t.Context(), testMessage("nobody@example.test"))
	if !errors.Is(err, ErrRejected) {
		t.Errorf("Send(unknown recipient) = %v, want ErrRejected", err)
	}
}

func TestSMTPMailerContextEnds(t *testing.T) {
	t.Parallel()
	// A server that accepts TCP and never greets: Send must end with ctx.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	ep := mailconn.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: mailconn.TLSNone}
	m, err := NewSMTPMailer(SMTPOptions{Endpoint: ep, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(t.Context(), testMessage(bob))
	if !errors.Is(err, errSMTPTimeout) {
		t.Errorf("Send(silent server) = %v, want errSMTPTimeout", err)
	}
}

// publisherFor returns a Publisher that sends through srv with the real
// sealed codec.
func publisherFor(t *testing.T, srv *loopmail.Server, to []string, key codec.ServerKey, disc Finder) *Publisher {
	t.Helper()
	p, err := New(Options{
		Name:   "srv1",
		From:   alice,
		To:     to,
		Mailer: newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password),
		Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
		Finder: disc,
		Store:  FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
	})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return p
}

func TestMessageContent(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v4 := netip.MustParseAddr("203.0.113.7")
	v6 := netip.MustParseAddr("2001:db8::7")
	p := publisherFor(t, srv, []string{bob, carol}, key, staticFinder{Addrs{v4, v6}})
	sent, err := p.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("RunOnce() = %v", err)
	}
	if sent.Seq != 1 || sent.Addrs != (Addrs{v4, v6}) {
		t.Errorf("RunOnce() = %+v, want seq 1 with %s %s", sent, v4, v6)
	}
	msgs, err := srv.Messages(bob)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Messages(bob) = %d, %v, want 1 message", len(msgs), err)
	}
	raw := msgs[0]

	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	h := mr.Header
	if got, _ := h.Subject(); got != "ipsync srv1" {
		t.Errorf("Subject = %q, want %q", got, "ipsync srv1")
	}
	if got, _ := h.MessageID(); got == "" || !strings.HasSuffix(got, "@example.test") {
		t.Errorf("Message-ID = %q, want a random id at example.test", got)
	}
	if got, err := h.Date(); err != nil || got.IsZero() {
		t.Errorf("Date = %v, %v, want a date", got, err)
	}
	if got := h.Get(NameHeader); got != "srv1" {
		t.Errorf("%s = %q, want srv1", NameHeader, got)
	}
	if got, _ := h.AddressList("To"); len(got) != 1 || got[0].Address != alice {
		t.Errorf("To = %v, want only the sender %s", got, alice)
	}
	if h.Has("Cc") || h.Has("Bcc") {
		t.Errorf("message has Cc or Bcc headers: %q %q", h.Get("Cc"), h.Get("Bcc"))
	}
	// No header mentions an address or another recipient.
	fields := h.Fields()
	for fields.Next() {
		v := fields.Value()
		for _, bad := range []string{v4.String(), v6.String(), bob, carol} {
			if strings.Contains(v, bad) {
				t.Errorf("header %s = %q mentions %q", fields.Key(), v, bad)
			}
		}
	}
	part, err := mr.NextPart()
	if err != nil {
		t.Fatalf("read body part: %v", err)
	}
	if ct, _, _ := part.Header.(*mail.InlineHeader).ContentType(); ct != "text/plain" {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	body, err := io.ReadAll(part.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.Open(string(body), key.ClientKey())
	if err != nil {
		t.Fatalf("codec.Open(body) = %v", err)
	}
	if got.Name != "srv1" || got.IPv4 != v4 || got.IPv6 != v6 || got.Seq != 1 || got.Heartbeat != DefaultHeartbeatEvery {
		t.Errorf("payload = %+v, want srv1 %s %s seq 1 heartbeat 1h", got, v4, v6)
	}
	if bytes.Contains(raw, []byte(v4.String())) {
		t.Errorf("raw message contains the address %s in clear", v4)
	}
}

func TestOneTransactionForAllRecipients(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v4 := netip.MustParseAddr("198.51.100.9")
	p := publisherFor(t, srv, []string{alice, bob, carol}, key, staticFinder{Addrs{IPv4: v4}})
	if _, err := p.RunOnce(t.Context()); err != nil {
		t.Fatalf("RunOnce() = %v", err)
	}
	st := srv.Stats()
	if st.SMTPMessages != 1 || st.SMTPRecipients != 3 {
		t.Errorf("Stats() = %d messages, %d recipients, want 1, 3", st.SMTPMessages, st.SMTPRecipients)
	}
	for _, user := range []string{alice, bob, carol} {
		msgs, err := srv.Messages(user)
		if err != nil || len(msgs) != 1 {
			t.Errorf("Messages(%s) = %d, %v, want 1 message", user, len(msgs), err)
		}
	}
}

func TestCheckSMTP(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSStartTLS)
	m := newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSStartTLS), alice, password)
	if err := m.Check(t.Context()); err != nil {
		t.Errorf("Check() = %v, want nil", err)
	}
	if st := srv.Stats(); st.SMTPMessages != 0 {
		t.Errorf("SMTPMessages after Check = %d, want 0", st.SMTPMessages)
	}
}

// staticFinder always finds the same addresses.
type staticFinder struct{ a Addrs }

func (d staticFinder) Find(context.Context) (Addrs, error) { return d.a, nil }

// heloSession is a go-smtp session that records the EHLO name of its
// connection at MAIL FROM.
type heloSession struct {
	conn  *smtp.Conn
	names chan<- string
}

func (s *heloSession) Mail(string, *smtp.MailOptions) error {
	s.names <- s.conn.Hostname()
	return nil
}
func (s *heloSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *heloSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (s *heloSession) Reset()                               {}
func (s *heloSession) Logout() error                        { return nil }

func TestEHLODoesNotNameTheHost(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ helo, want string }{{"", DefaultHELO}, {"ipsync.invalid", "ipsync.invalid"}} {
		names := make(chan string, 1)
		be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &heloSession{conn: c, names: names}, nil })
		s := smtp.NewServer(be)
		s.Domain = "localhost"
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(ln)
		t.Cleanup(func() { s.Close() })
		ep := mailconn.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: mailconn.TLSNone}
		m, err := NewSMTPMailer(SMTPOptions{Endpoint: ep, HELO: tt.helo, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Send(t.Context(), testMessage(bob)); err != nil {
			t.Fatalf("Send() = %v", err)
		}
		if got := <-names; got != tt.want || (got == host && host != tt.want) {
			t.Errorf("HELO %q: server saw EHLO %q, want %q (host name is %q)", tt.helo, got, tt.want, host)
		}
	}
	for _, bad := range []string{"my host", "-x", "a..b", "[nope]"} {
		if _, err := NewSMTPMailer(SMTPOptions{Endpoint: mailconn.Endpoint{Host: "127.0.0.1", Port: 25, TLS: mailconn.TLSNone}, HELO: bad}); err == nil {
			t.Errorf("NewSMTPMailer(HELO %q) = nil error, want one", bad)
		}
	}
}

// pwAuth signs in as user with password.
func pwAuth(user, password string) mailconn.Auth {
	return mailconn.PasswordAuth(user, func(context.Context) (string, error) { return password, nil })
}

// loginSession is a go-smtp session whose AUTH offers mechs and answers
// every login with err (nil accepts it).
type loginSession struct {
	countSession
	mechs []string
	err   error
}

func (s *loginSession) AuthMechanisms() []string { return s.mechs }
func (s *loginSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, _, _ string) error { return s.err }), nil
}

// startLoginServer starts a plain-text go-smtp server on loopback whose
// logins fail as loginSession says, and returns its endpoint.
func startLoginServer(t *testing.T, mechs []string, err error) mailconn.Endpoint {
	t.Helper()
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	var mails atomic.Int64
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &loginSession{countSession{&mails}, mechs, err}, nil
	}))
	s.AllowInsecureAuth = true // loopback, tls: none
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return mailconn.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: mailconn.TLSNone}
}

// TestSMTPLoginFailures: every way an SMTP server can turn down the login
// comes out of Send explained — the setting to look at first and the fix —
// and never as a failure to connect; through a Publisher, the message the
// tray shows leads with it and ends with the message's sequence number.
func TestSMTPLoginFailures(t *testing.T) {
	t.Parallel()
	plain := []string{sasl.Plain}
	tests := []struct {
		name     string
		mechs    []string
		err      error
		problem  mailconn.Problem
		setting  string
		want     string // in the message
		refused  bool   // errors.Is ErrAuthRefused
		rejected bool   // errors.Is ErrRejected
	}{
		{"wrong password", plain, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted"},
			mailconn.ProblemAuth, "mail.password", `refused the login of "alice@example.test" (535 5.7.8 Username and Password not accepted): check mail.username and mail.password`, true, true},
		{"app password required", plain, &smtp.SMTPError{Code: 534, EnhancedCode: smtp.EnhancedCode{5, 7, 9}, Message: "Application-specific password required"},
			mailconn.ProblemAuth, "mail.password", "(534 5.7.9 Application-specific password required)", true, true},
		{"temporary refusal", plain, &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many login attempts, please try again later."},
			mailconn.ProblemLoginUnavailable, "mail.smtp.host", `did not take the login of "alice@example.test" just now (454 4.7.0 Too many login attempts`, false, false},
		{"encryption required", plain, &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"},
			mailconn.ProblemTLSMode, "mail.smtp.tls", "wants the connection encrypted before the login", false, true},
		{"no AUTH offered", nil, nil,
			mailconn.ProblemNoLogin, "mail.smtp.port", "offers no login ipsync can use", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ep := startLoginServer(t, tt.mechs, tt.err)
			m := newMailer(t, ep, alice, password)
			for _, err := range []error{m.Send(t.Context(), testMessage(bob)), m.Check(t.Context())} {
				var me *mailconn.Error
				if !errors.As(err, &me) || me.Problem != tt.problem || me.Setting != tt.setting {
					t.Fatalf("Send/Check() = %v, want a %s problem (%d) explained", err, tt.setting, tt.problem)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, tt.setting+": ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "dial") {
					t.Errorf("Send/Check() = %q, want it to start with %q and hold %q, and no word of dialling", msg, tt.setting+": ", tt.want)
				}
				if errors.Is(err, ErrAuthRefused) != tt.refused || errors.Is(err, ErrRejected) != tt.rejected {
					t.Errorf("Send/Check() = %v: ErrAuthRefused %v, ErrRejected %v; want %v, %v", err, errors.Is(err, ErrAuthRefused), errors.Is(err, ErrRejected), tt.refused, tt.rejected)
				}
			}

			key, err := codec.GenerateServerKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(Options{
				Name: "srv1", From: alice, To: []string{bob}, Mailer: m,
				Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
				Finder: staticFinder{},
				Store:  FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.PublishAddrs(t.Context(), Addrs{IPv4: netip.MustParseAddr("8.8.4.4")})
			if err == nil {
				t.Fatal("PublishAddrs() = nil, want the login failure")
			}
			seq := fmt.Sprintf("(message seq %d)", p.Status().LastSeq+1)
			if h := p.Status().Health(); !strings.HasSuffix(err.Error(), seq) || strings.HasPrefix(h.Err, "publish message") ||
				!strings.Contains(h.Err, tt.want) || strings.Count(h.Err, "check mail.password") > 1 {
				t.Errorf("PublishAddrs() = %q, Health().Err = %q; want %q leading, %q at the end of the error, and no repeated advice", err, h.Err, tt.want, seq)
			}
		})
	}
}
