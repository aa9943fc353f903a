package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"time"

	"ipsync/codec"
)

// Defaults for the zero values of Options.
const (
	DefaultCheckEvery     = 5 * time.Minute
	DefaultHeartbeatEvery = time.Hour
	DefaultRetryMin       = 15 * time.Second
	DefaultRetryMax       = 10 * time.Minute
	DefaultCheckTimeout   = 2 * time.Minute
	DefaultMissingChecks  = 3
)

// Finder finds the host's public addresses. main satisfies it with an
// adapter over ipsync/publisher/discover.
type Finder interface {
	// Find returns the public addresses; a zero Addr means none for that
	// family. It blocks until ctx ends at the latest.
	Find(ctx context.Context) (Addrs, error)
}

// Pruner deletes a server's older messages from the mailbox and finds the
// bounces of the messages it sent. [IMAPPruner] implements it.
type Pruner interface {
	// Prune deletes the older messages of this server — those whose
	// [NameHeader] is req.Name and whose subject is req.Subject, both
	// exactly, and that it proves its own by their signature — keeping
	// the newest ones by sequence number. It also looks for
	// delivery-status reports (bounces) about the messages of req.Sent,
	// returns them and deletes those reports. It touches no other mail.
	Prune(ctx context.Context, req PruneRequest) (PruneResult, error)
}

// PruneRequest is what one retention session works on.
type PruneRequest struct {
	// Name and Subject are the server's name and subject.
	Name, Subject string
	// Sent are the messages sent recently; a delivery-status report is
	// recognised only when it refers to one of their Message-IDs.
	Sent []SentID
}

// PruneResult is what one retention session did and found.
type PruneResult struct {
	// Deleted is how many of the server's own messages were deleted.
	Deleted int
	// Reports is how many delivery-status reports about them were deleted.
	Reports int
	// Bounces are the failed deliveries those reports describe.
	Bounces []Bounce
}

// Options configures a Publisher. The zero value of each field means its
// default; Name, From, Mailer, Encode and Store are required.
type Options struct {
	// Name identifies the server; it goes into every payload and the
	// NameHeader header. Required.
	Name string
	// Subject is the neutral subject; "" means "ipsync <Name>". It must
	// never contain the address.
	Subject string
	// From is the account's address: the From header and envelope sender.
	// Required.
	From string
	// To are the recipients, all reached in one SMTP transaction without
	// seeing each other; nil means From alone. A refused recipient does
	// not stop the others (see Status.Recipients).
	To []string
	// Mailer sends each message, e.g. an [SMTPMailer]. Required.
	Mailer Mailer
	// Encode turns a payload into the message body (codec.Seal or
	// codec.Legacy.Encode bound to their keys). Required.
	Encode func(codec.Payload) (string, error)
	// Finder finds the public address; nil is allowed only for callers
	// that use PublishAddrs alone (Run and RunOnce return ErrNoFinder).
	Finder Finder
	// CheckEvery is how often the address is checked; 0 means
	// DefaultCheckEvery.
	CheckEvery time.Duration
	// CheckTimeout bounds one check; 0 means DefaultCheckTimeout, capped
	// at CheckEvery.
	CheckTimeout time.Duration
	// MissingChecks is how many checks in a row may find no address for a
	// family (IPv4 or IPv6) that the current address has before that
	// family is dropped and the address without it published; until then
	// the last known address of that family is kept, so a brief failure
	// (e.g. its sources rate-limited) is not published as a change. A
	// family found with a different address is a change at once, and
	// failed checks neither count nor reset. 0 means DefaultMissingChecks;
	// 1 drops a missing family at the first check that lacks it.
	MissingChecks int
	// IPv4Off says IPv4 is switched off in the configuration: an IPv4
	// address (from the state or an earlier check) is dropped at the next
	// check instead of being held for MissingChecks checks.
	IPv4Off bool
	// IPv6Off is IPv4Off for IPv6.
	IPv6Off bool
	// SeqFloor, when set, is the lowest sequence number a message sent at
	// now may carry: each message gets max(previous + 1, SeqFloor(now)).
	// With UnixSeq, a server whose state was lost (a reinstall, a restore
	// from an old backup) still sends numbers above every one its clients
	// have accepted, instead of starting again at 1 and being ignored. nil
	// means no floor: sequences start at 1.
	SeqFloor func(now time.Time) uint64
	// HeartbeatEvery is how long after the last sent message an unchanged
	// address is published again; 0 means DefaultHeartbeatEvery. It is also
	// how long the publisher waits before trying again after ErrRejected.
	HeartbeatEvery time.Duration
	// RetryMin is the first wait after a failed send; 0 means
	// DefaultRetryMin. Waits double with each failure, with jitter.
	RetryMin time.Duration
	// RetryMax caps the wait between failed sends; 0 means DefaultRetryMax.
	RetryMax time.Duration
	// Store keeps sequence numbers, the last send and the pause switch
	// across runs, e.g. a [FileStore]. Required.
	Store Store
	// Pruner, when set, deletes this server's older messages after each
	// successful send (mailbox retention); nil means no retention.
	Pruner Pruner
	// Now returns the current time for timestamps; nil means time.Now.
	// Waits use the time package (testing/synctest drives them in tests).
	Now func() time.Time
	// Rand draws the backoff jitter; nil means the math/rand/v2 global
	// source. Used only by the Run goroutine.
	Rand *rand.Rand
	// Logger receives the publisher's logs; nil discards them.
	Logger *slog.Logger
	// OnStatus, when set, is called with a snapshot after every change of
	// Status. Calls are serialised and never made with a lock of the
	// Publisher held, so the function may call any of its methods; it
	// must return quickly, as it runs on the goroutine that made the
	// change (the loop, or a caller of SetPaused or PublishAddrs).
	OnStatus func(Status)
}

// withDefaults validates o and returns a copy with defaults filled in: the
// subject, the recipients (From alone), the durations, MissingChecks, Now,
// and Logger.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("publisher name is empty"))
	}
	if o.Subject == "" {
		o.Subject = "ipsync " + o.Name
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		errs = append(errs, fmt.Errorf("from address %q: %w", o.From, err))
	}
	if len(o.To) == 0 && from != nil {
		o.To = []string{from.Address}
	}
	for _, t := range o.To {
		if _, err := mail.ParseAddress(t); err != nil {
			errs = append(errs, fmt.Errorf("recipient address %q: %w", t, err))
		}
	}
	if o.Mailer == nil {
		errs = append(errs, errors.New("no mailer configured"))
	}
	if o.Encode == nil {
		errs = append(errs, errors.New("no message encoder configured"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("no state store configured"))
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"check interval", &o.CheckEvery, DefaultCheckEvery},
		{"check timeout", &o.CheckTimeout, DefaultCheckTimeout},
		{"heartbeat interval", &o.HeartbeatEvery, DefaultHeartbeatEvery},
		{"retry minimum", &o.RetryMin, DefaultRetryMin},
		{"retry maximum", &o.RetryMax, DefaultRetryMax},
	} {
		switch {
		case *d.v < 0:
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, *d.v))
		case *d.v == 0:
			*d.v = d.def
		}
	}
	o.CheckTimeout = min(o.CheckTimeout, o.CheckEvery)
	if o.RetryMax < o.RetryMin {
		errs = append(errs, fmt.Errorf("retry maximum %v is below retry minimum %v", o.RetryMax, o.RetryMin))
	}
	switch {
	case o.MissingChecks < 0:
		errs = append(errs, fmt.Errorf("missing checks %d is negative", o.MissingChecks))
	case o.MissingChecks == 0:
		o.MissingChecks = DefaultMissingChecks
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("publisher options: %w", err)
	}
	return o, nil
}
