package fetcher

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"ipsync/codec"
	"ipsync/mailconn"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultMailbox     = "INBOX"
	DefaultIdleRefresh = 10 * time.Minute
	DefaultPollEvery   = 5 * time.Minute
	DefaultIdleRetry   = 30 * time.Minute
	DefaultMaxSize     = 64 << 10
	DefaultMaxFuture   = 10 * time.Minute
	DefaultSlack       = 15 * time.Minute
	DefaultRoundBytes  = 2 << 20
	DefaultOpTimeout   = 30 * time.Second
	DefaultHookTimeout = 30 * time.Second
	DefaultProbeEvery  = time.Minute
	DefaultStaleGrace  = 10 * time.Minute
	// DefaultHeartbeat is assumed for staleness when a payload does not
	// carry its heartbeat interval (legacy messages).
	DefaultHeartbeat = time.Hour
)

// IdleMode chooses between IMAP IDLE (push) and polling.
type IdleMode string

// The idle modes.
const (
	// IdleAuto IDLEs while the server admits the connection with room to
	// spare, and falls back to short poll sessions on a shared mailbox whose
	// connection limit is reached (retrying IDLE every IdleRetry).
	IdleAuto IdleMode = "auto"
	// IdleOn always IDLEs when the server advertises IDLE; a connection-limit
	// refusal is backed off and retried.
	IdleOn IdleMode = "on"
	// IdleOff always polls with short sessions.
	IdleOff IdleMode = "off"
)

// Clock is the time source of a Fetcher. Tests inject a fake one; the
// Fetcher arms at most one Clock timer at a time while it runs.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C is the channel the time is sent on when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped
	// a pending timer.
	Stop() bool
}

// Decoder turns the text of one mail (its text/plain body) into a payload.
// It must be safe to call from several goroutines.
type Decoder func(text string) (codec.Payload, error)

// Options configure a Fetcher. The zero value of each field means its
// default; IMAP, Auth, Name and either Keys, Decode or Legacy (with
// Format legacy) are required.
type Options struct {
	// IMAP is the mail server. Its TLS mode must be implicit or starttls;
	// none only for loopback hosts (checked by Endpoint.Validate).
	IMAP mailconn.Endpoint
	// Auth signs in to IMAP at each connection (a password or an OAuth2
	// token; mailconn.Auth). It is the only holder of the credentials.
	// Required, with a user name.
	Auth mailconn.Auth
	// Mailbox is examined (opened read-only); "" means INBOX.
	Mailbox string
	// Name is the server name to accept; messages naming another server
	// are rejected. Required.
	Name string
	// Subject is the subject searched for; "" means "ipsync <Name>".
	Subject string
	// Format is the message format; "" means sealed.
	Format codec.Format
	// Keys open sealed messages (several allow key rotation). Used when
	// Decode is nil and Format is sealed.
	Keys []codec.ClientKey
	// Legacy holds the legacy scheme's parameters; used when Decode is nil
	// and Format is legacy.
	Legacy codec.Legacy
	// Decode, if set, replaces the decoder built from Format, Keys and
	// Legacy. For Format legacy it need only fill IPv4 (and may leave
	// Name, Seq and IssuedAt zero).
	Decode Decoder
	// Idle is auto, on or off; "" means auto.
	Idle IdleMode
	// IdleRefresh is how often IDLE is re-issued (with a NOOP liveness
	// check in between); 0 means 10 minutes.
	IdleRefresh time.Duration
	// IdleRetry is how often a client polling a shared mailbox tries IDLE
	// again; 0 means 30 minutes.
	IdleRetry time.Duration
	// PollEvery is the poll interval when not idling; the actual wait is
	// jittered between 75% and 100% of it. 0 means 5 minutes.
	PollEvery time.Duration
	// StaleAfter is how long without an accepted message makes the state
	// Stale, measured from the message's IssuedAt; 0 means twice the
	// payload's heartbeat (1h if unknown) plus 10 minutes.
	StaleAfter time.Duration
	// MaxFuture is how far in the future (by Clock) a message's IssuedAt
	// may be; 0 means 10 minutes.
	MaxFuture time.Duration
	// ProbePort, if not 0, is a TCP port on the server's current address
	// checked every ProbeEvery; a failed probe triggers a fetch and the
	// Unreachable state.
	ProbePort int
	// ProbeEvery is the probe interval; 0 means 1 minute.
	ProbeEvery time.Duration
	// ProbeTarget, if set, returns the address to probe for a payload;
	// nil means the payload's IPv4 (else IPv6) address and ProbePort.
	ProbeTarget func(codec.Payload) netip.AddrPort
	// OnChange is a command (argv, no shell) run when the address changes,
	// with IPSYNC_NAME, IPSYNC_IPV4, IPSYNC_IPV6, IPSYNC_PREVIOUS_IPV4 and
	// IPSYNC_PREVIOUS_IPV6 added to ipsync's own environment (less
	// HookEnvExclude). Empty means none.
	OnChange []string
	// HookEnvExclude names environment variables removed from the on_change
	// command's environment, e.g. those holding secrets; ipsync's main
	// passes the names of env: secret references. Names match exactly (on
	// Windows without regard to case). nil removes none.
	HookEnvExclude []string
	// HookTimeout bounds one OnChange run; 0 means 30 seconds.
	HookTimeout time.Duration
	// StatePath is the JSON file keeping the last accepted message across
	// restarts; "" means no persistence.
	StatePath string
	// MaxSize is the largest message read, in bytes; larger ones are
	// skipped. 0 means 64 KiB.
	MaxSize int64
	// Slack is how long after its issued_at a message may arrive (by the
	// mail server's INTERNALDATE) and still count as delivered on time,
	// and so how far below such a message a scan looks for a newer one
	// delivered out of order; it also absorbs clock differences between
	// the server and the mail server. 0 means 15 minutes.
	Slack time.Duration
	// RoundBytes bounds the message bytes one scan round downloads; a scan
	// with candidates left goes on in another round at once, so a flood of
	// junk delays the answer without starving the process. 0 means 2 MiB.
	RoundBytes int64
	// OpTimeout bounds each network operation (connect, one command);
	// 0 means 30 seconds.
	OpTimeout time.Duration
	// Clock is the time source; nil means the real clock.
	Clock Clock
	// Rand returns a uniform number in [0, 1) for jitter; nil means
	// math/rand/v2.Float64. It is called from the Run goroutine only.
	Rand func() float64
	// Logger receives the log; nil discards it.
	Logger *slog.Logger
}

// defaultSubject is the subject searched for when Options.Subject is "";
// the publisher's default is the same.
func defaultSubject(name string) string { return "ipsync " + name }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// withDefaults validates o and returns a copy with defaults filled in.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if err := o.IMAP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("imap: %w", err))
	}
	switch {
	case o.Auth.IsZero():
		errs = append(errs, errors.New("no sign-in method (Options.Auth)"))
	case strings.TrimSpace(o.Auth.User()) == "":
		errs = append(errs, errors.New("username is empty"))
	}
	if strings.TrimSpace(o.Name) == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if o.Mailbox == "" {
		o.Mailbox = DefaultMailbox
	}
	if o.Subject == "" {
		o.Subject = defaultSubject(o.Name)
	}
	if strings.ContainsAny(o.Subject, "\r\n") {
		errs = append(errs, errors.New("subject contains a line break"))
	}
	if o.Format == "" {
		o.Format = codec.FormatSealed
	}
	switch o.Format {
	case codec.FormatSealed:
		if o.Decode == nil && len(o.Keys) == 0 {
			errs = append(errs, errors.New("format sealed needs at least one client key"))
		}
	case codec.FormatLegacy:
		if o.Decode == nil {
			if err := o.Legacy.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		errs = append(errs, fmt.Errorf("format %q is not one of sealed, legacy", o.Format))
	}
	switch o.Idle {
	case "":
		o.Idle = IdleAuto
	case IdleAuto, IdleOn, IdleOff:
	default:
		errs = append(errs, fmt.Errorf("idle %q is not one of auto, on, off", o.Idle))
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"idle_refresh", &o.IdleRefresh, DefaultIdleRefresh},
		{"idle_retry", &o.IdleRetry, DefaultIdleRetry},
		{"poll_every", &o.PollEvery, DefaultPollEvery},
		{"max_future", &o.MaxFuture, DefaultMaxFuture},
		{"probe_every", &o.ProbeEvery, DefaultProbeEvery},
		{"hook_timeout", &o.HookTimeout, DefaultHookTimeout},
		{"op_timeout", &o.OpTimeout, DefaultOpTimeout},
		{"stale_after", &o.StaleAfter, 0},
		{"slack", &o.Slack, DefaultSlack},
	}
	for _, d := range durations {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, *d.v))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if o.ProbePort < 0 || o.ProbePort > 65535 {
		errs = append(errs, fmt.Errorf("probe port %d is out of range 0-65535", o.ProbePort))
	}
	if len(o.OnChange) > 0 && o.OnChange[0] == "" {
		errs = append(errs, errors.New("on_change command name is empty"))
	}
	for _, name := range o.HookEnvExclude {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			errs = append(errs, fmt.Errorf("hook environment exclusion %q is not a variable name", name))
		}
	}
	if o.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("max size %d is negative", o.MaxSize))
	} else if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.RoundBytes < 0 {
		errs = append(errs, fmt.Errorf("round bytes %d is negative", o.RoundBytes))
	} else if o.RoundBytes == 0 {
		o.RoundBytes = DefaultRoundBytes
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Decode == nil {
		o.Decode = defaultDecoder(o)
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("fetcher options: %w", err)
	}
	return o, nil
}
