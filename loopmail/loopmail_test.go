package loopmail

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	alice    = "alice@example.test"
	alicePW  = "alice-secret"
	bob      = "bob@example.test"
	bobPW    = "bob-secret"
	testWait = 10 * time.Second
)

func testUsers() map[string]string { return map[string]string{alice: alicePW, bob: bobPW} }

func start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Users == nil {
		opts.Users = testUsers()
	}
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start() error = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return s
}

func clientTLS(t testing.TB, s *Server) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertPEM()) {
		t.Fatalf("CertPEM() = %q, want a PEM certificate", s.CertPEM())
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if err := conn.SetDeadline(time.Now().Add(testWait)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	return conn
}

// imapDial connects an imapclient in the server's IMAP TLS mode. It does not log in.
func imapDial(t testing.TB, s *Server, mode TLSMode, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	conn := dial(t, s.IMAPAddr())
	var c *imapclient.Client
	switch mode {
	case TLSImplicit:
		c = imapclient.New(tls.Client(conn, clientTLS(t, s)), opts)
	case TLSStartTLS:
		opts.TLSConfig = clientTLS(t, s)
		var err error
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			t.Fatalf("IMAP STARTTLS: %v", err)
		}
	default:
		c = imapclient.New(conn, opts)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func imapLogin(t testing.TB, s *Server, mode TLSMode, user, pw string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := imapDial(t, s, mode, opts)
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatalf("IMAP Login(%q) = %v, want nil", user, err)
	}
	return c
}

// smtpDial connects a go-smtp client in the server's SMTP TLS mode.
func smtpDial(t testing.TB, s *Server, mode TLSMode) *smtp.Client {
	t.Helper()
	conn := dial(t, s.SMTPAddr())
	var c *smtp.Client
	switch mode {
	case TLSImplicit:
		c = smtp.NewClient(tls.Client(conn, clientTLS(t, s)))
	case TLSStartTLS:
		var err error
		if c, err = smtp.NewClientStartTLS(conn, clientTLS(t, s)); err != nil {
			t.Fatalf("SMTP STARTTLS: %v", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testMessage(subject string) []byte {
	return []byte("From: server@example.test\r\nTo: alice@example.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.test>\r\n\r\nbody of " + subject + "\r\n.leading dot\r\n")
}

func fetchAll(t testing.TB, c *imapclient.Client) [][]byte {
	t.Helper()
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	if data.NumMessages == 0 {
		return nil
	}
	section := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.FindBodySection(section))
	}
	return out
}

func TestSendAndFetch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		smtpTLS  TLSMode
		imapTLS  TLSMode
		mech     string
		wantCert bool
	}{
		{name: "none", mech: sasl.Plain},
		{name: "implicit", smtpTLS: TLSImplicit, imapTLS: TLSImplicit, mech: sasl.Plain, wantCert: true},
		{name: "starttls", smtpTLS: TLSStartTLS, imapTLS: TLSStartTLS, mech: sasl.Plain, wantCert: true},
		{name: "mixed", smtpTLS: TLSImplicit, imapTLS: TLSStartTLS, mech: sasl.Plain, wantCert: true},
		{name: "login-mech", smtpTLS: TLSStartTLS, imapTLS: TLSNone, mech: sasl.Login, wantCert: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Options{SMTPTLS: tt.smtpTLS, IMAPTLS: tt.imapTLS})
			if got := s.CertPEM() != nil; got != tt.wantCert {
				t.Fatalf("CertPEM() != nil = %v, want %v", got, tt.wantCert)
			}

			sc := smtpDial(t, s, tt.smtpTLS)
			if !sc.SupportsAuth(tt.mech) {
				t.Fatalf("SupportsAuth(%s) = false, want true", tt.mech)
			}
			var auth sasl.Client = sasl.NewPlainClient("", bob, bobPW)
			if tt.mech == sasl.Login {
				auth = sasl.NewLoginClient(bob, bobPW)
			}
			if err := sc.Auth(auth); err != nil {
				t.Fatalf("SMTP Auth = %v, want nil", err)
			}
			msg := testMessage("hello " + tt.name)
			if err := sc.SendMail(bob, []string{alice, bob}, bytes.NewReader(msg)); err != nil {
				t.Fatalf("SendMail = %v, want nil", err)
			}
			if err := sc.Quit(); err != nil {
				t.Fatalf("SMTP Quit = %v, want nil", err)
			}

			c := imapLogin(t, s, tt.imapTLS, alice, alicePW, nil)
			got := fetchAll(t, c)
			if len(got) != 1 || !bytes.Equal(got[0], msg) {
				t.Fatalf("IMAP FETCH of %s = %q, want [%q]", alice, got, msg)
			}
			for _, user := range []string{alice, bob} {
				raw, err := s.Messages(user)
				if err != nil || len(raw) != 1 || !bytes.Equal(raw[0], msg) {
					t.Errorf("Messages(%s) = %q, %v, want [%q], nil", user, raw, err, msg)
				}
			}
			st := s.Stats()
			if st.SMTPMessages != 1 || st.SMTPRecipients != 2 {
				t.Errorf("Stats() SMTPMessages, SMTPRecipients = %d, %d, want 1, 2", st.SMTPMessages, st.SMTPRecipients)
			}
		})
	}
}

func TestSMTPRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mode     TLSMode
		run      func(c *smtp.Client) error
		wantCode int
	}{
		{
			name: "mail-without-auth",
			run: func(c *smtp.Client) error {
				return c.Mail(bob, nil)
			},
			wantCode: 530,
		},
		{
			name: "wrong-password",
			run: func(c *smtp.Client) error {
				return c.Auth(sasl.NewPlainClient("", bob, "wrong"))
			},
			wantCode: 535,
		},
		{
			name: "unknown-recipient",
			run: func(c *smtp.Client) error {
				if err := c.Auth(sasl.NewPlainClient("", bob, bobPW)); err != nil {
					return err
				}
				if err := c.Mail(bob, nil); err != nil {
					return err
				}
				return c.Rcpt("nobody@example.test", nil)
			},
			wantCode: 550,
		},
		{
			name: "starttls-required",
			mode: TLSStartTLS,
			run: func(c *smtp.Client) error {
				if err := c.Hello("localhost"); err != nil {
					return err
				}
				if ok, _ := c.Extension("STARTTLS"); !ok {
					return errors.New("STARTTLS not offered")
				}
				return c.Auth(sasl.NewPlainClient("", bob, bobPW))
			},
			wantCode: 523,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Options{SMTPTLS: tt.mode})
			c := smtp.NewClient(dial(t, s.SMTPAddr())) // no TLS, even in starttls mode
			defer c.Close()
			err := tt.run(c)
			var smtpErr *smtp.SMTPError
			if !errors.As(err, &smtpErr) || smtpErr.Code != tt.wantCode {
				t.Fatalf("%s: error = %v, want SMTP code %d", tt.name, err, tt.wantCode)
			}
			if st := s.Stats(); st.SMTPMessages != 0 {
				t.Errorf("Stats().SMTPMessages = %d, want 0", st.SMTPMessages)
			}
		})
	}
}

func TestIMAPStartTLSRequired(t *testing.T) {
	t.Parallel()
	s := start(t, Options{IMAPTLS: TLSStartTLS})
	c := imapclient.New(dial(t, s.IMAPAddr()), nil) // no STARTTLS
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("WaitGreeting() = %v", err)
	}
	caps := c.Caps()
	if !caps.Has(imap.CapStartTLS) || !caps.Has(imap.CapLoginDisabled) || caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("Caps() before STARTTLS = %v, want STARTTLS and LOGINDISABLED without AUTH=PLAIN", caps)
	}
	var imapErr *imap.Error
	err := c.Login(alice, alicePW).Wait()
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodePrivacyRequired {
		t.Fatalf("Login before STARTTLS = %v, want NO [PRIVACYREQUIRED]", err)
	}

	tc := imapDial(t, s, TLSStartTLS, nil)
	if caps := tc.Caps(); caps.Has(imap.CapStartTLS) || caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.Cap("AUTH=PLAIN")) {
		t.Errorf("Caps() after STARTTLS = %v, want AUTH=PLAIN without STARTTLS, LOGINDISABLED", caps)
	}
	if err := tc.Login(alice, alicePW).Wait(); err != nil {
		t.Fatalf("Login after STARTTLS = %v, want nil", err)
	}
}

// idleClient logs in, selects INBOX and starts IDLE; EXISTS counts arrive on
// the returned channel.
func idleClient(t *testing.T, s *Server) (*imapclient.Client, *imapclient.IdleCommand, <-chan uint32) {
	t.Helper()
	exists := make(chan uint32, 16)
	opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- *d.NumMessages:
				default:
				}
			}
		},
	}}
	c := imapLogin(t, s, TLSNone, alice, alicePW, opts)
	if !c.Caps().Has(imap.CapIdle) {
		t.Fatalf("Caps() = %v, want IDLE", c.Caps())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("Idle() = %v", err)
	}
	return c, idle, exists
}

func TestIdleGetsExists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		deliver func(t *testing.T, s *Server)
	}{
		{name: "deliver", deliver: func(t *testing.T, s *Server) {
			if err := s.Deliver(alice, testMessage("pushed")); err != nil {
				t.Fatalf("Deliver() = %v", err)
			}
		}},
		{name: "smtp", deliver: func(t *testing.T, s *Server) {
			c := smtpDial(t, s, TLSNone)
			if err := c.Auth(sasl.NewPlainClient("", bob, bobPW)); err != nil {
				t.Fatalf("SMTP Auth: %v", err)
			}
			if err := c.SendMail(bob, []string{alice}, bytes.NewReader(testMessage("pushed"))); err != nil {
				t.Fatalf("SendMail: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Options{})
			_, idle, exists := idleClient(t, s)
			tt.deliver(t, s)
			select {
			case n := <-exists:
				if n != 1 {
					t.Errorf("EXISTS = %d, want 1", n)
				}
			case <-time.After(testWait):
				t.Fatal("no EXISTS during IDLE after delivery")
			}
			if err := idle.Close(); err != nil {
				t.Fatalf("IdleCommand.Close() = %v", err)
			}
			if err := idle.Wait(); err != nil {
				t.Fatalf("IdleCommand.Wait() = %v, want nil", err)
			}
		})
	}
}

func TestNoIDLE(t *testing.T) {
	t.Parallel()
	s := start(t, Options{NoIDLE: true, NoESEARCH: true})
	c := imapLogin(t, s, TLSNone, alice, alicePW, nil)
	if _, err := c.Capability().Wait(); err != nil {
		t.Fatalf("CAPABILITY: %v", err)
	}
	caps := c.Caps()
	if caps.Has(imap.CapIdle) || caps.Has(imap.CapESearch) || !caps.Has(imap.CapUIDPlus) {
		t.Errorf("Caps() = %v, want no IDLE, no ESEARCH, with UIDPLUS", caps)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	idle, err := c.Idle()
	if err == nil {
		idle.Close()
		err = idle.Wait()
	}
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeBad {
		t.Fatalf("IDLE with NoIDLE = %v, want a BAD response", err)
	}
	// The connection is still usable.
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after refused IDLE = %v", err)
	}
}

func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		style LimitStyle
	}{
		{name: "default-login-no"},
		{name: "login-no", style: LimitLoginNO},
		{name: "greeting-bye", style: LimitGreetingBYE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Options{Users: map[string]string{alice: alicePW}, MaxIMAPConnsPerUser: 3, LimitStyle: tt.style})
			for i := range 3 {
				c := imapLogin(t, s, TLSNone, alice, alicePW, nil)
				if err := c.Noop().Wait(); err != nil {
					t.Fatalf("connection %d NOOP = %v", i+1, err)
				}
			}
			c := imapDial(t, s, TLSNone, nil)
			var err error
			if tt.style == LimitGreetingBYE {
				err = c.WaitGreeting()
			} else {
				err = c.Login(alice, alicePW).Wait()
			}
			var imapErr *imap.Error
			if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeLimit || imapErr.Text != "Too many simultaneous connections" {
				t.Fatalf("4th connection = %v, want [LIMIT] Too many simultaneous connections", err)
			}
			wantType := imap.StatusResponseTypeNo
			if tt.style == LimitGreetingBYE {
				wantType = imap.StatusResponseTypeBye
			}
			if imapErr.Type != wantType {
				t.Errorf("4th connection refusal type = %s, want %s", imapErr.Type, wantType)
			}
			st := s.Stats()
			if st.IMAPLimitRefusals != 1 || st.IMAPConnsMax != 4 || st.IMAPLoggedInMax != 3 {
				t.Errorf("Stats() IMAPLimitRefusals, IMAPConnsMax, IMAPLoggedInMax = %d, %d, %d, want 1, 4, 3", st.IMAPLimitRefusals, st.IMAPConnsMax, st.IMAPLoggedInMax)

			}
			// Messages uses a private connection, outside the cap.
			if _, err := s.Messages(alice); err != nil {
				t.Errorf("Messages() at the cap = %v, want nil", err)
			}
		})
	}
}

func TestDropIMAPConnections(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	c, idle, _ := idleClient(t, s)
	s.DropIMAPConnections()
	select {
	case <-c.Closed():
	case <-time.After(testWait):
		t.Fatal("client not closed after DropIMAPConnections")
	}
	idle.Close()
	if err := idle.Wait(); err == nil {
		t.Error("IdleCommand.Wait() after drop = nil, want an error")
	}
	// The server still accepts connections.
	c2 := imapLogin(t, s, TLSNone, alice, alicePW, nil)
	if err := c2.Noop().Wait(); err != nil {
		t.Fatalf("NOOP after reconnect = %v", err)
	}
}

func TestSetSMTPDown(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	open := smtpDial(t, s, TLSNone)
	if err := open.Hello("localhost"); err != nil {
		t.Fatalf("EHLO before outage = %v", err)
	}

	s.SetSMTPDown(true)
	if err := open.Noop(); err == nil {
		t.Error("NOOP on a connection open when SMTP went down = nil, want an error")
	}
	c := smtp.NewClient(dial(t, s.SMTPAddr()))
	if err := c.Hello("localhost"); err == nil {
		t.Error("EHLO while SMTP is down = nil, want an error")
	}
	c.Close()

	s.SetSMTPDown(false)
	up := smtpDial(t, s, TLSNone)
	if err := up.Auth(sasl.NewPlainClient("", bob, bobPW)); err != nil {
		t.Fatalf("Auth after outage = %v", err)
	}
	if err := up.SendMail(bob, []string{alice}, bytes.NewReader(testMessage("after outage"))); err != nil {
		t.Fatalf("SendMail after outage = %v", err)
	}
	if got := s.Stats().SMTPMessages; got != 1 {
		t.Errorf("Stats().SMTPMessages = %d, want 1", got)
	}
}

// rawIMAP speaks IMAP by hand so that commands and bytes are exact.
type rawIMAP struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	written int64
}

func (c *rawIMAP) send(s string) {
	c.t.Helper()
	n, err := io.WriteString(c.conn, s)
	c.written += int64(n)
	if err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// until reads lines until one starts with prefix and returns it.
func (c *rawIMAP) until(prefix string) string {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading until %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
}

func TestStatsCounting(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	conn := dial(t, s.IMAPAddr())
	defer conn.Close()
	c := &rawIMAP{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.until("* OK")
	c.send("a1 LOGIN " + alice + " " + alicePW + "\r\n")
	c.until("a1 OK")
	c.send("a2 SELECT INBOX\r\n")
	c.until("a2 OK")
	c.send("a3 IDLE\r\n")
	c.until("+ ")
	c.send("DONE\r\n")
	c.until("a3 OK")
	lit := "Subject: x\r\n\r\nb1 NOOP\r\nb2 NOOP\r\n" // has lines like commands, but is a literal
	c.send(fmt.Sprintf("a4 APPEND INBOX {%d}\r\n", len(lit)))
	c.until("+ ")
	c.send(lit + "\r\n")
	if line := c.until("a4 "); !strings.HasPrefix(line, "a4 OK") {
		t.Fatalf("APPEND = %q, want OK", line)
	}
	c.send("a5 LOGOUT\r\n")
	c.until("a5 OK")
	rest, err := io.Copy(io.Discard, c.r) // until the server closes
	if err != nil {
		t.Fatalf("read to EOF: %v", err)
	}
	_ = rest

	st := s.Stats()
	if st.IMAPCommands != 5 {
		t.Errorf("Stats().IMAPCommands = %d, want 5", st.IMAPCommands)
	}
	if st.IMAPBytesIn != c.written {
		t.Errorf("Stats().IMAPBytesIn = %d, want %d", st.IMAPBytesIn, c.written)
	}
	if st.IMAPBytesOut == 0 {
		t.Errorf("Stats().IMAPBytesOut = 0, want > 0")
	}
	msgs, err := s.Messages(alice)
	if err != nil || len(msgs) != 1 || string(msgs[0]) != lit {
		t.Errorf("Messages() = %q, %v, want [%q], nil", msgs, err, lit)
	}
	if got := s.Stats().IMAPCommands; got != 5 {
		t.Errorf("Stats().IMAPCommands after Messages() = %d, want 5 (private connection not counted)", got)
	}
	s.ResetStats()
	if st := s.Stats(); st.IMAPCommands != 0 || st.IMAPBytesIn != 0 || st.IMAPBytesOut != 0 {
		t.Errorf("Stats() after ResetStats() = %+v, want zero counters", st)
	}
}

func TestBytesOutMatchesClient(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	if err := s.Deliver(alice, testMessage("counted")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	conn := dial(t, s.IMAPAddr())
	defer conn.Close()
	var read countingReader
	read.r = conn
	c := &rawIMAP{t: t, conn: conn, r: bufio.NewReader(&read)}
	c.send("a1 LOGIN " + alice + " " + alicePW + "\r\na2 SELECT INBOX\r\na3 FETCH 1 BODY.PEEK[]\r\na4 LOGOUT\r\n")
	if _, err := io.Copy(io.Discard, c.r); err != nil {
		t.Fatalf("read to EOF: %v", err)
	}
	st := s.Stats()
	if st.IMAPCommands != 4 || st.IMAPBytesIn != c.written || st.IMAPBytesOut != read.n {
		t.Errorf("Stats() commands, in, out = %d, %d, %d, want 4, %d, %d", st.IMAPCommands, st.IMAPBytesIn, st.IMAPBytesOut, c.written, read.n)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestDeliverAndMessages(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := start(t, Options{Now: func() time.Time { return now }})
	const n = 10000
	for i := range n {
		if err := s.Deliver(alice, testMessage(fmt.Sprint("seed ", i))); err != nil {
			t.Fatalf("Deliver(%d) = %v", i, err)
		}
	}
	msgs, err := s.Messages(alice)
	if err != nil || len(msgs) != n {
		t.Fatalf("Messages() = %d messages, %v, want %d, nil", len(msgs), err, n)
	}
	if want := testMessage("seed 0"); !bytes.Equal(msgs[0], want) {
		t.Errorf("Messages()[0] = %q, want %q (oldest first)", msgs[0], want)
	}
	if want := testMessage(fmt.Sprint("seed ", n-1)); !bytes.Equal(msgs[n-1], want) {
		t.Errorf("Messages()[last] = %q, want %q", msgs[n-1], want)
	}
	if msgs, err := s.Messages(bob); err != nil || len(msgs) != 0 {
		t.Errorf("Messages(bob) = %d messages, %v, want 0, nil", len(msgs), err)
	}

	c := imapLogin(t, s, TLSNone, alice, alicePW, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	got, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{InternalDate: true}).Collect()
	if err != nil || len(got) != 1 || !got[0].InternalDate.Equal(now) {
		t.Errorf("FETCH INTERNALDATE = %v, %v, want %v (Options.Now)", got, err, now)
	}
}

func TestUnknownUserAndOptions(t *testing.T) {
	t.Parallel()
	s := start(t, Options{})
	if err := s.Deliver("nobody@example.test", []byte("x")); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Deliver(nobody) = %v, want ErrUnknownUser", err)
	}
	if _, err := s.Messages("nobody@example.test"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Messages(nobody) = %v, want ErrUnknownUser", err)
	}
	if err := s.Deliver(strings.ToUpper(alice), []byte("Subject: x\r\n\r\ny\r\n")); err != nil {
		t.Errorf("Deliver(upper-case login) = %v, want nil", err)
	}
	if s.CertPEM() != nil {
		t.Errorf("CertPEM() without TLS = %q, want nil", s.CertPEM())
	}

	bad := []struct {
		name string
		opts Options
	}{
		{name: "no-users", opts: Options{}},
		{name: "bad-tls", opts: Options{Users: testUsers(), SMTPTLS: "ssl"}},
		{name: "bad-style", opts: Options{Users: testUsers(), LimitStyle: "drop"}},
		{name: "negative-cap", opts: Options{Users: testUsers(), MaxIMAPConnsPerUser: -1}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if s, err := Start(t.Context(), tt.opts); err == nil {
				s.Close()
				t.Errorf("Start(%+v) = nil error, want an error", tt.opts)
			}
		})
	}
}

func TestStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, Options{Users: testUsers()})
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	c := imapclient.New(dial(t, s.IMAPAddr()), nil)
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("WaitGreeting() = %v", err)
	}
	cancel()
	select {
	case <-c.Closed():
	case <-time.After(testWait):
		t.Fatal("IMAP client still connected after the context ended")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() after the context ended = %v, want nil", err)
	}
	if _, err := net.DialTimeout("tcp", s.SMTPAddr(), testWait); err == nil {
		t.Errorf("SMTP still accepts connections after Close")
	}
}

func BenchmarkDeliver(b *testing.B) {
	s := start(b, Options{})
	msg := testMessage("benchmark")
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Deliver(alice, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliver10k seeds a fresh mailbox with 10,000 messages per iteration.
func BenchmarkDeliver10k(b *testing.B) {
	msg := testMessage("benchmark")
	b.ReportAllocs()
	for b.Loop() {
		s, err := Start(b.Context(), Options{Users: testUsers()})
		if err != nil {
			b.Fatal(err)
		}
		for range 10000 {
			if err := s.Deliver(alice, msg); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
	}
}
