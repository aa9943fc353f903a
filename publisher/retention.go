package publisher

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"ipsync/codec"
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

// prune runs retention if configured, records the bounces it found and
// logs a failure; failures never reach the publishing path.
func (p *Publisher) prune(ctx context.Context) {
	if p.opts.Pruner == nil {
		return
	}
	if _, err := p.Prune(ctx); err != nil {
		p.log.Warn("mailbox retention failed; publishing is not affected", "err", err)
	}
}

// Prune has Options.Pruner delete this server's older messages (those it
// proves its own) and the bounce reports about its messages, records the
// bounces as recipient problems (Status.Recipients), and returns how many
// of its own messages it deleted, or ErrRetentionOff without a Pruner. It
// blocks for one retention session.
func (p *Publisher) Prune(ctx context.Context) (int, error) {
	if p.opts.Pruner == nil {
		return 0, ErrRetentionOff
	}
	p.mu.Lock()
	if p.pruneAuth.blocked(p.now()) {
		err := fmt.Errorf("not logging in again before %s: %w", p.pruneAuth.until.Format(time.RFC3339), p.pruneErr)
		p.mu.Unlock()
		return 0, err
	}
	sent := slices.Clone(p.rec.SentIDs)
	p.mu.Unlock()
	res, err := p.opts.Pruner.Prune(ctx, PruneRequest{Name: p.opts.Name, Subject: p.opts.Subject, Sent: sent})
	if err != nil && ctx.Err() != nil {
		return 0, err // shutting down: not a failure worth showing
	}
	p.mu.Lock()
	p.pruneErr = err
	switch {
	case err == nil:
		p.pruneAuth.reset()
	case errors.Is(err, ErrAuthRefused):
		until := p.pruneAuth.refused(p.now(), 0)
		p.log.Error("imap server refused the password for mailbox retention; not logging in again before retry_at",
			"retry_at", until, "err", err)
	}
	p.mu.Unlock()
	if err == nil {
		p.bounced(res.Bounces, sent)
	} else {
		p.changed()
	}
	return res.Deleted, err
}

// RetentionOptions configures an [IMAPPruner]. The zero value of each field
// means its default; IMAP and Auth are required.
type RetentionOptions struct {
	// IMAP is the mailbox server of the From account.
	IMAP mailconn.Endpoint
	// Auth signs in to IMAP at each session (mailconn.Auth.IMAP: a
	// password or an OAuth2 token). Required, with a user name.
	Auth mailconn.Auth
	// Mailbox holds the published messages; "" means INBOX.
	Mailbox string
	// KeepMessages is how many of the server's newest messages (by
	// sequence number) to keep; 0 means DefaultKeepMessages. To turn
	// retention off, hand the publisher no Pruner.
	KeepMessages int
	// Open proves a message body the server's own: it opens and verifies
	// it with the server's key (codec.Open with the server key's
	// ClientKey: the server can open what it sealed) and returns the
	// payload. Retention deletes only messages Open accepts with this
	// server's name, and counts only those toward KeepMessages; anyone can
	// copy the subject and name header, no one else can sign. Required:
	// the legacy format has no signature, so it gets no retention.
	Open func(body string) (codec.Payload, error)
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

	mu    sync.Mutex // guards known
	known verdicts   // what earlier sessions proved, so nothing is downloaded twice
}

// verdicts are the proofs of earlier sessions: by UID, the sequence number
// of a message proven the server's own, or 0 for one that is not. They
// hold for one mailbox state (UIDVALIDITY) and one name and subject.
type verdicts struct {
	validity      uint32
	name, subject string
	seq           map[imap.UID]uint64
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
	if o.Auth.IsZero() || o.Auth.User() == "" {
		return o, errors.New("retention imap username is empty")
	}
	if o.Open == nil {
		return o, errors.New("retention has no way to verify its own messages (it needs the sealed format's server key)")
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
// newest RetentionOptions.KeepMessages by sequence number, and returns how
// many it deleted. A message is the server's only if its subject and
// NameHeader equal subject and name exactly, it is at most maxOwnSize
// bytes, and its body opens with RetentionOptions.Open, signed by this
// server, with this name; no other mail is touched or counted, so forged
// copies of the headers can neither be deleted nor push a genuine message
// out. Of several copies of one sequence number (a replay) one is kept.
// Deletion uses UID EXPUNGE where the server supports it (UIDPLUS);
// otherwise plain EXPUNGE, but only when no other message in the mailbox is
// marked \Deleted (else the messages stay marked and the next session
// retries). It blocks for one IMAP session, bounded by ctx and
// RetentionOptions.Timeout.
func (r *IMAPPruner) Prune(ctx context.Context, req PruneRequest) (PruneResult, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.Timeout, errRetentionTimeout)
	defer cancel()
	res, err := r.session(ctx, req)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
	}
	if err != nil {
		return res, fmt.Errorf("mailbox retention on %s: %w", r.opts.IMAP.Addr(), err)
	}
	if res.Deleted > 0 || res.Reports > 0 {
		r.opts.Logger.Info("deleted old ipsync messages", "count", res.Deleted,
			"bounce_reports", res.Reports, "mailbox", r.opts.Mailbox)
	}
	return res, nil
}

func (r *IMAPPruner) session(ctx context.Context, req PruneRequest) (PruneResult, error) {
	o := r.opts
	// A token source that needs a new sign-in says so before the server
	// is dialled.
	if err := o.Auth.Ready(ctx); err != nil {
		return PruneResult{}, err
	}
	c, err := mailconn.DialIMAP(ctx, o.IMAP, nil)
	if err != nil {
		return PruneResult{}, err
	}
	defer c.Close()
	// go-imap has no ctx: closing the connection unblocks any command.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	// Auth.IMAP wraps a refusal in ErrAuthRefused (with the server's
	// *imap.Error).
	if err := o.Auth.IMAP(ctx, c); err != nil {
		if errors.Is(err, ErrAuthRefused) {
			return PruneResult{}, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		return PruneResult{}, err
	}
	sel, err := c.Select(o.Mailbox, nil).Wait()
	if err != nil {
		return PruneResult{}, fmt.Errorf("select mailbox %q: %w", o.Mailbox, err)
	}
	r.mu.Lock()
	k := r.known
	r.mu.Unlock()
	if k.validity != sel.UIDValidity || k.name != req.Name || k.subject != req.Subject || k.seq == nil {
		k = verdicts{validity: sel.UIDValidity, name: req.Name, subject: req.Subject, seq: map[imap.UID]uint64{}}
	}
	res, err := r.pruneMailbox(c, req, k.seq)
	r.mu.Lock()
	r.known = k
	r.mu.Unlock()
	if err != nil {
		return res, err
	}
	if err := c.Logout().Wait(); err != nil {
		o.Logger.Debug("imap logout failed", "err", err)
	}
	return res, nil
}

func (r *IMAPPruner) pruneMailbox(c *imapclient.Client, req PruneRequest, known map[imap.UID]uint64) (PruneResult, error) {
	var res PruneResult
	bounces, reports, err := r.bounces(c, req.Sent)
	if err != nil {
		// Retention of the server's own messages goes on without them.
		r.opts.Logger.Warn("could not look for bounce reports", "err", err)
	}
	res.Bounces = bounces
	doomed, err := r.doomedOwn(c, req.Name, req.Subject, known)
	if err != nil {
		return res, err
	}
	all := slices.Concat(doomed, reports)
	if len(all) == 0 {
		return res, nil
	}
	n, err := r.expunge(c, all)
	if err != nil || n == 0 {
		return res, err
	}
	res.Deleted, res.Reports = len(doomed), len(reports)
	return res, nil
}

// doomedOwn returns the UIDs of the server's own messages that retention
// deletes: proven its own and older than the newest KeepMessages.
func (r *IMAPPruner) doomedOwn(c *imapclient.Client, name, subject string, known map[imap.UID]uint64) ([]imap.UID, error) {
	keep := r.opts.KeepMessages
	// SEARCH HEADER matches substrings, and anyone can write these
	// headers: the candidates are proven below before anything is
	// counted or deleted.
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{
			{Key: NameHeader, Value: name},
			{Key: "Subject", Value: subject},
		},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("search own messages: %w", err)
	}
	candidates := found.AllUIDs()
	if len(candidates) <= keep {
		return nil, nil
	}
	ours, err := r.provenOurs(c, candidates, name, subject, known)
	if err != nil {
		return nil, err
	}
	doomed := doomedOf(ours, keep)
	for _, uid := range doomed {
		delete(known, uid)
	}
	return doomed, nil
}

// expunge deletes the messages doomed and returns how many it deleted: 0
// when they stay marked \Deleted because the server lacks UIDPLUS and
// other messages are marked too.
func (r *IMAPPruner) expunge(c *imapclient.Client, doomed []imap.UID) (int, error) {
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

// Bounds of one retention session's proof work.
const (
	// maxOwnSize: a sealed message is about 1 KiB; anything larger is not
	// one of ours and is not downloaded.
	maxOwnSize = 8 << 10
	// maxExamined: at most this many candidates (the newest by UID) are
	// downloaded per session, so a flood of forged headers costs bounded
	// work. Deleting only among them is still safe: anything deleted is
	// below KeepMessages genuine messages that are kept.
	maxExamined = 2000
	// fetchBatch: candidates fetched per FETCH command.
	fetchBatch = 200
)

// owned is a message proven to be the server's own.
type owned struct {
	uid imap.UID
	seq uint64
}

// provenOurs downloads the candidates (newest first, at most maxExamined,
// none larger than maxOwnSize) and returns those that are exactly ours: the
// subject and name header equal, and the body opens with Options.Open as a
// payload of this name. known holds the verdicts of earlier sessions by
// UID (0: not ours); they are reused, the new ones added, and those of
// messages that are gone dropped, so each message is downloaded once.
func (r *IMAPPruner) provenOurs(c *imapclient.Client, uids []imap.UID, name, subject string, known map[imap.UID]uint64) ([]owned, error) {
	slices.Sort(uids)
	slices.Reverse(uids)
	uids = uids[:min(len(uids), maxExamined)]
	var ours []owned
	var unproven int
	var fresh []imap.UID
	for _, uid := range uids {
		seq, ok := known[uid]
		switch {
		case !ok:
			fresh = append(fresh, uid)
		case seq == 0:
			unproven++
		default:
			ours = append(ours, owned{uid: uid, seq: seq})
		}
	}
	current := make(map[imap.UID]bool, len(uids))
	for _, uid := range uids {
		current[uid] = true
	}
	maps.DeleteFunc(known, func(uid imap.UID, _ uint64) bool { return !current[uid] })
	if len(fresh) > 0 {
		sizes, err := c.Fetch(imap.UIDSetNum(fresh...), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		if err != nil {
			return nil, fmt.Errorf("fetch sizes of %d candidate messages: %w", len(fresh), err)
		}
		var small []imap.UID
		for _, m := range sizes {
			if m.UID != 0 && m.RFC822Size > 0 && m.RFC822Size <= maxOwnSize {
				small = append(small, m.UID)
			} else if m.UID != 0 {
				known[m.UID] = 0
				unproven++
			}
		}
		section := &imap.FetchItemBodySection{Peek: true}
		for batch := range slices.Chunk(small, fetchBatch) {
			msgs, err := c.Fetch(imap.UIDSetNum(batch...), &imap.FetchOptions{
				UID:         true,
				BodySection: []*imap.FetchItemBodySection{section},
			}).Collect()
			if err != nil {
				return nil, fmt.Errorf("fetch %d candidate messages: %w", len(batch), err)
			}
			for _, m := range msgs {
				seq, ok := r.proveOwn(m.FindBodySection(section), name, subject)
				if !ok {
					known[m.UID] = 0
					unproven++
					continue
				}
				known[m.UID] = seq
				ours = append(ours, owned{uid: m.UID, seq: seq})
			}
		}
	}
	if unproven > 0 {
		r.opts.Logger.Info("mailbox holds messages with this server's subject and name that it did not sign; "+
			"retention leaves them alone", "unproven", unproven, "mailbox", r.opts.Mailbox)
	}
	return ours, nil
}

// proveOwn reports whether raw is one of the server's messages, and its
// sequence number.
func (r *IMAPPruner) proveOwn(raw []byte, name, subject string) (uint64, bool) {
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		return 0, false
	}
	h := mail.Header{Header: e.Header}
	gotSubject, err1 := h.Subject()
	gotName, err2 := h.Text(NameHeader)
	if err1 != nil || err2 != nil || strings.TrimSpace(gotSubject) != subject || strings.TrimSpace(gotName) != name {
		return 0, false
	}
	if ct := e.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := e.Header.ContentType(); err != nil || mt != "text/plain" {
			return 0, false
		}
	}
	body, err := io.ReadAll(io.LimitReader(e.Body, maxOwnSize))
	if err != nil {
		return 0, false
	}
	p, err := r.opts.Open(string(body))
	if err != nil || p.Name != name {
		return 0, false
	}
	return p.Seq, true
}

// doomedOf returns the UIDs retention deletes from ours: all but the keep
// highest sequence numbers, and every extra copy of those (the lowest UID
// of each is kept).
func doomedOf(ours []owned, keep int) []imap.UID {
	slices.SortFunc(ours, func(a, b owned) int {
		if c := cmp.Compare(b.seq, a.seq); c != 0 {
			return c
		}
		return cmp.Compare(a.uid, b.uid)
	})
	var doomed []imap.UID
	kept := 0
	for i, m := range ours {
		if i > 0 && ours[i-1].seq == m.seq { // a copy of the one before
			doomed = append(doomed, m.uid)
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		doomed = append(doomed, m.uid)
	}
	slices.Sort(doomed)
	return doomed
}
