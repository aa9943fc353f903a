package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/mailconn"
)

// Retention defaults.
const (
	DefaultKeepMessages     = 48
	DefaultRetentionTimeout = time.Minute
)

// errRetentionTimeout is the cause of a retention session that ran out of
// RetentionOptions.Timeout.
var errRetentionTimeout = errors.New("retention session timed out")

// ErrRetentionOff: Prune was called without Options.Pruner.
var ErrRetentionOff = errors.New("mailbox retention is not configured")

// startPrune runs retention in the background unless a session is already
// running; wg tracks it so Run can wait for it.
func (p *Publisher) startPrune(ctx context.Context, wg *sync.WaitGroup) {
	if p.opts.Pruner == nil || !p.pruning.CompareAndSwap(false, true) {
		return
	}
	wg.Go(func() {
		defer p.pruning.Store(false)
		p.prune(ctx)
	})
}

// prune runs retention if configured and logs a failure; failures never
// reach the publishing path.
func (p *Publisher) prune(ctx context.Context) {
	if p.opts.Pruner == nil {
		return
	}
	if _, err := p.Prune(ctx); err != nil {
		p.log.Warn("mailbox retention failed; publishing is not affected", "err", err)
	}
}

// Prune has Options.Pruner delete this server's older messages (those with
// its name and subject) and returns how many it deleted, or
// ErrRetentionOff without a Pruner. It blocks for one retention session.
func (p *Publisher) Prune(ctx context.Context) (int, error) {
	if p.opts.Pruner == nil {
		return 0, ErrRetentionOff
	}
	return p.opts.Pruner.Prune(ctx, p.opts.Name, p.opts.Subject)
}

// RetentionOptions configures an [IMAPPruner]. The zero value of each field
// means its default; IMAP and Username are required.
type RetentionOptions struct {
	// IMAP is the mailbox server of the From account.
	IMAP mailconn.Endpoint
	// Username logs in to IMAP. Required.
	Username string
	// Password goes with Username. Never logged.
	Password string
	// Mailbox holds the published messages; "" means INBOX.
	Mailbox string
	// KeepMessages is how many of the server's newest messages to keep;
	// 0 means DefaultKeepMessages. To turn retention off, hand the
	// publisher no Pruner.
	KeepMessages int
	// Timeout bounds one retention session; 0 means DefaultRetentionTimeout.
	Timeout time.Duration
	// Logger receives what each session deleted, warnings and debug
	// lines; nil discards them.
	Logger *slog.Logger
}

// IMAPPruner is the [Pruner] of mailbox retention over IMAP. It holds no
// connection between sessions, so it is safe for concurrent use, though
// concurrent sessions are pointless.
type IMAPPruner struct {
	opts RetentionOptions // defaults applied
}

var _ Pruner = (*IMAPPruner)(nil)

// NewIMAPPruner checks opts and returns a pruner. It does no I/O.
func NewIMAPPruner(opts RetentionOptions) (*IMAPPruner, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &IMAPPruner{opts: opts}, nil
}

// withDefaults validates o and returns a copy with defaults filled in.
func (o RetentionOptions) withDefaults() (RetentionOptions, error) {
	if err := o.IMAP.Validate(); err != nil {
		return o, fmt.Errorf("retention imap server: %w", err)
	}
	if o.Username == "" {
		return o, errors.New("retention imap username is empty")
	}
	if o.Mailbox == "" {
		o.Mailbox = "INBOX"
	}
	switch {
	case o.KeepMessages < 0:
		return o, fmt.Errorf("retention keep messages %d is negative", o.KeepMessages)
	case o.KeepMessages == 0:
		o.KeepMessages = DefaultKeepMessages
	}
	switch {
	case o.Timeout < 0:
		return o, fmt.Errorf("retention timeout %v is negative", o.Timeout)
	case o.Timeout == 0:
		o.Timeout = DefaultRetentionTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Prune deletes the server's older messages from the mailbox, keeping the
// newest RetentionOptions.KeepMessages, and returns how many it deleted. A
// message is the server's only if its NameHeader equals name and its
// subject equals subject, both exactly; no other mail is touched. Deletion
// uses UID EXPUNGE where the server supports it (UIDPLUS); otherwise plain
// EXPUNGE, but only when no other message in the mailbox is marked
// \Deleted (else the messages stay marked and the next session retries).
// It blocks for one IMAP session, bounded by ctx and
// RetentionOptions.Timeout.
func (r *IMAPPruner) Prune(ctx context.Context, name, subject string) (int, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.Timeout, errRetentionTimeout)
	defer cancel()
	n, err := r.session(ctx, name, subject)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	if err != nil {
		return n, fmt.Errorf("mailbox retention on %s: %w", r.opts.IMAP.Addr(), err)
	}
	if n > 0 {
		r.opts.Logger.Info("deleted old ipsync messages", "count", n, "mailbox", r.opts.Mailbox)
	}
	return n, nil
}

func (r *IMAPPruner) session(ctx context.Context, name, subject string) (int, error) {
	o := r.opts
	c, err := mailconn.DialIMAP(ctx, o.IMAP, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	// go-imap has no ctx: closing the connection unblocks any command.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if err := c.Login(o.Username, o.Password).Wait(); err != nil {
		return 0, fmt.Errorf("log in as %s: %w", o.Username, err)
	}
	if _, err := c.Select(o.Mailbox, nil).Wait(); err != nil {
		return 0, fmt.Errorf("select mailbox %q: %w", o.Mailbox, err)
	}
	n, err := r.pruneMailbox(c, name, subject)
	if err != nil {
		return n, err
	}
	if err := c.Logout().Wait(); err != nil {
		o.Logger.Debug("imap logout failed", "err", err)
	}
	return n, nil
}

func (r *IMAPPruner) pruneMailbox(c *imapclient.Client, name, subject string) (int, error) {
	keep := r.opts.KeepMessages
	// SEARCH HEADER matches substrings, so the candidates are checked
	// exactly below before anything is deleted.
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{
			{Key: NameHeader, Value: name},
			{Key: "Subject", Value: subject},
		},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search own messages: %w", err)
	}
	candidates := found.AllUIDs()
	if len(candidates) <= keep {
		return 0, nil
	}
	ours, err := exactlyOurs(c, candidates, name, subject)
	if err != nil {
		return 0, err
	}
	if len(ours) <= keep {
		return 0, nil
	}
	// UIDs grow with arrival, so the lowest are the oldest.
	slices.Sort(ours)
	doomed := ours[:len(ours)-keep]
	set := imap.UIDSetNum(doomed...)
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := c.Store(set, store, nil).Close(); err != nil {
		return 0, fmt.Errorf("mark %d old messages deleted: %w", len(doomed), err)
	}
	if c.Caps().Has(imap.CapUIDPlus) {
		if err := c.UIDExpunge(set).Close(); err != nil {
			return 0, fmt.Errorf("expunge old messages: %w", err)
		}
		return len(doomed), nil
	}
	// Plain EXPUNGE removes every \Deleted message: only safe when all of
	// them are ours.
	marked, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search deleted messages: %w", err)
	}
	for _, uid := range marked.AllUIDs() {
		if !slices.Contains(doomed, uid) {
			r.opts.Logger.Warn("server lacks UIDPLUS and the mailbox holds other messages marked deleted; "+
				"old ipsync messages stay marked \\Deleted instead of expunging someone else's mail",
				"mailbox", r.opts.Mailbox, "marked", len(doomed))
			return 0, nil
		}
	}
	if err := c.Expunge().Close(); err != nil {
		return 0, fmt.Errorf("expunge old messages: %w", err)
	}
	return len(doomed), nil
}

// exactlyOurs fetches the subject and name headers of uids and returns those
// whose values equal subject and name exactly.
func exactlyOurs(c *imapclient.Client, uids []imap.UID, name, subject string) ([]imap.UID, error) {
	section := &imap.FetchItemBodySection{
		Specifier:    imap.PartSpecifierHeader,
		HeaderFields: []string{"Subject", NameHeader},
		Peek:         true,
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetch headers of %d candidate messages: %w", len(uids), err)
	}
	var dec mime.WordDecoder
	var ours []imap.UID
	for _, m := range msgs {
		raw := m.FindBodySection(section)
		msg, err := mail.ReadMessage(bytes.NewReader(append(raw, "\r\n"...)))
		if err != nil {
			continue
		}
		gotSubject, err1 := dec.DecodeHeader(msg.Header.Get("Subject"))
		gotName, err2 := dec.DecodeHeader(msg.Header.Get(NameHeader))
		if err1 != nil || err2 != nil {
			continue
		}
		if strings.TrimSpace(gotSubject) == subject && strings.TrimSpace(gotName) == name && m.UID != 0 {
			ours = append(ours, m.UID)
		}
	}
	return ours, nil
}
