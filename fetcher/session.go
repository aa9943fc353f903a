package fetcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/mailconn"
)

// errLimit marks a refusal by the server because of a connection limit or
// throttling: normal operation on a shared mailbox, never the Error state.
var errLimit = errors.New("mail server refused the connection (connection limit or throttling)")

// errTimeout is the cause when one network operation takes too long.
var errTimeout = errors.New("imap operation timed out")

// limitTexts are lower-case fragments of provider answers that mean "too
// many connections" or "slow down".
var limitTexts = []string{
	"too many simultaneous connections",
	"maximum number of connections",
	"too many connections",
	"connection limit",
	"too many login",
	"throttl",
	"try again later",
}

func isLimitText(s string) bool {
	s = strings.ToLower(s)
	for _, t := range limitTexts {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// classify turns an error from connecting or logging in into errLimit when
// it is a connection-limit refusal or throttling: a [LIMIT] or
// [UNAVAILABLE] code, a known provider text, or a BYE at greeting or on
// LOGIN (bye is the text of a BYE the server sent, if any). A login refused
// with [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED] or [EXPIRED] is never
// a limit, whatever its text.
func classify(err error, bye string) error {
	if err == nil || errors.Is(err, errLimit) {
		return err
	}
	limited := bye != "" || isLimitText(err.Error())
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch ie.Code {
		case imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed, imap.ResponseCodeExpired:
			// A refused login is the user's to fix, even when the text
			// says "too many login failures, try again later".
			return err
		}
		switch {
		case ie.Type == imap.StatusResponseTypeBye,
			ie.Code == imap.ResponseCodeLimit,
			ie.Code == imap.ResponseCodeUnavailable,
			isLimitText(ie.Text):
			limited = true
		}
	}
	if !limited {
		return err
	}
	if bye != "" {
		return fmt.Errorf("%w: %v (server said BYE %q)", errLimit, err, bye)
	}
	return fmt.Errorf("%w: %v", errLimit, err)
}

// byeWatcher sees the raw IMAP stream (as imapclient's DebugWriter) and
// keeps the text of the last untagged BYE. Nothing else is kept: the stream
// also carries the LOGIN command with the password.
type byeWatcher struct {
	mu   sync.Mutex
	text string
}

const maxByeText = 200

func (w *byeWatcher) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) >= 5 && bytes.EqualFold(line[:5], []byte("* BYE")) {
			t := strings.TrimSpace(string(line[min(len(line), 6):]))
			if len(t) > maxByeText {
				t = t[:maxByeText]
			}
			w.mu.Lock()
			w.text = t
			w.mu.Unlock()
		}
	}
	return len(p), nil
}

func (w *byeWatcher) Text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text
}

// session is one logged-in IMAP connection with the mailbox examined.
type session struct {
	c       *imapclient.Client
	bye     *byeWatcher
	timeout time.Duration

	uidValidity uint32
	uidNext     imap.UID
	caps        imap.CapSet
}

// dial connects and logs in. exists, if not nil, receives a non-blocking
// send whenever the server reports a new message count.
func dial(ctx context.Context, o *Options, exists chan<- struct{}) (*session, error) {
	s := &session{bye: &byeWatcher{}, timeout: o.OpTimeout}
	handler := &imapclient.UnilateralDataHandler{}
	if exists != nil {
		handler.Mailbox = func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- struct{}{}:
				default:
				}
			}
		}
	}
	dctx, cancel := context.WithTimeoutCause(ctx, o.OpTimeout, errTimeout)
	defer cancel()
	c, err := mailconn.DialIMAP(dctx, o.IMAP, &imapclient.Options{
		DebugWriter:           s.bye,
		UnilateralDataHandler: handler,
	})
	if err != nil {
		return nil, classify(err, s.bye.Text())
	}
	s.c = c
	if err := s.do(ctx, "log in", func() error { return c.Login(o.Username, o.Password).Wait() }); err != nil {
		c.Close()
		return nil, classify(err, s.bye.Text())
	}
	return s, nil
}

// examine opens the mailbox read-only and reads the capabilities.
func (s *session) examine(ctx context.Context, mailbox string) error {
	var data *imap.SelectData
	err := s.do(ctx, "examine mailbox "+mailbox, func() error {
		var err error
		data, err = s.c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err != nil {
		return err
	}
	s.uidValidity, s.uidNext = data.UIDValidity, data.UIDNext
	return s.do(ctx, "read capabilities", func() error {
		s.caps = s.c.Caps()
		if s.caps == nil {
			return errors.New("no capability list")
		}
		return nil
	})
}

// do runs one blocking client call, closing the connection if ctx ends or
// the call takes longer than the operation timeout.
func (s *session) do(ctx context.Context, what string, fn func() error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.c.Close() })
	err := fn()
	if !stop() {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// logout says goodbye (bounded by a short timeout) and closes.
func (s *session) logout(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.do(ctx, "log out", func() error { return s.c.Logout().Wait() })
	s.c.Close()
}

func (s *session) noop(ctx context.Context) error {
	return s.do(ctx, "noop", func() error { return s.c.Noop().Wait() })
}

// cursor walks the UIDs of messages with the configured subject above
// lastSeen, newest first, leaving out those in [skipLo, skipHi] (examined
// before) at the cost of at most one extra search. It uses ESEARCH RETURN
// (MAX) when the server advertises it; otherwise plain UID SEARCH over
// windows of UIDs that grow downwards from UIDNEXT, so a search's answer
// stays small however large the mailbox is.
type cursor struct {
	s        *session
	subject  string
	lastSeen imap.UID
	esearch  bool

	skipLo, skipHi imap.UID // 0, 0: nothing to skip

	hi      imap.UID   // ESEARCH: candidates are below hi (0: no bound)
	pending []imap.UID // plain search: found, not yet returned, descending
	lo      imap.UID   // plain search: the current window's lowest UID
	window  uint32
	started bool
	done    bool
}

const firstWindow = 16

func newCursor(s *session, subject string, lastSeen, skipLo, skipHi imap.UID) *cursor {
	if skipLo <= lastSeen || skipHi < skipLo {
		skipLo, skipHi = 0, 0
	}
	return &cursor{
		s:        s,
		subject:  subject,
		lastSeen: lastSeen,
		esearch:  s.caps.Has(imap.CapESearch),
		skipLo:   skipLo,
		skipHi:   skipHi,
		window:   firstWindow,
	}
}

func (cu *cursor) skipped(uid imap.UID) bool {
	return cu.skipLo != 0 && uid >= cu.skipLo && uid <= cu.skipHi
}

func (cu *cursor) criteria(lo, hi imap.UID) *imap.SearchCriteria {
	var set imap.UIDSet
	set.AddRange(lo, hi) // hi 0 is "*"
	return &imap.SearchCriteria{
		UID:    []imap.UIDSet{set},
		Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: cu.subject}},
	}
}

// next returns the next candidate UID, or ok false when there is none.
func (cu *cursor) next(ctx context.Context) (imap.UID, bool, error) {
	if cu.esearch {
		return cu.nextMax(ctx)
	}
	for len(cu.pending) == 0 {
		if cu.done {
			return 0, false, nil
		}
		if err := cu.searchWindow(ctx); err != nil {
			return 0, false, err
		}
	}
	uid := cu.pending[0]
	cu.pending = cu.pending[1:]
	return uid, true, nil
}

func (cu *cursor) nextMax(ctx context.Context) (imap.UID, bool, error) {
	for {
		if cu.done {
			return 0, false, nil
		}
		lo := cu.lastSeen + 1
		if cu.hi != 0 && cu.hi <= lo {
			cu.done = true
			return 0, false, nil
		}
		var hi imap.UID // "*"
		if cu.hi != 0 {
			hi = cu.hi - 1
		}
		var data *imap.SearchData
		err := cu.s.do(ctx, "search mailbox", func() error {
			var err error
			data, err = cu.s.c.UIDSearch(cu.criteria(lo, hi), &imap.SearchOptions{ReturnMax: true}).Wait()
			return err
		})
		if err != nil {
			return 0, false, err
		}
		// "lo:*" matches the highest UID even when it is below lo: check.
		uid := imap.UID(data.Max)
		if uid == 0 || uid < lo || (cu.hi != 0 && uid >= cu.hi) {
			cu.done = true
			return 0, false, nil
		}
		cu.hi = uid
		if cu.skipped(uid) {
			cu.hi = cu.skipLo // continue below the skipped run
			continue
		}
		return uid, true, nil
	}
}

func (cu *cursor) searchWindow(ctx context.Context) error {
	floor := cu.lastSeen + 1
	var lo, hi imap.UID
	if !cu.started {
		cu.started = true
		lo, hi = floor, 0
		if top := cu.s.uidNext; top > floor && uint32(top-floor) > cu.window {
			lo = top - imap.UID(cu.window)
		}
	} else {
		if cu.lo <= floor {
			cu.done = true
			return nil
		}
		hi = cu.lo - 1
		if cu.skipped(hi) {
			// Jump below the skipped run instead of searching through it.
			if hi = cu.skipLo - 1; hi < floor {
				cu.done = true
				return nil
			}
		}
		lo = floor
		if uint32(hi-floor)+1 > cu.window {
			lo = hi - imap.UID(cu.window) + 1
		}
	}
	cu.lo = lo
	if lo <= floor {
		cu.done = true
	}
	cu.window *= 4
	var data *imap.SearchData
	err := cu.s.do(ctx, "search mailbox", func() error {
		var err error
		data, err = cu.s.c.UIDSearch(cu.criteria(lo, hi), nil).Wait()
		return err
	})
	if err != nil {
		return err
	}
	uids := data.AllUIDs()
	found := uids[:0]
	for _, u := range uids {
		if u >= lo && (hi == 0 || u <= hi) && !cu.skipped(u) {
			found = append(found, u)
		}
	}
	slices.Sort(found)
	slices.Reverse(found)
	cu.pending = slices.Compact(found)
	return nil
}

// rawMessage is one candidate as read from the server.
type rawMessage struct {
	UID          imap.UID
	Size         int64
	InternalDate time.Time
	Body         []byte // nil when the message is too large
}

// errGone: the message disappeared between search and fetch.
var errGone = errors.New("message no longer in the mailbox")

// read fetches the size and date of uid, then, if it is at most maxSize
// bytes, its full text without setting \Seen (BODY.PEEK[]).
func (s *session) read(ctx context.Context, uid imap.UID, maxSize int64) (rawMessage, error) {
	m := rawMessage{UID: uid}
	set := imap.UIDSetNum(uid)
	var meta []*imapclient.FetchMessageBuffer
	err := s.do(ctx, "fetch message size", func() error {
		var err error
		meta, err = s.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true}).Collect()
		return err
	})
	if err != nil {
		return m, err
	}
	i := slices.IndexFunc(meta, func(b *imapclient.FetchMessageBuffer) bool { return b.UID == uid })
	if i < 0 {
		return m, errGone
	}
	m.Size, m.InternalDate = meta[i].RFC822Size, meta[i].InternalDate
	if m.Size > maxSize {
		return m, nil
	}
	section := &imap.FetchItemBodySection{Peek: true}
	var body []byte
	tooBig := false
	err = s.do(ctx, "fetch message", func() error {
		cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var gotUID imap.UID
			var data []byte
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					gotUID = it.UID
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						continue
					}
					b, err := io.ReadAll(io.LimitReader(it.Literal, maxSize+1))
					if err != nil {
						return fmt.Errorf("read message text: %w", err)
					}
					data = b
				}
			}
			if gotUID == uid && data != nil {
				body = data
			}
		}
		return cmd.Close()
	})
	if err != nil {
		return m, err
	}
	if body == nil {
		return m, errGone
	}
	if int64(len(body)) > maxSize {
		tooBig = true
		m.Size = int64(len(body))
	}
	if !tooBig {
		m.Body = body
	}
	return m, nil
}
