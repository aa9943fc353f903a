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

// ErrAuthRefused marks a login the mail server refused: a wrong user name
// or password, an expired or locked account, or an OAuth2 access token
// refused even after a refresh (mailconn.Auth classifies: IMAP NO with
// [AUTHENTICATIONFAILED], [AUTHORIZATIONFAILED], [EXPIRED] or
// [CONTACTADMIN], RFC 5530, or a plain NO). It is the user's to fix;
// retrying soon only risks a locked account. It is mailconn.ErrAuthRefused.
var ErrAuthRefused = mailconn.ErrAuthRefused

// ErrSignInNeeded marks a login that was not tried because the OAuth2
// sign-in is no longer accepted (the refresh token was revoked or expired,
// or none is stored): the user must run `ipsync login` or the tray's
// "Sign in…". It is mailconn.ErrSignInNeeded.
var ErrSignInNeeded = mailconn.ErrSignInNeeded

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
// also carries the LOGIN command with the password, or AUTHENTICATE with
// the access token.
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
	uidNext     imap.UID // from EXAMINE; 0 once used (it goes out of date)
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
	// A token source that needs a new sign-in says so before any server
	// is dialled: no connection, no login.
	if err := o.Auth.Ready(ctx); err != nil {
		return nil, err
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
	// Auth.IMAP classifies a refusal (ErrAuthRefused) and refreshes a
	// refused token once; classify tells a connection limit from it.
	if err := s.do(ctx, "sign in", func() error { return o.Auth.IMAP(ctx, c) }); err != nil {
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

// topUID returns the highest UID the mailbox holds: UIDNEXT-1 from EXAMINE
// the first time; later (mail may have arrived) or when the server left
// UIDNEXT out, the UID of the last message by the message count the
// server reported (EXISTS), 0 for an empty mailbox.
func (s *session) topUID(ctx context.Context) (uint32, error) {
	if s.uidNext > 0 {
		top := uint32(s.uidNext) - 1
		s.uidNext = 0
		return top, nil
	}
	n := uint32(0)
	if mb := s.c.Mailbox(); mb != nil {
		n = mb.NumMessages
	}
	if n == 0 {
		return 0, nil
	}
	// "N:*" rather than "*" alone: it also covers a count that is a little
	// low, and go-imap's imapmemserver does not resolve a lone "*".
	var msgs []*imapclient.FetchMessageBuffer
	err := s.do(ctx, "fetch the last UID", func() error {
		var err error
		msgs, err = s.c.Fetch(imap.SeqSet{{Start: max(1, n-1), Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		return err
	})
	if err != nil {
		return 0, err
	}
	var top imap.UID
	for _, m := range msgs {
		top = max(top, m.UID)
	}
	return uint32(top), nil
}

// search returns, in descending order, the UIDs in set of messages with
// subject that are at most maxSize bytes (SMALLER): the candidates. One
// UID SEARCH; the server matches only the UIDs in set, so its work grows
// with the window, not with the mailbox.
func (s *session) search(ctx context.Context, set uidRanges, subject string, maxSize int64) ([]uint32, error) {
	if len(set) == 0 {
		return nil, nil
	}
	var uids imap.UIDSet
	for _, r := range set {
		uids.AddRange(imap.UID(r.Lo), imap.UID(r.Hi))
	}
	criteria := &imap.SearchCriteria{
		UID:     []imap.UIDSet{uids},
		Header:  []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}},
		Smaller: maxSize + 1,
	}
	var data *imap.SearchData
	err := s.do(ctx, "search mailbox", func() error {
		var err error
		data, err = s.c.UIDSearch(criteria, nil).Wait()
		return err
	})
	if err != nil {
		return nil, err
	}
	var found []uint32
	for _, u := range data.AllUIDs() {
		if uids.Contains(u) {
			found = append(found, uint32(u))
		}
	}
	slices.Sort(found)
	slices.Reverse(found)
	return slices.Compact(found), nil
}

// rawMessage is one candidate as read from the server.
type rawMessage struct {
	UID          uint32
	Size         int64
	InternalDate time.Time
	Body         []byte // nil when the message is larger than the limit
}

// fetch reads the size, arrival time (INTERNALDATE) and full text of uids
// in one UID FETCH, without setting \Seen (BODY.PEEK[]). A text longer
// than maxSize is not kept (Body nil). Messages the server does not return
// (expunged, or too new for this session) are missing from the map. n is
// the number of body bytes received.
func (s *session) fetch(ctx context.Context, uids []uint32, maxSize int64) (msgs map[uint32]rawMessage, n int64, err error) {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	msgs = make(map[uint32]rawMessage, len(uids))
	section := &imap.FetchItemBodySection{Peek: true}
	opts := &imap.FetchOptions{UID: true, RFC822Size: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{section}}
	err = s.do(ctx, "fetch messages", func() error {
		cmd := s.c.Fetch(set, opts)
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var m rawMessage
			var body []byte
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					m.UID = uint32(it.UID)
				case imapclient.FetchItemDataRFC822Size:
					m.Size = it.Size
				case imapclient.FetchItemDataInternalDate:
					m.InternalDate = it.Time
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						continue
					}
					b, err := io.ReadAll(io.LimitReader(it.Literal, maxSize+1))
					if err != nil {
						return fmt.Errorf("read message text: %w", err)
					}
					n += int64(len(b))
					body = b
				}
			}
			if m.UID == 0 || body == nil || !set.Contains(imap.UID(m.UID)) {
				continue
			}
			if int64(len(body)) <= maxSize {
				m.Body = body
			} else {
				m.Size = max(m.Size, int64(len(body)))
			}
			msgs[m.UID] = m
		}
		return cmd.Close()
	})
	return msgs, n, err
}
