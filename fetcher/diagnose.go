package fetcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ipsync/codec"
)

// problemLocked says why this client has no current address although the
// mailbox holds messages meant for it; "" when there is nothing to say.
// f.mu is held.
//
// Messages that no key of this client opens, or that name another server,
// are a problem only when the client has no address, or its address is
// overdue (older than one heartbeat plus a grace): anyone can send junk to
// the mailbox, and while the server's own messages keep arriving they do
// not matter. A genuine message dated too far ahead that is newer than
// the address shown is always a problem: the newest address is being
// held back by this PC's clock.
func (f *Fetcher) problemLocked(now time.Time) string {
	st := &f.st
	var acc *codec.Payload
	if st.Accepted != nil {
		p := st.Accepted.payload()
		acc = &p
	}
	overdue := acc == nil
	if acc != nil {
		hb := acc.Heartbeat
		if hb <= 0 {
			hb = DefaultHeartbeat
		}
		overdue = now.Sub(acc.IssuedAt) > hb+DefaultStaleGrace
	}
	var parts []string
	var ahead time.Duration
	nFuture := 0
	for _, m := range st.Future {
		if acc == nil || m.Seq > acc.Seq {
			nFuture++
			ahead = max(ahead, m.IssuedAt.Sub(now))
		}
	}
	if nFuture > 0 {
		parts = append(parts, fmt.Sprintf("%s dated %s in the future (is this PC's clock right?)", messages(nFuture), roughDuration(ahead)))
	}
	r := &st.Rejected
	if n := r.OtherKey.count(); overdue && n > 0 {
		parts = append(parts, f.otherKeyText(n, r.OtherKeyIDs))
	}
	if n := r.OtherName.count(); overdue && n > 0 {
		names := make([]string, len(r.OtherNames))
		for i, name := range r.OtherNames {
			names[i] = "`" + name + "`"
		}
		parts = append(parts, fmt.Sprintf("%s from %s, this client is `%s` (check `name` in the config)", messages(n), strings.Join(names, ", "), f.o.Name))
	}
	if n := r.Junk.count(); overdue && n > 0 && len(parts) == 0 {
		verb := "are not valid ipsync messages"
		if n == 1 {
			verb = "is not a valid ipsync message"
		}
		parts = append(parts, fmt.Sprintf("%s with the subject %q that %s", messages(n), f.o.Subject, verb))
	}
	return strings.Join(parts, "; ")
}

// otherKeyText describes n messages no key of this client opens, which
// name the key ids ids.
func (f *Fetcher) otherKeyText(n int, ids []string) string {
	return messages(n) + " " + f.otherKeyDetail(ids)
}

// otherKeyDetail says why messages naming the key ids ids do not open.
func (f *Fetcher) otherKeyDetail(ids []string) string {
	held := f.keyIDs()
	var other []string
	for _, id := range ids {
		if !slices.Contains(held, id) {
			other = append(other, id)
		}
	}
	if len(other) == 0 && len(ids) > 0 {
		return fmt.Sprintf("not opened by this client's key %s (damaged, or the key's secret differs from the server's)", strings.Join(ids, ", "))
	}
	have := strings.Join(held, ", ")
	if have == "" {
		have = "none"
	}
	if len(other) == 0 {
		return fmt.Sprintf("signed by another key (this client holds %s)", have)
	}
	return fmt.Sprintf("signed by another key (key id %s; this client holds %s)", strings.Join(other, ", "), have)
}

// messages writes "1 message" or "n messages".
func messages(n int) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

// roughDuration writes d for people: "45 s", "11 min", "3 h", "2 days".
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Round(time.Hour)/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
}

// Problem returns the current diagnosis (see Update.Problem); "" if none.
// It does no I/O.
func (f *Fetcher) Problem() string {
	f.loadState()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.problemLocked(f.o.Clock.Now())
}

// nextFutureDue returns when the earliest future-dated message may be
// accepted; zero if there is none.
func (f *Fetcher) nextFutureDue() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for _, m := range f.st.Future {
		due := m.IssuedAt.Add(-f.o.MaxFuture)
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// maxCheckCandidates bounds how many of the newest messages with the
// subject Check opens.
const maxCheckCandidates = 20

// CheckNewest reports on the newest messages with the configured subject
// as this client sees them, for `ipsync check`: it logs in, examines the
// mailbox and opens the newest candidates with the configured keys and
// name, without using or changing the state file. It returns a line
// describing the newest valid message, or an error saying why there is
// none: another key (with both key ids), another name, dated in the
// future, or no message at all (wrapping ErrNoMessage). Mail errors are
// returned as from FetchOnce.
func (f *Fetcher) CheckNewest(ctx context.Context) (string, error) {
	s, err := f.connect(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("check: %w", err)
	}
	defer s.logout(ctx)
	cands, err := f.newestCandidates(ctx, s, f.o.Subject, 0)
	if err != nil {
		return "", fmt.Errorf("check: %w", err)
	}
	if len(cands) == 0 && f.o.Subject == defaultSubject(f.o.Name) {
		// The subject names this client's server: look for messages of
		// another name, to say so.
		if cands, err = f.newestCandidates(ctx, s, defaultSubject(""), 0); err != nil {
			return "", fmt.Errorf("check: %w", err)
		}
	}
	if len(cands) == 0 {
		return "", fmt.Errorf("%w: no message with the subject %q under %d bytes in %s (has the server published yet? is publisher.subject the same on both sides?)", ErrNoMessage, f.o.Subject, f.o.MaxSize, f.o.Mailbox)
	}
	cands = cands[:min(len(cands), maxCheckCandidates)]
	msgs, _, err := s.fetch(ctx, cands, f.o.MaxSize)
	if err != nil {
		return "", fmt.Errorf("check: %w", err)
	}
	now := f.o.Clock.Now()
	var first *judgement
	for _, uid := range cands {
		m, ok := msgs[uid]
		if !ok {
			continue
		}
		j := f.judge(m, nil, now)
		if j.verdict == valid {
			p := j.p
			return fmt.Sprintf("newest message from %q opens and verifies: %s (seq %d, issued %s ago)", p.Name, addrText(p), p.Seq, roughDuration(max(0, now.Sub(p.IssuedAt)))), nil
		}
		if first == nil || (first.verdict == junk && j.verdict != junk) {
			first = &j
		}
	}
	if first == nil {
		return "", fmt.Errorf("the newest messages with the subject %q disappeared while being read; run check again", f.o.Subject)
	}
	switch first.verdict {
	case otherKey:
		return "", fmt.Errorf("newest ipsync message is %s: copy the server's current client key into codec.key (if the server's key was just changed, its next message will open)", f.otherKeyDetail([]string{first.keyID}))
	case otherName:
		return "", fmt.Errorf("newest ipsync message is from `%s`, this client is `%s`: set name: %s in the config", first.p.Name, f.o.Name, first.p.Name)
	case future:
		return "", fmt.Errorf("newest ipsync message is dated %s in the future (is this PC's clock right?)", roughDuration(first.p.IssuedAt.Sub(now)))
	}
	return "", fmt.Errorf("none of the %d newest messages with the subject %q is a valid ipsync message for this client; the newest: %s", len(cands), f.o.Subject, first.reason)
}

// newestCandidates returns up to maxCheckCandidates UIDs of the newest
// small messages with subject, newest first, searching at most span UIDs
// below the top (0: the whole mailbox).
func (f *Fetcher) newestCandidates(ctx context.Context, s *session, subject string, span uint32) ([]uint32, error) {
	top, err := s.topUID(ctx)
	if err != nil {
		return nil, err
	}
	bottom := uint32(1)
	if span > 0 && top > span {
		bottom = top - span + 1
	}
	var cands []uint32
	for hi, window := top, uint32(firstWindow); hi >= bottom && hi > 0 && len(cands) < maxCheckCandidates; window = min(window*windowGrowth, maxWindow) {
		lo := bottom
		if hi-bottom+1 > window {
			lo = hi - window + 1
		}
		uids, err := s.search(ctx, uidRanges{{lo, hi}}, subject, f.o.MaxSize)
		if err != nil {
			return nil, err
		}
		cands = append(cands, uids...)
		hi = lo - 1
	}
	return cands[:min(len(cands), maxCheckCandidates)], nil
}

func addrText(p codec.Payload) string {
	var a []string
	for _, x := range []interface {
		IsValid() bool
		String() string
	}{p.IPv4, p.IPv6} {
		if x.IsValid() {
			a = append(a, x.String())
		}
	}
	return strings.Join(a, " ")
}

// probeBatch is how many of the newest "ipsync …" messages probeOtherNames
// reads, and probeSpan how many of the newest UIDs it searches.
const (
	probeBatch = 4
	probeSpan  = 1024
)

// probeOtherNames runs when a complete scan leaves this client with no
// address and nothing rejected, and the subject is the default one for its
// name: then messages of the same server under another name (a `name`
// typo, `office-pc` for `office`) never match the search. It reads the
// newest few messages whose subject starts "ipsync " and records those
// that open with this client's keys but name another server, for the
// diagnosis. They are not held: once a name is recorded, no probe runs.
func (f *Fetcher) probeOtherNames(ctx context.Context, s *session) error {
	f.mu.Lock()
	r := &f.st.Rejected
	want := f.st.Accepted == nil && len(r.OtherKey)+len(r.OtherName)+len(r.Junk) == 0 &&
		f.o.Format == codec.FormatSealed && f.o.Subject == defaultSubject(f.o.Name)
	f.mu.Unlock()
	if !want {
		return nil
	}
	cands, err := f.newestCandidates(ctx, s, defaultSubject(""), probeSpan)
	if err != nil || len(cands) == 0 {
		return err
	}
	cands = cands[:min(len(cands), probeBatch)]
	msgs, _, err := s.fetch(ctx, cands, f.o.MaxSize)
	if err != nil {
		return err
	}
	now := f.o.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for _, uid := range cands {
		m, ok := msgs[uid]
		if !ok {
			continue
		}
		if j := f.judge(m, nil, now); j.verdict == otherName {
			r.OtherName.addUID(uid)
			r.OtherNames = note(r.OtherNames, j.p.Name)
			found = true
		}
	}
	if found {
		f.saveLocked()
	}
	return nil
}
