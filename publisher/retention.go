package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// ErrRetentionOff: Prune was called without Options.Retention.
var ErrRetentionOff = errors.New("mailbox retention is not configured")

// startPrune runs retention in the background unless a session is already
// running; wg tracks it so Run can wait for it.
func (p *Publisher) startPrune(ctx context.Context, wg *sync.WaitGroup) {
	if p.opts.Retention == nil || !p.pruning.CompareAndSwap(false, true) {
		return
	}
	wg.Go(func() {
		defer p.pruning.Store(false)
		p.prune(ctx)
	})
}

// prune runs retention if configured and logs the outcome; failures never
// reach the publishing path.
func (p *Publisher) prune(ctx context.Context) {
	if p.opts.Retention == nil {
		return
	}
	n, err := p.Prune(ctx)
	if err != nil {
		p.log.Warn("mailbox retention failed; publishing is not affected", "error", err)
		return
	}
	if n > 0 {
		p.log.Info("deleted old ipsync messages", "count", n, "mailbox", p.opts.Retention.Mailbox)
	}
}

// Prune deletes this server's older messages from the retention mailbox,
// keeping the newest RetentionOptions.KeepMessages, and returns how many it
// deleted. A message is this server's only if its NameHeader equals
// Options.Name and its subject equals the configured subject, both
// exactly; no other mail is touched. Deletion uses UID EXPUNGE where the
// server supports it (UIDPLUS); otherwise plain EXPUNGE, but only when no
// other message in the mailbox is marked \Deleted (else the messages stay
// marked and the next session retries). It blocks for one IMAP session,
// bounded by ctx and RetentionOptions.Timeout. Safe for concurrent use,
// though concurrent sessions are pointless.
func (p *Publisher) Prune(ctx context.Context) (int, error) {
	r := p.opts.Retention
	if r == nil {
		return 0, ErrRetentionOff
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.Timeout, errRetentionTimeout)
	defer cancel()
	n, err := p.pruneSession(ctx, r)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	if err != nil {
		return n, fmt.Errorf("mailbox retention on %s: %w", r.IMAP.Addr(), err)
	}
	return n, nil
}

func (p *Publisher) pruneSession(ctx context.Context, r *RetentionOptions) (int, error) {
	c, err := mailconn.DialIMAP(ctx, r.IMAP, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	// go-imap has no ctx: closing the connection unblocks any command.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if err := c.Login(r.Username, r.Password).Wait(); err != nil {
		return 0, fmt.Errorf("log in as %s: %w", r.Username, err)
	}
	if _, err := c.Select(r.Mailbox, nil).Wait(); err != nil {
		return 0, fmt.Errorf("select mailbox %q: %w", r.Mailbox, err)
	}
	n, err := p.pruneMailbox(c, r)
	if err != nil {
		return n, err
	}
	if err := c.Logout().Wait(); err != nil {
		p.log.Debug("imap logout failed", "error", err)
	}
	return n, nil
}

func (p *Publisher) pruneMailbox(c *imapclient.Client, r *RetentionOptions) (int, error) {
	// SEARCH HEADER matches substrings, so the candidates are checked
	// exactly below before anything is deleted.
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{
			{Key: NameHeader, Value: p.opts.Name},
			{Key: "Subject", Value: p.opts.Subject},
		},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search own messages: %w", err)
	}
	candidates := found.AllUIDs()
	if len(candidates) <= r.KeepMessages {
		return 0, nil
	}
	ours, err := p.exactlyOurs(c, candidates)
	if err != nil {
		return 0, err
	}
	if len(ours) <= r.KeepMessages {
		return 0, nil
	}
	// UIDs grow with arrival, so the lowest are the oldest.
	slices.Sort(ours)
	doomed := ours[:len(ours)-r.KeepMessages]
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
			p.log.Warn("server lacks UIDPLUS and the mailbox holds other messages marked deleted; "+
				"old ipsync messages stay marked \\Deleted instead of expunging someone else's mail",
				"mailbox", r.Mailbox, "marked", len(doomed))
			return 0, nil
		}
	}
	if err := c.Expunge().Close(); err != nil {
		return 0, fmt.Errorf("expunge old messages: %w", err)
	}
	return len(doomed), nil
}

// exactlyOurs fetches the subject and name headers of uids and returns those
// whose values equal this server's exactly.
func (p *Publisher) exactlyOurs(c *imapclient.Client, uids []imap.UID) ([]imap.UID, error) {
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
		subject, err1 := dec.DecodeHeader(msg.Header.Get("Subject"))
		name, err2 := dec.DecodeHeader(msg.Header.Get(NameHeader))
		if err1 != nil || err2 != nil {
			continue
		}
		if strings.TrimSpace(subject) == p.opts.Subject && strings.TrimSpace(name) == p.opts.Name && m.UID != 0 {
			ours = append(ours, m.UID)
		}
	}
	return ours, nil
}
