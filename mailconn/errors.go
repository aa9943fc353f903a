package mailconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"syscall"

	"github.com/emersion/go-imap/v2"
)

// Protocol is the mail protocol of a connection, as named in the config
// (mail.imap, mail.smtp).
type Protocol string

// The protocols.
const (
	IMAP Protocol = "imap"
	SMTP Protocol = "smtp"
)

func (p Protocol) upper() string { return strings.ToUpper(string(p)) }

// other is the protocol a mix-up of ports would have reached.
func (p Protocol) other() Protocol {
	if p == IMAP {
		return SMTP
	}
	return IMAP
}

// ErrTimeout is the cause of a mail operation that ran out of its time: the
// server accepted the connection and then stayed silent. Callers that bound
// a mail operation with context.WithTimeoutCause wrap it in their cause, so
// that Explain can tell a silent server from other failures.
var ErrTimeout = errors.New("timed out")

// Problem is a kind of mail connection failure that the person who set
// ipsync up can act on.
type Problem int

// The problems Explain recognises.
const (
	ProblemOther         Problem = iota // not recognised
	ProblemNoHost                       // the host name is not in DNS
	ProblemRefused                      // nothing listens on host:port
	ProblemUnreachable                  // no route, or the connection attempt timed out
	ProblemWrongProtocol                // the port speaks the other mail protocol
	ProblemTLSMode                      // the TLS mode does not fit what the port speaks
	ProblemSilent                       // connected, then no answer in time
	ProblemUnknownCA                    // the certificate's issuer is not trusted
	ProblemCertificate                  // the certificate is for another name, or expired
	ProblemAuth                         // the server refused the user name or password
	ProblemNoMailbox                    // the IMAP mailbox does not exist
	ProblemSignIn                       // the OAuth2 sign-in must be renewed (ipsync login)
)

// More problems Explain recognises.
const (
	ProblemLoginUnavailable Problem = ProblemSignIn + 1 + iota // the server did not take a login just now (a temporary refusal)
	ProblemNoLogin                                             // the server offers no login method ipsync can use
)

// ErrNoLogin marks a server that offers no login method ipsync can use (no
// SMTP AUTH in its EHLO reply, or only mechanisms ipsync does not speak).
// SMTP callers wrap the library's error in it so that Explain can tell.
var ErrNoLogin = errors.New("the server offers no login method ipsync can use")

// AtLogin marks err as a failure of the login step of a connection (SMTP
// AUTH; LoginIMAP marks its own), so that Explain words a refusal there as
// a refused or unavailable login and never as a failure to connect. Its
// message is err's. AtLogin(nil) is nil.
func AtLogin(err error) error {
	if err == nil {
		return nil
	}
	return &stageError{stageLogin, err}
}

// Error is a mail connection failure explained for the person who set
// ipsync up: what happened, which setting to look at and what to do. Its
// message is for people; Err keeps the failure as the libraries reported
// it (for logs and errors.Is/As).
type Error struct {
	Problem Problem
	// Setting is the config key to look at first, e.g. "mail.imap.tls".
	Setting string
	// Msg is the whole message: it starts with Setting.
	Msg string
	// Err is the underlying failure.
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Target describes the connection a failure happened on, for Explain's
// wording.
type Target struct {
	Protocol Protocol
	Endpoint Endpoint
	// Username is the login name (mail.username); it is named in messages.
	Username string
	// Mailbox is the IMAP mailbox (mail.imap.mailbox), if one was opened.
	Mailbox string
	// CAFile says whether mail.ca_file was set.
	CAFile bool
	// OAuth2 says the login used an OAuth2 access token (mail.auth:
	// oauth2), not mail.password.
	OAuth2 bool
}

// stage is a step of setting up an IMAP connection; a failure in it is
// wrapped in a *stageError so that Explain knows where it happened.
type stage string

const (
	stageTLS      stage = "tls handshake"       // implicit TLS
	stageStartTLS stage = "starttls (required)" // STARTTLS command and handshake
	stageGreeting stage = "greeting"            // waiting for the server's greeting
	stageLogin    stage = "login"               // LOGIN
)

type stageError struct {
	stage stage
	err   error
}

func (e *stageError) Error() string {
	if e.stage == stageGreeting || e.stage == stageLogin {
		// Their errors say what failed already.
		return e.err.Error()
	}
	return string(e.stage) + ": " + e.err.Error()
}

func (e *stageError) Unwrap() error { return e.err }

// stageOf returns the set-up step err happened in, or "".
func stageOf(err error) stage {
	var se *stageError
	if errors.As(err, &se) {
		return se.stage
	}
	return ""
}

// Explain turns err, a failure of the connection t, into an *Error whose
// message names the setting to look at and the fix, when it recognises the
// failure: a host not in DNS, a closed port, the other protocol on the
// port, a TLS mode that does not fit the port, a silent server, an
// untrusted or wrong certificate, a refused login, a login the server did
// not take for now or for want of encryption (SMTP AUTH 454, 538), a server
// that offers no login (ErrNoLogin) or a missing mailbox. A failure of the
// login step (marked by AtLogin or LoginIMAP) is never worded as a failure
// to connect.
// Anything else (and nil) is returned as it is. An *Error is returned as it
// is. Explain does no I/O.
func Explain(err error, t Target) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	x := explainer{t: t, addr: t.Endpoint.Addr(), key: "mail." + string(t.Protocol), mode: t.Endpoint.Mode()}
	if p, setting, msg := x.explain(err); p != ProblemOther {
		return &Error{Problem: p, Setting: setting, Msg: setting + ": " + msg, Err: err}
	}
	return err
}

type explainer struct {
	t    Target
	addr string
	key  string // "mail.imap" or "mail.smtp"
	mode TLSMode
}

func (x explainer) explain(err error) (Problem, string, string) {
	proto, other := x.t.Protocol.upper(), x.t.Protocol.other().upper()
	var (
		dnsErr   *net.DNSError
		opErr    *net.OpError
		hdrErr   tls.RecordHeaderError
		caErr    x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		certErr  x509.CertificateInvalidError
		imapErr  *imap.Error
		tpErr    *textproto.Error
		protoErr textproto.ProtocolError
	)
	st := stageOf(err)
	switch {
	case errors.Is(err, ErrSignInNeeded):
		return ProblemSignIn, "mail.oauth2", fmt.Sprintf("the mail provider no longer accepts the sign-in of %q (the refresh token was revoked or has expired, or none is stored): run ipsync login (with the same --config) and sign in again",
			x.t.Username)
	case x.t.OAuth2 && (errors.Is(err, ErrAuthRefused) || errors.As(err, &imapErr) && isAuthCode(imapErr.Code) ||
		errors.As(err, &tpErr) && (tpErr.Code == 535 || tpErr.Code == 534 || tpErr.Code == 530)):
		return ProblemAuth, "mail.oauth2", fmt.Sprintf("the %s server %s refused the access token of %q even after a refresh: check that the app registration grants the mail scopes (mail.oauth2.scopes), that %s is enabled for the mailbox, and that mail.username is the account you signed in with",
			proto, x.t.Endpoint.Host, x.t.Username, proto)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return ProblemNoHost, x.key + ".host", fmt.Sprintf("the %s server name %q is not in DNS: check %s.host (a typo?) and this computer's network",
			proto, x.t.Endpoint.Host, x.key)
	case errors.As(err, &opErr) && opErr.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED):
		return ProblemRefused, x.key + ".port", fmt.Sprintf("nothing accepts connections on %s (connection refused): check %s.host and %s.port (%s)",
			x.addr, x.key, x.key, x.usualPorts())
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ProblemUnreachable, x.key + ".host", fmt.Sprintf("cannot reach %s (%v): check %s.host and %s.port, and that the network or a firewall lets this computer reach the %s server",
			x.addr, opErr.Err, x.key, x.key, proto)

	case errors.As(err, &hdrErr):
		return x.plainText(hdrErr.RecordHeader[:])
	case x.t.Protocol == IMAP && strings.Contains(err.Error(), `unknown tag "220"`):
		// imapclient read an SMTP greeting ("220 host ESMTP") as a tagged
		// response.
		return ProblemWrongProtocol, x.key + ".port", fmt.Sprintf("%s answers as an %s server, not %s: set %s.port to the %s port (%s)",
			x.addr, other, proto, x.key, proto, x.usualPorts())
	case errors.As(err, &protoErr) && x.t.Protocol == SMTP:
		line := strings.TrimPrefix(string(protoErr), "short response: ")
		if strings.HasPrefix(strings.Trim(line, `"`), "* ") {
			return ProblemWrongProtocol, x.key + ".port", fmt.Sprintf("%s answers as an %s server, not %s: set %s.port to the %s submission port (%s)",
				x.addr, other, proto, x.key, proto, x.usualPorts())
		}

	case errors.As(err, &caErr):
		fix := "if the server uses a certificate of its own or of a private CA, save that CA's certificate as PEM and set mail.ca_file to the file"
		if x.t.CAFile {
			fix = "mail.ca_file is set, but the certificate in it did not sign this one: put the right CA certificate in that file"
		}
		return ProblemUnknownCA, "mail.ca_file", fmt.Sprintf("the certificate of %s is signed by an authority this computer does not trust: %s", x.addr, fix)
	case errors.As(err, &hostErr):
		return ProblemCertificate, x.key + ".host", fmt.Sprintf("the certificate of %s is not valid for the name %q (%v): set %s.host to the name the certificate is for",
			x.addr, x.t.Endpoint.Host, hostErr.Error(), x.key)
	case errors.As(err, &certErr) && certErr.Reason == x509.Expired:
		return ProblemCertificate, x.key + ".host", fmt.Sprintf("the certificate of %s has expired or is not valid yet (%s): check this computer's clock; if it is right, the mail provider must renew the certificate",
			x.addr, certErr.Detail)

	case errors.As(err, &imapErr) && isAuthCode(imapErr.Code),
		errors.As(err, &imapErr) && st == stageLogin && imapErr.Type == imap.StatusResponseTypeNo && imapErr.Code == "":
		return ProblemAuth, "mail.password", x.refused(imapErr.Text)
	case errors.As(err, &tpErr) && (tpErr.Code == 535 || tpErr.Code == 534 || tpErr.Code == 530):
		return ProblemAuth, "mail.password", x.refused(fmt.Sprintf("%d %s", tpErr.Code, tpErr.Msg))
	case errors.Is(err, ErrAuthRefused) && errors.As(err, &imapErr):
		return ProblemAuth, "mail.password", x.refused(imapErr.Text)
	case errors.Is(err, ErrNoLogin), st == stageLogin && errors.As(err, &tpErr) && (tpErr.Code == 504 || tpErr.Code == 502):
		return ProblemNoLogin, x.key + ".port", fmt.Sprintf("%s offers no login ipsync can use (ipsync logs in with PLAIN or LOGIN, or with XOAUTH2 or OAUTHBEARER for mail.auth: oauth2): set %s.port to the %s submission port (%s); port 25 is for mail between servers and usually offers no login",
			x.addr, x.key, proto, x.usualPorts())
	case st == stageLogin && errors.As(err, &tpErr) && (tpErr.Code == 538 || strings.Contains(strings.ToLower(tpErr.Msg), "encryption required")):
		return ProblemTLSMode, x.key + ".tls", fmt.Sprintf("%s wants the connection encrypted before the login (%d %s): set %s.tls: starttls (usually port %d) or implicit (usually port %d)",
			x.addr, tpErr.Code, strings.TrimSpace(tpErr.Msg), x.key, x.port(TLSStartTLS), x.port(TLSImplicit))
	case st == stageLogin && errors.As(err, &tpErr) && tpErr.Code >= 400 && tpErr.Code < 500:
		return ProblemLoginUnavailable, x.key + ".host", x.unavailable(fmt.Sprintf("%d %s", tpErr.Code, tpErr.Msg))
	case st == stageLogin && errors.As(err, &imapErr) && imapErr.Code == imap.ResponseCodeUnavailable:
		return ProblemLoginUnavailable, x.key + ".host", x.unavailable(imapErr.Text)
	case errors.As(err, &imapErr) && imapErr.Code == imap.ResponseCodeNonExistent:
		return ProblemNoMailbox, "mail.imap.mailbox", fmt.Sprintf("the mailbox %q does not exist for %s on %s: set mail.imap.mailbox to an existing folder (INBOX is always there)",
			x.t.Mailbox, x.t.Username, x.addr)

	case st == stageStartTLS && errors.As(err, &imapErr):
		return ProblemTLSMode, x.key + ".tls", fmt.Sprintf("%s refused STARTTLS (%s): if the port expects TLS from the first byte (usually 993) set %s.tls: implicit; ipsync never logs in without TLS",
			x.addr, imapErr.Text, x.key)
	case isClosed(err) && (st == stageStartTLS || st == stageGreeting || st == "" && x.t.Protocol == SMTP && x.mode != TLSImplicit):
		return ProblemTLSMode, x.key + ".tls", fmt.Sprintf("%s closed the connection before it spoke %s (with %s.tls: %s): it probably expects TLS from the first byte; set %s.tls: implicit (usually port %d) or use the %s port (usually %d)",
			x.addr, proto, x.key, x.mode, x.key, x.port(TLSImplicit), x.mode, x.port(x.mode))
	case isClosed(err) && st == stageTLS:
		return ProblemTLSMode, x.key + ".tls", fmt.Sprintf("%s closed the connection during the TLS handshake (with %s.tls: implicit): it may expect STARTTLS; set %s.tls: starttls (usually port %d) or use the implicit-TLS port (usually %d)",
			x.addr, x.key, x.key, x.port(TLSStartTLS), x.port(TLSImplicit))
	case isTimeout(err):
		return ProblemSilent, x.key + ".port", x.silent(st)
	}
	return ProblemOther, "", ""
}

// plainText explains a TLS handshake answered by plain text, whose first
// bytes are head.
func (x explainer) plainText(head []byte) (Problem, string, string) {
	proto := x.t.Protocol.upper()
	switch speaks := speaking(head); {
	case speaks == x.t.Protocol:
		return ProblemTLSMode, x.key + ".tls", fmt.Sprintf("%s speaks %s without TLS from the first byte, but %s.tls is implicit: set %s.tls: starttls (usual on port %d), or use the implicit-TLS port (usually %d)",
			x.addr, proto, x.key, x.key, x.port(TLSStartTLS), x.port(TLSImplicit))
	case speaks != "":
		return ProblemWrongProtocol, x.key + ".port", fmt.Sprintf("%s answers as an %s server, not %s: set %s.port to the %s port (%s)",
			x.addr, speaks.upper(), proto, x.key, proto, x.usualPorts())
	}
	return ProblemWrongProtocol, x.key + ".port", fmt.Sprintf("%s does not answer with TLS (it sent %q…): check %s.port (%s) and %s.tls",
		x.addr, printable(head), x.key, x.usualPorts(), x.key)
}

// speaking guesses the protocol of a server from the first bytes it sent.
func speaking(head []byte) Protocol {
	switch {
	case bytes.HasPrefix(head, []byte("* ")):
		return IMAP
	case len(head) >= 4 && bytes.HasPrefix(head, []byte("220")) && (head[3] == ' ' || head[3] == '-'):
		return SMTP
	}
	return ""
}

func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '.'
		}
		return r
	}, string(b))
}

// refused words a refused login; said is the server's answer.
func (x explainer) refused(said string) string {
	msg := fmt.Sprintf("the %s server %s refused the login of %q (%s): check mail.username and mail.password",
		x.t.Protocol.upper(), x.t.Endpoint.Host, x.t.Username, strings.TrimSpace(said))
	if p := provider(x.t.Endpoint.Host); p != "" {
		msg += fmt.Sprintf("; %s needs an app password (made in the account's security settings), not the account's own password", p)
	}
	return msg
}

// unavailable words a login the server could not take just now; said is
// its answer.
func (x explainer) unavailable(said string) string {
	return fmt.Sprintf("the %s server %s did not take the login of %q just now (%s): a temporary refusal on the mail provider's side, not a verdict on the password; ipsync tries again later. If it lasts, check the account (repeated failed logins lock it for a while) and the provider's status page",
		x.t.Protocol.upper(), x.t.Endpoint.Host, x.t.Username, strings.TrimSpace(said))
}

// silent words a server that accepted the connection and then said nothing
// in time, during step st.
func (x explainer) silent(st stage) string {
	proto := x.t.Protocol.upper()
	var hint string
	switch {
	case st == "" && x.t.Protocol == IMAP, st == stageLogin:
		// After set-up: the server (or the path to it) stopped answering.
		return fmt.Sprintf("%s stopped answering: check that the %s server is up and that the network or a firewall lets this computer reach it", x.addr, proto)
	case st == stageTLS || st == "" && x.mode == TLSImplicit:
		hint = fmt.Sprintf("with %s.tls: implicit it waits for a TLS answer; if the port expects STARTTLS set %s.tls: starttls (usually port %d)",
			x.key, x.key, x.port(TLSStartTLS))
	default:
		hint = fmt.Sprintf("with %s.tls: %s it waits for the server to speak first; if the port expects TLS from the first byte set %s.tls: implicit (usually port %d)",
			x.key, x.mode, x.key, x.port(TLSImplicit))
	}
	return fmt.Sprintf("%s accepted the connection but did not answer in time: check %s.port is the %s port (%s); %s",
		x.addr, x.key, proto, x.usualPorts(), hint)
}

// port is the usual port of the protocol with TLS mode m.
func (x explainer) port(m TLSMode) int {
	switch {
	case x.t.Protocol == IMAP && m == TLSImplicit:
		return 993
	case x.t.Protocol == IMAP:
		return 143
	case m == TLSImplicit:
		return 465
	}
	return 587
}

func (x explainer) usualPorts() string {
	return fmt.Sprintf("usually %d with tls: implicit, %d with tls: starttls", x.port(TLSImplicit), x.port(TLSStartTLS))
}

func isAuthCode(c imap.ResponseCode) bool {
	switch c {
	case imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed, imap.ResponseCodeExpired:
		return true
	}
	return false
}

// isClosed reports whether err says the server closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// isTimeout reports whether err is a mail operation that ran out of time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// provider names the mail provider of host when it is one that requires an
// app password for programs like ipsync, else "".
func provider(host string) string {
	h := "." + strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range []struct{ name, suffix string }{
		{"Gmail", ".gmail.com"}, {"Gmail", ".googlemail.com"}, {"Gmail", ".google.com"},
		{"Yahoo", ".yahoo.com"}, {"Yahoo", ".yahoo.co.jp"}, {"Yahoo", ".ymail.com"},
		{"iCloud", ".me.com"}, {"iCloud", ".icloud.com"}, {"iCloud", ".mac.com"},
		{"Outlook", ".outlook.com"}, {"Outlook", ".office365.com"}, {"Outlook", ".hotmail.com"}, {"Outlook", ".live.com"},
	} {
		if strings.HasSuffix(h, p.suffix) {
			return p.name
		}
	}
	return ""
}

// IsNetwork reports whether err is a failure of the network or of a mail
// server (as opposed to one of this computer or of ipsync): an *Error, a
// net package error, a TLS or certificate error, an IMAP or SMTP reply, a
// connection closed by the other end, or ErrTimeout.
func IsNetwork(err error) bool {
	var (
		me       *Error
		opErr    *net.OpError
		dnsErr   *net.DNSError
		addrErr  *net.AddrError
		hdrErr   tls.RecordHeaderError
		alertErr tls.AlertError
		verErr   *tls.CertificateVerificationError
		imapErr  *imap.Error
		tpErr    *textproto.Error
		protoErr textproto.ProtocolError
	)
	// Not net.Error: a syscall.Errno such as ENOSPC satisfies it too.
	return errors.As(err, &me) || errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.As(err, &addrErr) || errors.As(err, &hdrErr) || errors.As(err, &alertErr) ||
		errors.As(err, &verErr) || errors.As(err, &imapErr) || errors.As(err, &tpErr) || errors.As(err, &protoErr) ||
		errors.Is(err, ErrTimeout) || isClosed(err) || stageOf(err) != ""
}

// setupEnded is the error of a connection set-up cut short by the end of
// ctx, marked with the step err (the step's own failure, if any) shows it
// was in, and with ErrTimeout when ctx ran out of time.
func setupEnded(ctx context.Context, err error) error {
	st := stageOf(err)
	if st == "" {
		st = stageGreeting
	}
	return setupEndedAt(ctx, st)
}

// setupEndedAt is setupEnded for a known step.
func setupEndedAt(ctx context.Context, st stage) error {
	cause := context.Cause(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(cause, ErrTimeout) {
		cause = timeoutError{cause}
	}
	return &stageError{st, cause}
}

// timeoutError is a timeout cause of a caller's own, marked as ErrTimeout
// without changing its text.
type timeoutError struct{ cause error }

func (e timeoutError) Error() string   { return e.cause.Error() }
func (e timeoutError) Unwrap() []error { return []error{e.cause, ErrTimeout} }
