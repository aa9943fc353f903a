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
	"net/textproto"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"ipsync/mailconn"
)

// NameHeader is the header every ipsync message carries with the server's
// name. Retention deletes only messages that carry it with this server's
// name and have exactly this server's subject.
const NameHeader = "X-Ipsync-Name"

// DefaultSMTPTimeout bounds one SMTP session (connect, TLS, auth, send, quit)
// when SMTPOptions.Timeout is zero.
const DefaultSMTPTimeout = time.Minute

// ErrRejected marks a permanent refusal by the mail server (an SMTP 5xx
// reply, such as 535 authentication failed or 550 no such recipient).
// Trying again without a change of configuration will not help, so the
// publisher does not retry it in a loop. Test with errors.Is.
var ErrRejected = errors.New("mail server refused permanently")

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
	// Username logs in with AUTH PLAIN, or LOGIN when the server does not
	// offer PLAIN (other offered mechanisms as a last resort). "" means no
	// authentication.
	Username string
	// Password goes with Username. It is never logged.
	Password string
	// Timeout bounds one whole SMTP session; 0 means DefaultSMTPTimeout.
	Timeout time.Duration
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SMTPMailer{opts: opts, log: log}, nil
}

// Send delivers m in one SMTP session and one transaction, with every
// address of m.To as an envelope recipient. It blocks until the server has
// accepted the message, ctx ends or the timeout passes. A 5xx reply is
// returned wrapped with [ErrRejected].
func (s *SMTPMailer) Send(ctx context.Context, m Message) error {
	msg, err := buildMsg(m)
	if err != nil {
		return err
	}
	return s.session(ctx, "send mail", func(ctx context.Context, c *gomail.Client) error {
		return c.DialAndSendWithContext(ctx, msg)
	})
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
	var stop func() bool
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
		stop = context.AfterFunc(ctx, func() { conn.Close() })
		return conn, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(ep.Port),
		// ctx (closing the connection) is what bounds the session; go-mail's
		// own per-command deadline is only a backstop behind it.
		gomail.WithTimeout(s.opts.Timeout + 5*time.Second),
		gomail.WithTLSConfig(tlsConf),
		gomail.WithDialContextFunc(dial),
	}
	switch mode {
	case mailconn.TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case mailconn.TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default: // none: Validate allowed it only for a loopback host.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.opts.Username != "" {
		mechs := []gomail.SMTPAuthType{gomail.SMTPAuthPlain, gomail.SMTPAuthLogin}
		if mode == mailconn.TLSNone {
			mechs = []gomail.SMTPAuthType{gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc}
		}
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(mechs...),
			gomail.WithUsername(s.opts.Username),
			gomail.WithPassword(s.opts.Password))
	}
	client, err := gomail.NewClient(ep.Host, opts...)
	if err != nil {
		return fmt.Errorf("%s: configure smtp client: %w", what, err)
	}

	start := time.Now()
	err = do(ctx, client)
	if stop != nil {
		stop()
	}
	s.log.Debug("smtp session", "what", what, "server", ep.Addr(), "tls", string(mode),
		"took", time.Since(start), "err", err)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// The session was cut by ctx; what go-mail saw then (a read on a
		// closed connection) says nothing more, and is in the debug log.
		cause := context.Cause(ctx)
		if errors.Is(cause, errSMTPTimeout) {
			return fmt.Errorf("%s via %s: %w after %s (a server that accepts the connection and then stays silent often means a tls mode that does not fit the port: %s)",
				what, ep.Addr(), cause, s.opts.Timeout, mode)
		}
		return fmt.Errorf("%s via %s: %w", what, ep.Addr(), cause)
	}
	if isPermanent(err) {
		return fmt.Errorf("%s via %s: %w: %w", what, ep.Addr(), ErrRejected, err)
	}
	return fmt.Errorf("%s via %s: %w", what, ep.Addr(), err)
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
