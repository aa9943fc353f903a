// Package fetcher is the client role of ipsync: it watches a mailbox over
// IMAP for address messages from one server and reports the newest one.
//
// The mailbox is opened read-only (EXAMINE): a client never changes flags or
// deletes mail. It shows the valid message with the highest sequence number
// (opens and verifies, names the configured server, not dated more than
// MaxFuture ahead), never the newest by UID, since anyone can append junk or
// a replayed old message. A scan searches UID windows growing down from
// UIDNEXT for small messages with the subject (SEARCH SUBJECT … SMALLER …),
// reads candidates in batched UID FETCHes (text, size and INTERNALDATE in
// one), and stops below a valid message delivered on time, using the
// arrival slack of docs/protocol.md §4.2. Examined UIDs are kept as ranges
// per UIDVALIDITY, so no message is downloaded twice; rejections that depend
// on this client (its keys, its name, its clock) are held and read again
// when that changes. When the mailbox holds messages for this client but
// none it can accept, Update.Problem and Result.Problem say why.
//
// Run watches the mailbox: IMAP IDLE where the server advertises it
// (re-issued every IdleRefresh with a NOOP check), polling otherwise, and
// short poll sessions on a shared mailbox whose connection limit is reached
// (Idle auto). It reconnects with backoff (a refused password backs off to
// hours), tracks staleness and an optional TCP probe, persists the last
// accepted message and reports Updates to a Consumer. FetchOnce, Check and
// CheckNewest serve the one-shot CLI verbs.
package fetcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"ipsync/codec"
	"ipsync/statefile"
)

// ErrNoMessage is returned by FetchOnce when the mailbox holds no valid
// message for the configured server (and none was accepted before).
var ErrNoMessage = errors.New("no valid ipsync message in the mailbox")

// Fetcher reads one server's address messages from one mailbox.
// FetchNow may be called from any goroutine; Run, FetchOnce and Check may
// run concurrently but Run must not be called twice at the same time.
type Fetcher struct {
	o   Options
	log *slog.Logger

	fetchNow chan struct{} // FetchNow requests, coalesced
	exists   chan struct{} // new-mail signals from IDLE, coalesced

	loadOnce     sync.Once
	legacyWarned sync.Once

	mu sync.Mutex
	st saved

	hookMu  sync.Mutex // one on_change command at a time
	hookGen uint64     // on_change requests so far; guarded by mu
	bg      sync.WaitGroup
}

// New checks opts and returns a Fetcher. It does no I/O.
func New(opts Options) (*Fetcher, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Fetcher{
		o:        o,
		log:      o.Logger,
		fetchNow: make(chan struct{}, 1),
		exists:   make(chan struct{}, 1),
	}, nil
}

// FetchNow asks a running Run to read the mailbox at once. It never blocks;
// calls made while a request is pending are merged into it.
func (f *Fetcher) FetchNow() {
	select {
	case f.fetchNow <- struct{}{}:
	default:
	}
}

func (f *Fetcher) account() string {
	return f.o.Auth.User() + "@" + f.o.IMAP.Addr() + "/" + f.o.Mailbox
}

// loadState reads the state file once. A missing or unreadable file means
// an empty state (logged).
func (f *Fetcher) loadState() {
	f.loadOnce.Do(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.st = saved{Version: stateVersion, Account: f.account()}
		if f.o.StatePath == "" {
			return
		}
		var st saved
		ok, err := statefile.Load(f.o.StatePath, &st)
		if err != nil {
			f.log.Warn("cannot read the fetcher state; starting without a last known address", "path", f.o.StatePath, "err", err)
			return
		}
		if !ok {
			return
		}
		if st.Accepted != nil && st.Accepted.Name != f.o.Name {
			st.Accepted = nil
		}
		if st.Account != f.account() || st.Version != stateVersion {
			// Another mailbox, or a version 1 file whose seen bound may
			// hide messages: keep the last known address only.
			st = saved{Accepted: st.Accepted, Format: st.Format, ReceivedAt: st.ReceivedAt}
		}
		st.Version, st.Account = stateVersion, f.account()
		f.st = st
	})
}

// saveLocked writes the state file; f.mu is held. A failure (disk full) is
// logged and the in-memory state stays.
func (f *Fetcher) saveLocked() {
	if f.o.StatePath == "" {
		return
	}
	// Under the state file's lock, as the server's state: other ipsync
	// processes may share the file. f.mu is held, so a process that keeps
	// the lock (suspended, a hung disk) may delay this by OpTimeout at most.
	ctx, cancel := context.WithTimeout(context.Background(), f.o.OpTimeout)
	defer cancel()
	if err := statefile.SaveLocked(ctx, f.o.StatePath, f.st); err != nil {
		f.log.Error("cannot save the fetcher state", "path", f.o.StatePath, "err", err)
	}
}

// acceptLocked makes b the accepted message unless another scan
// (FetchOnce beside Run) accepted a newer one; f.mu is held.
func (f *Fetcher) acceptLocked(b *judgement, out scanOutcome) scanOutcome {
	st := &f.st
	old := st.Accepted
	if old != nil && f.o.Format != codec.FormatLegacy && b.p.Seq <= old.Seq {
		return out
	}
	prev := old.payload()
	st.Accepted = toSaved(b.p)
	st.AcceptedUID = b.uid
	st.Format = f.o.Format
	st.ReceivedAt = f.o.Clock.Now()
	st.Rejected.dropUpTo(b.uid)
	st.Future = slices.DeleteFunc(st.Future, func(m futureMessage) bool { return m.Seq <= b.p.Seq })
	f.log.Debug("accepted message", "uid", b.uid, "name", b.p.Name, "ipv4", b.p.IPv4, "ipv6", b.p.IPv6, "seq", b.p.Seq, "issued_at", b.p.IssuedAt)
	out.Accepted = true
	out.Payload = b.p
	out.Previous = prev
	out.Changed = old == nil || prev.IPv4 != b.p.IPv4 || prev.IPv6 != b.p.IPv6
	return out
}

// judge applies the acceptance rules to one message at time now.
func (f *Fetcher) judge(m rawMessage, last *codec.Payload, now time.Time) judgement {
	j := judgement{uid: m.UID, arrived: m.InternalDate, verdict: junk}
	if m.Body == nil {
		j.reason = fmt.Sprintf("message of %d bytes is over the %d-byte limit", m.Size, f.o.MaxSize)
		return j
	}
	mt, err := decodeMail(m.Body)
	if errors.Is(err, errNoText) {
		j.reason = "message has no text/plain part (HTML-only mail is not read)"
		return j
	}
	if err != nil {
		j.reason = "malformed mail: " + err.Error()
		return j
	}
	p, err := f.o.Decode(mt.Text)
	if err != nil {
		j.reason = "message does not open: " + strings.TrimPrefix(err.Error(), "open: ")
		if errors.Is(err, codec.ErrWrongKey) {
			j.verdict = otherKey
			j.keyID, _ = codec.MessageKeyID(mt.Text)
		}
		return j
	}
	if f.o.Format == codec.FormatLegacy {
		if p.Name == "" {
			p.Name = f.o.Name
		}
		for _, t := range []time.Time{mt.Date, m.InternalDate, now} {
			if p.IssuedAt.IsZero() {
				p.IssuedAt = t
			}
		}
	}
	j.p = p
	switch {
	case !p.IPv4.IsValid() && !p.IPv6.IsValid():
		j.reason = "message carries no address"
	case p.Name != f.o.Name:
		j.verdict = otherName
		j.reason = fmt.Sprintf("message names server %q, not %q", p.Name, f.o.Name)
	case p.IssuedAt.After(now.Add(f.o.MaxFuture)):
		j.verdict = future
		j.reason = fmt.Sprintf("message is dated %s, %s in the future (more than %s)", p.IssuedAt.UTC().Format(time.RFC3339), p.IssuedAt.Sub(now).Round(time.Second), f.o.MaxFuture)
	case last == nil:
		j.verdict = valid
	case f.o.Format == codec.FormatLegacy && p.IssuedAt.Before(last.IssuedAt):
		j.verdict = notNewer
		j.reason = fmt.Sprintf("message is dated %s, before the last accepted one (%s)", p.IssuedAt.UTC().Format(time.RFC3339), last.IssuedAt.UTC().Format(time.RFC3339))
	case f.o.Format != codec.FormatLegacy && p.Seq <= last.Seq:
		j.verdict = notNewer
		j.reason = fmt.Sprintf("sequence %d is not newer than the last accepted %d (replayed or reordered)", p.Seq, last.Seq)
	default:
		j.verdict = valid
	}
	return j
}

// snapshot returns the last accepted payload (ok false if none), its format
// and when it was received.
func (f *Fetcher) snapshot() (p codec.Payload, format codec.Format, received time.Time, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.Accepted == nil {
		return codec.Payload{}, "", time.Time{}, false
	}
	return f.st.Accepted.payload(), f.st.Format, f.st.ReceivedAt, true
}

// connect dials, logs in and examines the mailbox.
func (f *Fetcher) connect(ctx context.Context, exists chan<- struct{}) (*session, error) {
	s, err := dial(ctx, &f.o, exists)
	if err != nil {
		return nil, err
	}
	if err := s.examine(ctx, f.o.Mailbox); err != nil {
		s.c.Close()
		return nil, err
	}
	return s, nil
}

// FetchOnce connects, reads the mailbox until every candidate not
// examined before is judged (in rounds of Options.RoundBytes), logs out and
// returns the newest valid message. Without a newer message it returns the
// last accepted one from the state file. With Result.Problem set, the
// address is only the last known one (see Update.Problem). With no message
// ever accepted it returns ErrNoMessage, and a Result carrying the Name
// and any Problem. A refused login wraps ErrAuthRefused, an OAuth2
// sign-in the provider no longer accepts ErrSignInNeeded; any other error
// is a mail or network failure. It saves the state file like Run.
func (f *Fetcher) FetchOnce(ctx context.Context) (Result, error) {
	f.loadState()
	s, err := f.connect(ctx, nil)
	if err != nil {
		return Result{}, fmt.Errorf("fetch: %w", err)
	}
	defer s.logout(ctx)
	for {
		out, err := f.scan(ctx, s)
		if err != nil {
			return Result{}, fmt.Errorf("fetch: %w", err)
		}
		if out.Complete {
			break
		}
	}
	if err := f.probeOtherNames(ctx, s); err != nil {
		return Result{}, fmt.Errorf("fetch: %w", err)
	}
	now := f.o.Clock.Now()
	f.mu.Lock()
	problem := f.problemLocked(now)
	f.mu.Unlock()
	if problem != "" {
		f.log.Warn("no current address for this client", "problem", problem)
	}
	p, format, _, ok := f.snapshot()
	if !ok {
		return Result{Name: f.o.Name, Problem: problem}, ErrNoMessage
	}
	return Result{
		Name:      p.Name,
		IPv4:      p.IPv4,
		IPv6:      p.IPv6,
		Seq:       p.Seq,
		IssuedAt:  p.IssuedAt,
		Age:       now.Sub(p.IssuedAt),
		Format:    format,
		Heartbeat: p.Heartbeat,
		Problem:   problem,
	}, nil
}

// Check logs in, examines the mailbox and logs out: the `ipsync check`
// test of the IMAP settings.
func (f *Fetcher) Check(ctx context.Context) error {
	s, err := f.connect(ctx, nil)
	if err != nil {
		return fmt.Errorf("check imap: %w", err)
	}
	s.logout(ctx)
	return nil
}
