// Package fetcher is the client role of ipsync: it watches a mailbox over
// IMAP for the newest valid address message from one server and reports it.
//
// The mailbox is opened read-only (EXAMINE): a client never changes flags or
// deletes mail. One fetch costs the same whatever the mailbox holds: a UID
// SEARCH restricted to the configured subject and to UIDs above the last one
// seen (ESEARCH RETURN (MAX) where advertised, otherwise small UID windows
// below UIDNEXT), then the size and, if at most MaxSize, the text
// (BODY.PEEK[]) of the newest candidate only; up to MaxTries candidates are
// tried, newest first. The text/plain part is decoded (quoted-printable,
// base64, multipart) and opened by the codec. A message is accepted when it
// opens and verifies, names the configured server, has a sequence newer than
// the last accepted one and is not dated more than MaxFuture ahead. Every
// rejected message is logged once with the reason and never replaces the
// last good address.
//
// Run watches the mailbox: IMAP IDLE where the server advertises it
// (re-issued every IdleRefresh with a NOOP check), polling otherwise, and
// short poll sessions on a shared mailbox whose connection limit is reached
// (Idle auto). It reconnects with backoff, tracks staleness and an optional
// TCP probe, persists the last accepted message and reports Updates to a
// Consumer. FetchOnce and Check serve the one-shot CLI verbs.
package fetcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

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

	mu       sync.Mutex
	st       saved
	rejected map[uint64]struct{} // uidValidity<<32 | uid, logged already

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
		rejected: make(map[uint64]struct{}),
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
	return f.o.Username + "@" + f.o.IMAP.Addr() + "/" + f.o.Mailbox
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
		if st.Account != f.account() {
			st.SeenUID, st.UIDValidity = 0, 0
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
	// processes may share the file.
	if err := statefile.SaveLocked(context.Background(), f.o.StatePath, f.st); err != nil {
		f.log.Error("cannot save the fetcher state", "path", f.o.StatePath, "err", err)
	}
}

// scanOutcome is what one scan of the mailbox found.
type scanOutcome struct {
	Accepted bool
	Payload  codec.Payload // accepted payload
	Previous codec.Payload // accepted before it (zero if none)
	Changed  bool          // address differs from Previous (or first)
}

// scan finds the newest acceptable message above the seen-UID bound and
// records it. s has the mailbox examined.
func (f *Fetcher) scan(ctx context.Context, s *session) (scanOutcome, error) {
	var out scanOutcome
	if f.o.Format == codec.FormatLegacy {
		f.legacyWarned.Do(func() {
			f.log.Warn("legacy message format: it is NOT authenticated, anyone able to mail this mailbox can forge the address")
		})
	}
	f.mu.Lock()
	if f.st.UIDValidity != s.uidValidity {
		if f.st.UIDValidity != 0 {
			f.log.Info("mailbox UIDVALIDITY changed; reading it afresh", "old", f.st.UIDValidity, "new", s.uidValidity)
		}
		f.st.SeenUID, f.st.UIDValidity = 0, s.uidValidity
		f.st.ExaminedLo, f.st.ExaminedHi = 0, 0
		clear(f.rejected)
	}
	lastSeen := imap.UID(f.st.SeenUID)
	// Candidates in [skipLo, skipHi] were examined (and rejected) by an
	// earlier scan that ran out of tries.
	skipLo, skipHi := imap.UID(f.st.ExaminedLo), imap.UID(f.st.ExaminedHi)
	if skipLo <= lastSeen || skipHi < skipLo {
		skipLo, skipHi = 0, 0
	}
	var last *codec.Payload
	if f.st.Accepted != nil {
		p := f.st.Accepted.payload()
		last = &p
	}
	f.mu.Unlock()

	// Candidates come newest first, so those examined (read and judged, or
	// rejected before) form one run, [low, top], that takes in the skipped
	// run once the cursor has passed below it. Only when every candidate
	// above the seen bound was examined, or one was accepted, may the bound
	// move up to top; when the tries run out first, the bound stays and the
	// run is remembered, so that the next scan goes on below it: junk mail
	// sent after a genuine message cannot hide it.
	cur := newCursor(s, f.o.Subject, lastSeen, skipLo, skipHi)
	var top, low imap.UID
	examine := func(uid imap.UID) {
		top = max(top, uid)
		if low == 0 || uid < low {
			low = uid
		}
	}
	var accepted *codec.Payload
	complete := false // every candidate was examined, or one accepted
	for tries, skips := 0, 0; tries < f.o.MaxTries && skips < maxSkips; {
		uid, ok, err := cur.next(ctx)
		if err != nil {
			return out, err
		}
		if !ok {
			complete = true
			break
		}
		if f.wasRejected(s.uidValidity, uid) {
			// Read and judged before: no FETCH, and not a try.
			skips++
			examine(uid)
			continue
		}
		tries++
		m, err := s.read(ctx, uid, f.o.MaxSize)
		if errors.Is(err, errGone) {
			// Expunged, or appended so recently that this session has not
			// been told yet (a search may see it, a fetch not): leave it
			// above the seen bound for the next scan.
			continue
		}
		if err != nil {
			return out, err
		}
		examine(uid)
		p, reason := f.judge(m, last)
		if reason != "" {
			f.reject(s.uidValidity, uid, reason)
			continue
		}
		accepted = &p
		complete = true
		f.log.Debug("accepted message", "uid", uid, "name", p.Name, "ipv4", p.IPv4, "ipv6", p.IPv6, "seq", p.Seq, "issued_at", p.IssuedAt)
		break
	}
	passedSkip := skipLo != 0 && (complete || (low != 0 && low < skipLo))
	if passedSkip {
		top = max(top, skipHi)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	dirty := false
	if f.st.UIDValidity == s.uidValidity {
		switch {
		case complete && uint32(top) > f.st.SeenUID:
			f.st.SeenUID = uint32(top)
			f.st.ExaminedLo, f.st.ExaminedHi = 0, 0
			dirty = true
		case !complete && low != 0 && f.st.SeenUID == uint32(lastSeen):
			lo := low
			if passedSkip {
				lo = min(lo, skipLo)
			}
			if f.st.ExaminedLo != uint32(lo) || f.st.ExaminedHi != uint32(top) {
				f.st.ExaminedLo, f.st.ExaminedHi = uint32(lo), uint32(top)
				dirty = true
			}
			f.log.Info("no valid message among the newest candidates; the next check goes on below them",
				"tries", f.o.MaxTries, "examined_uids", fmt.Sprintf("%d:%d", lo, top))
		}
	}
	if accepted != nil {
		// Another scan (FetchOnce beside Run) may have accepted a newer one.
		if old := f.st.Accepted; old == nil || f.o.Format == codec.FormatLegacy || accepted.Seq > old.Seq {
			prev := f.st.Accepted.payload()
			f.st.Accepted = toSaved(*accepted)
			f.st.Format = f.o.Format
			f.st.ReceivedAt = f.o.Clock.Now()
			out = scanOutcome{
				Accepted: true,
				Payload:  *accepted,
				Previous: prev,
				Changed:  old == nil || prev.IPv4 != accepted.IPv4 || prev.IPv6 != accepted.IPv6,
			}
			dirty = true
		}
	}
	if dirty {
		f.saveLocked()
	}
	return out, nil
}

// judge applies the acceptance rules to one message; it returns the payload
// or the reason for rejecting it.
func (f *Fetcher) judge(m rawMessage, last *codec.Payload) (codec.Payload, string) {
	if m.Body == nil {
		return codec.Payload{}, fmt.Sprintf("message of %d bytes is over the %d-byte limit", m.Size, f.o.MaxSize)
	}
	mt, err := decodeMail(m.Body)
	if errors.Is(err, errNoText) {
		return codec.Payload{}, "message has no text/plain part (HTML-only mail is not read)"
	}
	if err != nil {
		return codec.Payload{}, "malformed mail: " + err.Error()
	}
	p, err := f.o.Decode(mt.Text)
	if err != nil {
		return codec.Payload{}, "message does not open: " + err.Error()
	}
	now := f.o.Clock.Now()
	if f.o.Format == codec.FormatLegacy {
		if p.Name == "" {
			p.Name = f.o.Name
		}
		if p.IssuedAt.IsZero() {
			p.IssuedAt = mt.Date
		}
		if p.IssuedAt.IsZero() {
			p.IssuedAt = m.InternalDate
		}
		if p.IssuedAt.IsZero() {
			p.IssuedAt = now
		}
	}
	switch {
	case p.Name != f.o.Name:
		return p, fmt.Sprintf("message names server %q, not %q", p.Name, f.o.Name)
	case !p.IPv4.IsValid() && !p.IPv6.IsValid():
		return p, "message carries no address"
	case p.IssuedAt.After(now.Add(f.o.MaxFuture)):
		return p, fmt.Sprintf("message is dated %s, more than %s in the future", p.IssuedAt.UTC().Format(time.RFC3339), f.o.MaxFuture)
	case last == nil:
	case f.o.Format == codec.FormatLegacy && p.IssuedAt.Before(last.IssuedAt):
		return p, fmt.Sprintf("message is dated %s, before the last accepted one (%s)", p.IssuedAt.UTC().Format(time.RFC3339), last.IssuedAt.UTC().Format(time.RFC3339))
	case f.o.Format != codec.FormatLegacy && p.Seq <= last.Seq:
		return p, fmt.Sprintf("sequence %d is not newer than the last accepted %d (replayed or reordered)", p.Seq, last.Seq)
	}
	return p, ""
}

const maxRejectedRemembered = 4096

// maxSkips bounds how many candidates rejected before one scan passes over
// (one search each with ESEARCH) before it stops as if out of tries.
const maxSkips = 64

// wasRejected reports whether uid was rejected before (and so is not read
// again).
func (f *Fetcher) wasRejected(uidValidity uint32, uid imap.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.rejected[uint64(uidValidity)<<32|uint64(uid)]
	return ok
}

// reject logs a rejected message once per UID.
func (f *Fetcher) reject(uidValidity uint32, uid imap.UID, reason string) {
	key := uint64(uidValidity)<<32 | uint64(uid)
	f.mu.Lock()
	_, seen := f.rejected[key]
	if !seen {
		if len(f.rejected) >= maxRejectedRemembered {
			clear(f.rejected)
		}
		f.rejected[key] = struct{}{}
	}
	f.mu.Unlock()
	if !seen {
		f.log.Warn("rejected message", "uid", uid, "reason", reason)
	}
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

// FetchOnce connects, reads the newest valid message, logs out and returns
// it. Without a newer message it returns the last accepted one from the
// state file; with none at all it returns ErrNoMessage. Any other error is
// a mail or network failure. It saves the state file like Run.
func (f *Fetcher) FetchOnce(ctx context.Context) (Result, error) {
	f.loadState()
	s, err := f.connect(ctx, nil)
	if err != nil {
		return Result{}, fmt.Errorf("fetch: %w", err)
	}
	defer s.logout(ctx)
	if _, err := f.scan(ctx, s); err != nil {
		return Result{}, fmt.Errorf("fetch: %w", err)
	}
	p, format, _, ok := f.snapshot()
	if !ok {
		return Result{}, ErrNoMessage
	}
	return Result{
		Name:      p.Name,
		IPv4:      p.IPv4,
		IPv6:      p.IPv6,
		Seq:       p.Seq,
		IssuedAt:  p.IssuedAt,
		Age:       max(0, f.o.Clock.Now().Sub(p.IssuedAt)),
		Format:    format,
		Heartbeat: p.Heartbeat,
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
