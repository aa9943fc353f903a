package mailconn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"ipsync/loopmail"
	"ipsync/mailconn"
)

const (
	testUser  = "office@ipsync.test"
	testPass  = "pw-right"
	wrongPass = "pw-wrong-7"
)

// startMail starts a loopmail server with the given TLS modes; it stops
// when t ends.
func startMail(t *testing.T, smtpTLS, imapTLS loopmail.TLSMode) *loopmail.Server {
	t.Helper()
	m, err := loopmail.Start(t.Context(), loopmail.Options{
		Users:   map[string]string{testUser: testPass},
		SMTPTLS: smtpTLS,
		IMAPTLS: imapTLS,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// endpointCA is endpoint with roots.
func endpointCA(t *testing.T, addr string, mode mailconn.TLSMode, roots *x509.CertPool) mailconn.Endpoint {
	t.Helper()
	e := endpoint(t, addr, mode)
	e.RootCAs = roots
	return e
}

// listen starts a loopback listener that hands every connection to serve
// (nil: hold it open and say nothing); it stops when t ends.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if serve != nil {
					serve(c)
				}
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestExplainIMAPFailures drives each failure a new user meets when
// setting up IMAP against real loopback servers, and checks that Explain
// names the setting and the fix.
func TestExplainIMAPFailures(t *testing.T) {
	t.Parallel()
	// m: SMTP implicit TLS, IMAP STARTTLS; m2: IMAP implicit TLS.
	m := startMail(t, loopmail.TLSImplicit, loopmail.TLSStartTLS)
	m2 := startMail(t, loopmail.TLSNone, loopmail.TLSImplicit)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.CertPEM())
	roots.AppendCertsFromPEM(m2.CertPEM())
	silent := listen(t, nil)
	web := listen(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n") })

	tests := []struct {
		name    string
		ep      mailconn.Endpoint
		pass    string
		timeout time.Duration // 0: 10 s; below 0: -timeout with no cause of the caller's own (as check's)
		problem mailconn.Problem
		setting string
		want    []string // in the message
	}{
		{"wrong password", endpointCA(t, m.IMAPAddr(), mailconn.TLSStartTLS, roots), wrongPass, 0,
			mailconn.ProblemAuth, "mail.password", []string{`refused the login of "office@ipsync.test"`, "check mail.username and mail.password"}},
		{"imap on the smtp port", endpointCA(t, m.SMTPAddr(), mailconn.TLSImplicit, roots), testPass, 0,
			mailconn.ProblemWrongProtocol, "mail.imap.port", []string{"answers as an SMTP server, not IMAP", "set mail.imap.port to the IMAP port", "993"}},
		{"implicit tls on a starttls port", endpointCA(t, m.IMAPAddr(), mailconn.TLSImplicit, roots), testPass, 0,
			mailconn.ProblemTLSMode, "mail.imap.tls", []string{"speaks IMAP without TLS", "set mail.imap.tls: starttls"}},
		{"starttls on an implicit tls port", endpointCA(t, m2.IMAPAddr(), mailconn.TLSStartTLS, roots), testPass, 0,
			mailconn.ProblemTLSMode, "mail.imap.tls", []string{"closed the connection", "set mail.imap.tls: implicit"}},
		{"starttls on the smtp implicit tls port", endpointCA(t, m.SMTPAddr(), mailconn.TLSStartTLS, roots), testPass, 0,
			mailconn.ProblemTLSMode, "mail.imap.tls", []string{"expects TLS from the first byte", "set mail.imap.tls: implicit"}},
		{"unknown certificate authority", endpointCA(t, m.IMAPAddr(), mailconn.TLSStartTLS, nil), testPass, 0,
			mailconn.ProblemUnknownCA, "mail.ca_file", []string{"authority this computer does not trust", "set mail.ca_file"}},
		{"silent port, implicit", endpointCA(t, silent, mailconn.TLSImplicit, roots), testPass, 300 * time.Millisecond,
			mailconn.ProblemSilent, "mail.imap.port", []string{"accepted the connection but did not answer in time", "set mail.imap.tls: starttls"}},
		{"silent port, starttls", endpointCA(t, silent, mailconn.TLSStartTLS, roots), testPass, 300 * time.Millisecond,
			mailconn.ProblemSilent, "mail.imap.port", []string{"did not answer in time", "set mail.imap.tls: implicit"}},
		{"silent port, bare deadline", endpointCA(t, silent, mailconn.TLSStartTLS, roots), testPass, -300 * time.Millisecond,
			mailconn.ProblemSilent, "mail.imap.port", []string{"did not answer in time", "set mail.imap.tls: implicit"}},
		{"not a mail server", endpointCA(t, web, mailconn.TLSImplicit, roots), testPass, 0,
			mailconn.ProblemWrongProtocol, "mail.imap.port", []string{`does not answer with TLS (it sent "HTTP/"`, "check mail.imap.port"}},
		{"closed port", endpointCA(t, closedPort(t), mailconn.TLSImplicit, roots), testPass, 0,
			mailconn.ProblemRefused, "mail.imap.port", []string{"connection refused", "check mail.imap.host and mail.imap.port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			timeout, cause := tt.timeout, fmt.Errorf("test deadline: %w", mailconn.ErrTimeout)
			switch {
			case timeout == 0:
				timeout = 10 * time.Second
			case timeout < 0:
				timeout, cause = -timeout, nil // nil: context.DeadlineExceeded
			}
			ctx, cancel := context.WithTimeoutCause(t.Context(), timeout, cause)
			defer cancel()
			c, err := mailconn.LoginIMAP(ctx, tt.ep, mailconn.PasswordAuth(testUser, func(context.Context) (string, error) { return tt.pass, nil }), nil)
			if err == nil {
				c.Close()
				t.Fatalf("LoginIMAP(%s) succeeded", tt.name)
			}
			if !mailconn.IsNetwork(err) {
				t.Errorf("IsNetwork(%v) = false, want true", err)
			}
			checkExplained(t, err, mailconn.Target{Protocol: mailconn.IMAP, Endpoint: tt.ep, Username: testUser}, tt.problem, tt.setting, tt.want)
		})
	}
}

// checkExplained checks that Explain(err, target) is an *Error for problem
// and setting whose message starts with the setting and holds want, and
// still wraps err.
func checkExplained(t *testing.T, err error, target mailconn.Target, problem mailconn.Problem, setting string, want []string) {
	t.Helper()
	got := mailconn.Explain(err, target)
	var me *mailconn.Error
	if !errors.As(got, &me) {
		t.Fatalf("Explain(%v) = %v (%T), want a *mailconn.Error", err, got, got)
	}
	if me.Problem != problem || me.Setting != setting {
		t.Errorf("Explain(%v) = problem %d, setting %q; want %d, %q", err, me.Problem, me.Setting, problem, setting)
	}
	msg := got.Error()
	if !strings.HasPrefix(msg, setting+": ") {
		t.Errorf("Explain(%v) = %q, want it to start with %q", err, msg, setting+": ")
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("Explain(%v) = %q, want it to contain %q", err, msg, w)
		}
	}
	if !errors.Is(got, err) {
		t.Errorf("Explain(%v) does not wrap the original error", err)
	}
	if strings.Contains(msg, testPass) || strings.Contains(msg, wrongPass) {
		t.Errorf("Explain(%v) = %q shows the password", err, msg)
	}
}

func TestLoginIMAP(t *testing.T) {
	t.Parallel()
	m := startMail(t, loopmail.TLSNone, loopmail.TLSStartTLS)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.CertPEM())
	ep := endpointCA(t, m.IMAPAddr(), mailconn.TLSStartTLS, roots)
	c, err := mailconn.LoginIMAP(t.Context(), ep, mailconn.PasswordAuth(testUser, func(context.Context) (string, error) { return testPass, nil }), nil)
	if err != nil {
		t.Fatalf("LoginIMAP = %v", err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Errorf("select INBOX after LoginIMAP = %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("logout = %v", err)
	}
	c.Close()

	_, err = mailconn.LoginIMAP(t.Context(), ep, mailconn.PasswordAuth(testUser, func(context.Context) (string, error) { return wrongPass, nil }), nil)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("LoginIMAP(wrong password) = %v, want an *imap.Error [AUTHENTICATIONFAILED]", err)
	}
	if want := "imap server " + ep.Addr() + ": log in as " + testUser + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("LoginIMAP(wrong password) = %q, want it to start with %q", err, want)
	}
	if strings.Contains(err.Error(), wrongPass) {
		t.Errorf("LoginIMAP error %q shows the password", err)
	}
}

// TestExplainWording covers what cannot be produced on loopback: provider
// hints for refused passwords (by host name), SMTP replies, DNS, and
// errors Explain leaves alone.
func TestExplainWording(t *testing.T) {
	t.Parallel()
	authNO := &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Invalid credentials (Failure)"}
	imapAt := func(host string) mailconn.Target {
		return mailconn.Target{Protocol: mailconn.IMAP, Endpoint: mailconn.Endpoint{Host: host, Port: 993}, Username: "me@example.com"}
	}
	smtpAt := func(host string) mailconn.Target {
		return mailconn.Target{Protocol: mailconn.SMTP, Endpoint: mailconn.Endpoint{Host: host, Port: 587, TLS: mailconn.TLSStartTLS}, Username: "me@example.com"}
	}
	smtp535 := fmt.Errorf("send mail via x: SMTP AUTH failed: %w", &textproto.Error{Code: 535, Msg: "5.7.8 Username and Password not accepted"})
	tests := []struct {
		name    string
		err     error
		target  mailconn.Target
		problem mailconn.Problem
		setting string
		want    []string
		not     string
	}{
		{"gmail imap", fmt.Errorf("log in: %w", authNO), imapAt("imap.gmail.com"), mailconn.ProblemAuth, "mail.password",
			[]string{`"me@example.com"`, "mail.password", "Gmail needs an app password"}, ""},
		{"gmail smtp", smtp535, smtpAt("smtp.gmail.com"), mailconn.ProblemAuth, "mail.password",
			[]string{"SMTP server smtp.gmail.com refused", "535", "Gmail needs an app password"}, ""},
		{"yahoo", authNO, imapAt("imap.mail.yahoo.com"), mailconn.ProblemAuth, "mail.password", []string{"Yahoo needs an app password"}, ""},
		{"icloud", authNO, imapAt("imap.mail.me.com"), mailconn.ProblemAuth, "mail.password", []string{"iCloud needs an app password"}, ""},
		{"outlook", smtp535, smtpAt("smtp-mail.outlook.com"), mailconn.ProblemAuth, "mail.password", []string{"Outlook needs an app password"}, ""},
		{"office365", authNO, imapAt("outlook.office365.com"), mailconn.ProblemAuth, "mail.password", []string{"Outlook needs an app password"}, ""},
		{"own server", authNO, imapAt("mail.example.com"), mailconn.ProblemAuth, "mail.password", []string{"check mail.username and mail.password"}, "app password"},
		{"not gmail lookalike", authNO, imapAt("imap.notgmail.com"), mailconn.ProblemAuth, "mail.password", nil, "app password"},
		{"smtp 530", fmt.Errorf("x: %w", &textproto.Error{Code: 530, Msg: "5.7.0 Authentication required"}), smtpAt("mail.example.com"), mailconn.ProblemAuth, "mail.password", []string{"530"}, ""},
		{"host not in dns", fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "imap.exmaple.com", IsNotFound: true}}),
			imapAt("imap.exmaple.com"), mailconn.ProblemNoHost, "mail.imap.host", []string{`"imap.exmaple.com" is not in DNS`}, ""},
		{"mailbox missing", fmt.Errorf("examine mailbox Ipsync: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "Mailbox doesn't exist: Ipsync"}),
			mailconn.Target{Protocol: mailconn.IMAP, Endpoint: mailconn.Endpoint{Host: "imap.example.com", Port: 993}, Username: "me@example.com", Mailbox: "Ipsync"},
			mailconn.ProblemNoMailbox, "mail.imap.mailbox", []string{`mailbox "Ipsync" does not exist`, "set mail.imap.mailbox"}, ""},
		{"smtp silent", fmt.Errorf("send mail via x: smtp session %w after 30s", mailconn.ErrTimeout), smtpAt("mail.example.com"), mailconn.ProblemSilent, "mail.smtp.port",
			[]string{"did not answer in time", "set mail.smtp.tls: implicit (usually port 465)"}, ""},
		{"oauth2 sign-in needed", fmt.Errorf("imap sign-in as me@example.com: %w", fmt.Errorf("sign-in needed: the provider refused the refresh token in the OS keyring: %w", mailconn.ErrSignInNeeded)),
			mailconn.Target{Protocol: mailconn.IMAP, Endpoint: mailconn.Endpoint{Host: "outlook.office365.com", Port: 993}, Username: "me@example.com", OAuth2: true},
			mailconn.ProblemSignIn, "mail.oauth2", []string{`sign-in of "me@example.com"`, "run ipsync login"}, "mail.password"},
		{"oauth2 token refused imap", fmt.Errorf("imap authenticate XOAUTH2 as me@example.com: %w: %w", mailconn.ErrAuthRefused, authNO),
			mailconn.Target{Protocol: mailconn.IMAP, Endpoint: mailconn.Endpoint{Host: "outlook.office365.com", Port: 993}, Username: "me@example.com", OAuth2: true},
			mailconn.ProblemAuth, "mail.oauth2", []string{"refused the access token", "mail.oauth2.scopes", "IMAP is enabled"}, "app password"},
		{"oauth2 token refused smtp", smtp535, mailconn.Target{Protocol: mailconn.SMTP, Endpoint: mailconn.Endpoint{Host: "smtp.office365.com", Port: 587}, Username: "me@example.com", OAuth2: true},
			mailconn.ProblemAuth, "mail.oauth2", []string{"SMTP server smtp.office365.com refused the access token", "SMTP is enabled"}, "app password"},
		{"password refused through Auth", fmt.Errorf("imap login as me@example.com: %w: %w", mailconn.ErrAuthRefused, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Login failed"}),
			imapAt("mail.example.com"), mailconn.ProblemAuth, "mail.password", []string{"Login failed", "check mail.username and mail.password"}, ""},
		// An SMTP AUTH failure is worded as a login, never as a failure to
		// connect ("dial failed"), and a temporary refusal is not called a
		// wrong password.
		{"smtp 454 at login", mailconn.AtLogin(fmt.Errorf("send mail via x: SMTP AUTH failed: %w", &textproto.Error{Code: 454, Msg: "4.7.0 Too many login attempts, please try again later."})),
			smtpAt("smtp.gmail.com"), mailconn.ProblemLoginUnavailable, "mail.smtp.host",
			[]string{`SMTP server smtp.gmail.com did not take the login of "me@example.com" just now (454 4.7.0 Too many login attempts`, "not a verdict on the password", "tries again later"}, "dial"},
		{"imap unavailable at login", mailconn.AtLogin(&imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Temporary authentication failure"}),
			imapAt("imap.example.com"), mailconn.ProblemLoginUnavailable, "mail.imap.host", []string{"did not take the login", "Temporary authentication failure"}, "check mail.password"},
		{"smtp 538 at login", mailconn.AtLogin(fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 538, Msg: "5.7.11 Encryption required for requested authentication mechanism"})),
			smtpAt("mail.example.com"), mailconn.ProblemTLSMode, "mail.smtp.tls", []string{"wants the connection encrypted before the login (538 5.7.11", "set mail.smtp.tls: starttls (usually port 587) or implicit (usually port 465)"}, "dial"},
		{"smtp without AUTH", mailconn.AtLogin(fmt.Errorf("%w: %w", mailconn.ErrNoLogin, errors.New("server does not support SMTP AUTH"))),
			mailconn.Target{Protocol: mailconn.SMTP, Endpoint: mailconn.Endpoint{Host: "mail.example.com", Port: 25, TLS: mailconn.TLSStartTLS}, Username: "me@example.com"},
			mailconn.ProblemNoLogin, "mail.smtp.port", []string{"mail.example.com:25 offers no login ipsync can use", "set mail.smtp.port to the SMTP submission port (usually 465 with tls: implicit, 587 with tls: starttls)"}, "dial"},
		{"smtp 504 at login", mailconn.AtLogin(fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 504, Msg: "5.5.4 Unrecognized authentication type"})),
			smtpAt("mail.example.com"), mailconn.ProblemNoLogin, "mail.smtp.port", []string{"offers no login ipsync can use"}, ""},
		{"unknown ca with ca_file", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), mailconn.Target{Protocol: mailconn.SMTP, Endpoint: mailconn.Endpoint{Host: "mail.example.com", Port: 465}, CAFile: true},
			mailconn.ProblemUnknownCA, "mail.ca_file", []string{"mail.ca_file is set, but the certificate in it did not sign this one"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkExplained(t, tt.err, tt.target, tt.problem, tt.setting, tt.want)
			if msg := mailconn.Explain(tt.err, tt.target).Error(); tt.not != "" && strings.Contains(msg, tt.not) {
				t.Errorf("Explain(%v) = %q, want nothing about %q", tt.err, msg, tt.not)
			}
		})
	}

	// Errors it does not recognise come back as they are.
	for _, err := range []error{nil, errors.New("disk full"), fmt.Errorf("select: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Text: "nope"})} {
		if got := mailconn.Explain(err, imapAt("imap.example.com")); got != err {
			t.Errorf("Explain(%v) = %v, want it unchanged", err, got)
		}
	}
	// A 4xx reply outside the login (STARTTLS, MAIL FROM) is no login problem.
	for _, err := range []error{
		fmt.Errorf("starttls: %w", &textproto.Error{Code: 454, Msg: "4.7.0 TLS not available due to local problem"}),
		fmt.Errorf("mail from: %w", &textproto.Error{Code: 451, Msg: "4.3.0 Try again later"}),
	} {
		if got := mailconn.Explain(err, smtpAt("mail.example.com")); got != err {
			t.Errorf("Explain(%v) = %v, want it unchanged", err, got)
		}
	}
	// An explained error is not explained twice.
	once := mailconn.Explain(authNO, imapAt("imap.gmail.com"))
	if twice := mailconn.Explain(fmt.Errorf("fetch: %w", once), imapAt("imap.gmail.com")); twice.Error() != "fetch: "+once.Error() {
		t.Errorf("Explain(explained) = %q, want %q", twice, "fetch: "+once.Error())
	}
}

func TestIsNetwork(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{errors.New("generate key: read random bytes: broken"), false},
		{fmt.Errorf("save state: %w", &net.AddrError{Err: "x"}), true},
		{fmt.Errorf("x: %w", &textproto.Error{Code: 451}), true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("x: %w", mailconn.ErrTimeout), true},
		{fmt.Errorf("x: %w", &imap.Error{Type: imap.StatusResponseTypeNo}), true},
	}
	for _, tt := range tests {
		if got := mailconn.IsNetwork(tt.err); got != tt.want {
			t.Errorf("IsNetwork(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
