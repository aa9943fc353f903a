package publisher

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"ipsync/mailconn"
)

// NameHeader is the header every ipsync message carries with the server's
// name. Retention deletes only messages that carry it with this server's
// name and have exactly this server's subject.
const NameHeader = "X-Ipsync-Name"

// DefaultHELO is the name given in EHLO when SMTPOptions.HELO is empty.
const DefaultHELO = "localhost"

// DefaultSMTPTimeout bounds one SMTP session (connect, TLS, auth, send, quit)
// when SMTPOptions.Timeout is zero.
const DefaultSMTPTimeout = time.Minute

// ErrRejected marks a permanent refusal by the mail server (an SMTP 5xx
// reply, such as 535 authentication failed or 550 no such recipient).
// Trying again without a change of configuration will not help, so the
// publisher does not retry it in a loop. Test with errors.Is.
var ErrRejected = errors.New("mail server refused permanently")

// ErrAuthRefused marks a login the mail server refused: SMTP 535, 534 or
// 530, or IMAP NO [AUTHENTICATIONFAILED] (and the other RFC 5530 codes of a
// refused login), or an OAuth2 access token refused even after a refresh.
// It is not a network error: the password (or the account's settings) must
// change. The publisher retries such a login only after a wait that grows
// to hours, so that a wrong password does not get the account locked. It is
// mailconn.ErrAuthRefused (mailconn.Auth classifies the replies). Test with
// errors.Is.
var ErrAuthRefused = mailconn.ErrAuthRefused

// ErrSignInNeeded marks a publication or retention session that did not
// log in because the OAuth2 sign-in is no longer accepted (the refresh
// token was revoked or expired, or none is stored): no mail server was
// contacted. The user must run `ipsync login` (or the tray's "Sign in…").
// It is mailconn.ErrSignInNeeded.
var ErrSignInNeeded = mailconn.ErrSignInNeeded

// errSMTPTimeout is the cause of a context that ran out of SMTPOptions.Timeout.
var errSMTPTimeout = fmt.Errorf("smtp session %w", mailconn.ErrTimeout)

// Message is one mail to send.
type Message struct {
	// From is the sender: the From header and the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (one RCPT TO each). They are not
	// written to any header, so recipients do not see each other: the To
	// header holds the sender's own address instead.
	To []string
	// Subject is the Subject header.
	Subject string
	// Name is the server name, written to the [NameHeader] header.
	Name string
	// Body is the text/plain body.
	Body string
	// Date is the Date header; the zero time means now.
	Date time.Time
	// MessageID is the Message-ID without angle brackets; "" means a random
	// one at the sender's domain (never the host name, which would leak).
	MessageID string
}

// Mailer sends one message. An error wrapping [ErrRejected] is permanent;
// any other error may succeed later.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// SMTPOptions configures an [SMTPMailer]. The zero value of each field
// means its default.
type SMTPOptions struct {
	// Endpoint is the submission server. TLS "implicit" (usually port 465)
	// speaks TLS from the first byte; "starttls" (usually 587) requires
	// STARTTLS and fails rather than send in plaintext when the server does
	// not offer it; "none" is accepted only for loopback hosts. RootCAs nil
	// means the system roots.
	Endpoint mailconn.Endpoint
	// Auth signs in at each session (mailconn.Auth.SMTP): a password with
	// AUTH PLAIN, or LOGIN when the server does not offer PLAIN; an OAuth2
	// token with XOAUTH2, refreshed and retried once if refused. The zero
	// Auth means no authentication.
	Auth mailconn.Auth
	// Timeout bounds one whole SMTP session; 0 means DefaultSMTPTimeout.
	Timeout time.Duration
	// HELO is the name the mailer gives itself in EHLO/HELO; "" means
	// DefaultHELO. It is never the machine's host name, which would tell
	// the mail provider (and every Received: header) what the server is.
	HELO string
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
}

// SMTPMailer sends mail with go-mail. It holds no connection between sends,
// so it is safe for concurrent use.
type SMTPMailer struct {
	opts SMTPOptions
	log  *slog.Logger
}

var _ Mailer = (*SMTPMailer)(nil)

// NewSMTPMailer checks opts and returns a mailer. It does no I/O.
func NewSMTPMailer(opts SMTPOptions) (*SMTPMailer, error) {
	if err := opts.Endpoint.Validate(); err != nil {
		return nil, fmt.Errorf("smtp server: %w", err)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("smtp timeout %v is negative", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultSMTPTimeout
	}
	if opts.HELO == "" {
		opts.HELO = DefaultHELO
	}
	if err := ValidateHELO(opts.HELO); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SMTPMailer{opts: opts, log: log}, nil
}

// Send delivers m in one SMTP session and one transaction, with every
// address of m.To as an envelope recipient. A recipient the server refuses
// at RCPT TO does not stop the others: the message goes to every recipient
// that accepted, and Send returns a *[RecipientError] listing the refused
// ones (errors.As). When no recipient accepted, nothing is sent and the
// error also wraps [ErrRejected] if every refusal was permanent (5xx). A
// refused login wraps [ErrAuthRefused] and ErrRejected. A failure a person
// can act on (a refused or unavailable login, a wrong port or TLS mode, an
// untrusted certificate) is a *[mailconn.Error] naming the setting and the
// fix. It blocks until the server has accepted the message, ctx ends or the
// timeout passes.
func (s *SMTPMailer) Send(ctx context.Context, m Message) error {
	msg, err := buildMsg(m)
	if err != nil {
		return err
	}
	return s.session(ctx, "send mail", func(ctx context.Context, c *gomail.Client) error {
		sc, err := c.DialToSMTPClientWithContext(ctx)
		if err != nil {
			return err
		}
		err = transact(sc, msg)
		if cerr := c.CloseWithSMTPClient(sc); cerr != nil {
			s.log.Debug("smtp quit failed", "err", cerr)
		}
		return err
	})
}

// transact runs one mail transaction on sc: MAIL FROM, a RCPT TO for each
// recipient, going on past refused ones, and DATA for those that accepted.
// go-mail's own send aborts the transaction at the first refused RCPT, so
// ipsync drives the steps itself.
func transact(sc *gosmtp.Client, msg *gomail.Msg) error {
	from, err := msg.GetSender(false)
	if err != nil {
		return fmt.Errorf("sender address: %w", err)
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return fmt.Errorf("recipient addresses: %w", err)
	}
	if err := sc.Mail(from); err != nil {
		_ = sc.Reset()
		return fmt.Errorf("mail from %s: %w", from, err)
	}
	var rerr RecipientError
	for _, rcpt := range rcpts { // "<addr>"
		r := strings.TrimSuffix(strings.TrimPrefix(rcpt, "<"), ">")
		if err := sc.Rcpt(rcpt); err != nil {
			var tp *textproto.Error
			if !errors.As(err, &tp) {
				_ = sc.Reset()
				return fmt.Errorf("rcpt to %s: %w", r, err) // the connection failed
			}
			rerr.Refused = append(rerr.Refused, newRefusal(r, tp))
			continue
		}
		rerr.Delivered = append(rerr.Delivered, r)
	}
	if len(rerr.Delivered) == 0 {
		_ = sc.Reset()
		return &rerr
	}
	w, err := sc.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := msg.WriteTo(w); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	if len(rerr.Refused) > 0 {
		return &rerr
	}
	return nil
}

// Refusal is a recipient the mail server refused.
type Refusal struct {
	// Rcpt is the recipient's address.
	Rcpt string
	// Code is the SMTP reply code, e.g. 550.
	Code int
	// Status is the enhanced status code (RFC 3463), e.g. "5.1.1"; "" if
	// the server gave none.
	Status string
	// Text is the rest of the server's reply.
	Text string
}

// Permanent reports a 5xx refusal: trying again unchanged will not help.
func (r Refusal) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// String returns e.g. "550 5.1.1 No such user here".
func (r Refusal) String() string {
	return strings.Join(strings.Fields(fmt.Sprintf("%d %s %s", r.Code, r.Status, r.Text)), " ")
}

// newRefusal reads the refusal of rcpt from the server's reply tp.
func newRefusal(rcpt string, tp *textproto.Error) Refusal {
	r := Refusal{Rcpt: rcpt, Code: tp.Code, Text: strings.TrimSpace(tp.Msg)}
	if f := strings.Fields(r.Text); len(f) > 0 && isEnhancedStatus(f[0]) {
		r.Status = f[0]
		r.Text = strings.TrimSpace(strings.TrimPrefix(r.Text, f[0]))
	}
	return r
}

// isEnhancedStatus reports whether s looks like an RFC 3463 status code
// ("5.1.1").
func isEnhancedStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// RecipientError is what [SMTPMailer.Send] returns when the server refused
// some recipients at RCPT TO: the message went to Delivered (none: nothing
// was sent) and not to Refused.
type RecipientError struct {
	Delivered []string
	Refused   []Refusal
}

func (e *RecipientError) Error() string {
	parts := make([]string, 0, len(e.Refused))
	for _, r := range e.Refused {
		parts = append(parts, r.Rcpt+": "+r.String())
	}
	what := "not delivered to"
	if len(e.Delivered) == 0 {
		what = "no recipient accepted; refused"
	}
	return what + " " + strings.Join(parts, "; ")
}

// Unwrap returns ErrRejected when nothing was delivered and every refusal
// was permanent, so that errors.Is(err, ErrRejected) holds only when the
// whole message was refused for good.
func (e *RecipientError) Unwrap() error {
	if len(e.Delivered) > 0 {
		return nil
	}
	for _, r := range e.Refused {
		if !r.Permanent() {
			return nil
		}
	}
	return ErrRejected
}

// Check connects, negotiates TLS, authenticates and quits, without sending
// mail. It is for `ipsync check`.
func (s *SMTPMailer) Check(ctx context.Context) error {
	return s.session(ctx, "check smtp server", func(ctx context.Context, c *gomail.Client) error {
		sc, err := c.DialToSMTPClientWithContext(ctx)
		if err != nil {
			return err
		}
		return c.CloseWithSMTPClient(sc)
	})
}

// CheckRecipients asks the server whether it takes mail from from to each
// of to (MAIL FROM, RCPT TO each, then RSET: nothing is sent) and returns
// the refused ones. It is for `ipsync check`. A server may accept a
// recipient here and bounce the message later; only a delivery-status
// report tells that.
func (s *SMTPMailer) CheckRecipients(ctx context.Context, from string, to []string) ([]Refusal, error) {
	var refused []Refusal
	err := s.session(ctx, "check recipients", func(ctx context.Context, c *gomail.Client) error {
		sc, err := c.DialToSMTPClientWithContext(ctx)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := c.CloseWithSMTPClient(sc); cerr != nil {
				s.log.Debug("smtp quit failed", "err", cerr)
			}
		}()
		if err := sc.Mail("<" + from + ">"); err != nil {
			return fmt.Errorf("mail from %s: %w", from, err)
		}
		for _, r := range to {
			if err := sc.Rcpt("<" + r + ">"); err != nil {
				var tp *textproto.Error
				if !errors.As(err, &tp) {
					return fmt.Errorf("rcpt to %s: %w", r, err)
				}
				refused = append(refused, newRefusal(r, tp))
			}
		}
		return sc.Reset()
	})
	return refused, err
}

// session runs do with a fresh go-mail client whose connection is closed
// when ctx ends or the timeout passes, and classifies the error.
func (s *SMTPMailer) session(ctx context.Context, what string, do func(context.Context, *gomail.Client) error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.Timeout, errSMTPTimeout)
	defer cancel()

	ep := s.opts.Endpoint
	tlsConf := ep.TLSConfig()
	mode := ep.Mode()
	// The dial function closes the connection when ctx ends, so a stuck
	// server cannot hold the session past ctx (go-mail itself only applies
	// per-command deadlines). The connection is returned unwrapped: go-mail
	// recognises *tls.Conn to know the session is encrypted.
	// One per dial: Auth.SMTP may run a second attempt.
	var stops []func() bool
	// ep.Dial refuses a tls: none host that resolves off loopback.
	dial := func(dctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := ep.Dial(dctx)
		if err != nil {
			return nil, err
		}
		if mode == mailconn.TLSImplicit {
			tc := tls.Client(conn, tlsConf)
			if err := tc.HandshakeContext(dctx); err != nil {
				conn.Close()
				return nil, fmt.Errorf("tls handshake: %w", err)
			}
			conn = tc
		}
		stops = append(stops, context.AfterFunc(ctx, func() { conn.Close() }))
		return conn, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(ep.Port),
		// ctx (closing the connection) is what bounds the session; go-mail's
		// own per-command deadline is only a backstop behind it.
		gomail.WithTimeout(s.opts.Timeout + 5*time.Second),
		gomail.WithTLSConfig(tlsConf),
		gomail.WithDialContextFunc(dial),
		gomail.WithHELO(s.opts.HELO),
	}
	switch mode {
	case mailconn.TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case mailconn.TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default: // none: Validate allowed it only for a loopback host.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	// attempt runs do on a client with the sign-in options of one
	// attempt; Auth.SMTP calls it once more after a refused token.
	attempt := func(authOpts []gomail.Option) error {
		client, err := gomail.NewClient(ep.Host, append(slices.Clip(opts), authOpts...)...)
		if err != nil {
			return fmt.Errorf("configure smtp client: %w", err)
		}
		return do(ctx, client)
	}

	start := time.Now()
	var err error
	if s.opts.Auth.IsZero() {
		err = attempt(nil)
	} else {
		err = s.opts.Auth.SMTP(ctx, mode == mailconn.TLSNone, attempt)
	}
	for _, stop := range stops {
		stop()
	}
	s.log.Debug("smtp session", "what", what, "server", ep.Addr(), "tls", string(mode),
		"took", time.Since(start), "err", err)
	if err == nil {
		return nil
	}
	// The failure goes out explained (mailconn.Explain: what happened,
	// which setting, what to do) when it is one a person can act on; the
	// library's own words are in the debug line above.
	return mailconn.Explain(s.classify(ctx, what, err), mailconn.Target{
		Protocol: mailconn.SMTP,
		Endpoint: ep,
		Username: s.opts.Auth.User(),
		CAFile:   ep.RootCAs != nil,
		OAuth2:   s.opts.Auth.IsToken(),
	})
}

// classify wraps err, the failure of the session what, with the sentinels
// callers branch on (ErrAuthRefused, ErrRejected) and marks a failure of
// the login step, so that it is never worded as a failure to connect.
func (s *SMTPMailer) classify(ctx context.Context, what string, err error) error {
	ep := s.opts.Endpoint
	if ctx.Err() != nil {
		// The session was cut by ctx; what go-mail saw then (a read on a
		// closed connection) says nothing more, and is in the debug log.
		cause := context.Cause(ctx)
		if errors.Is(cause, errSMTPTimeout) {
			return fmt.Errorf("%s via %s: %w after %s (a server that accepts the connection and then stays silent often means a tls mode that does not fit the port: %s)",
				what, ep.Addr(), cause, s.opts.Timeout, ep.Mode())
		}
		return fmt.Errorf("%s via %s: %w", what, ep.Addr(), cause)
	}
	switch msg := err.Error(); {
	case errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) || strings.Contains(msg, "server does not support SMTP AUTH"):
		// No AUTH in the EHLO reply, or none of the mechanisms ipsync
		// speaks (go-mail says so only in words).
		err = mailconn.AtLogin(fmt.Errorf("%w: %w", mailconn.ErrNoLogin, err))
	case strings.Contains(msg, "SMTP AUTH failed"):
		err = mailconn.AtLogin(err)
	}
	switch {
	case errors.Is(err, ErrAuthRefused):
		// Auth.SMTP has named the refusal.
		return fmt.Errorf("%s via %s: %w: %w", what, ep.Addr(), ErrRejected, err)
	case errors.Is(err, ErrSignInNeeded):
		return fmt.Errorf("%s: %w", what, err)
	case isAuthRefusal(err):
		// 530 from a server that wants a sign-in none was configured for.
		return fmt.Errorf("%s via %s: %w (%w): %w", what, ep.Addr(), ErrAuthRefused, ErrRejected, err)
	}
	if isPermanent(err) {
		return fmt.Errorf("%s via %s: %w: %w", what, ep.Addr(), ErrRejected, err)
	}
	return fmt.Errorf("%s via %s: %w", what, ep.Addr(), err)
}

// ValidateHELO checks a name for EHLO: a domain name (letters, digits,
// hyphens and dots) or an address literal such as "[127.0.0.1]".
func ValidateHELO(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("helo name %q: want 1 to 255 characters", name)
	}
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		inner := strings.TrimPrefix(name[1:len(name)-1], "IPv6:")
		if _, err := netip.ParseAddr(inner); err != nil {
			return fmt.Errorf("helo name %q: not an address literal: %w", name, err)
		}
		return nil
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("helo name %q: want a domain name such as localhost or ipsync.invalid", name)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("helo name %q: %q is not allowed; want letters, digits, hyphens and dots", name, r)
			}
		}
	}
	return nil
}

// isAuthRefusal reports whether err carries an SMTP reply that refuses the
// login: 535 (credentials invalid), 534 (mechanism too weak, e.g. Gmail's
// "application-specific password required") or 530 (authentication
// required).
func isAuthRefusal(err error) bool {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		switch tpErr.Code {
		case 530, 534, 535:
			return true
		}
	}
	return false
}

// isPermanent reports whether err carries an SMTP 5xx reply.
func isPermanent(err error) bool {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) && tpErr.Code >= 500 && tpErr.Code < 600 {
		return true
	}
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) {
		code := sendErr.ErrorCode()
		return code >= 500 && code < 600
	}
	return false
}

// buildMsg turns m into a go-mail message: From, To (the sender), Subject,
// Date, Message-ID, the name header and a text/plain body; the recipients
// only in the envelope.
func buildMsg(m Message) (*gomail.Msg, error) {
	from, err := mail.ParseAddress(m.From)
	if err != nil {
		return nil, fmt.Errorf("sender address %q: %w", m.From, err)
	}
	if len(m.To) == 0 {
		return nil, errors.New("message has no recipient")
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	// Recipients go to Bcc, which go-mail uses for RCPT TO but never writes
	// out; the To header shows only the sender.
	if err := msg.Bcc(m.To...); err != nil {
		return nil, fmt.Errorf("recipient address: %w", err)
	}
	msg.SetGenHeader(gomail.Header(gomail.HeaderTo), from.Address)
	msg.Subject(m.Subject)
	msg.SetGenHeader(NameHeader, m.Name)
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	msg.SetDateWithValue(date)
	id := m.MessageID
	if id == "" {
		id = newMessageID(from.Address)
	}
	msg.SetMessageIDWithValue(id)
	body := m.Body
	if !strings.HasSuffix(body, "\n") {
		body += "\r\n"
	}
	msg.SetBodyString(gomail.TypeTextPlain, body)
	return msg, nil
}

// Render returns m as the RFC 5322 bytes the SMTP mailer submits (without
// the envelope). Tests and other delivery paths (an IMAP APPEND into a
// server without SMTP) use it so that every path writes the same mail.
func Render(m Message) ([]byte, error) {
	msg, err := buildMsg(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("render message: %w", err)
	}
	return buf.Bytes(), nil
}

// newMessageID returns 160 random bits at the domain of addr.
func newMessageID(addr string) string {
	domain := "ipsync.invalid"
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i+1 < len(addr) {
		domain = addr[i+1:]
	}
	b := make([]byte, 20)
	_, _ = rand.Read(b) // crypto/rand.Read never fails.
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)) + "@" + domain
}
