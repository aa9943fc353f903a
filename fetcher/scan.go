package fetcher

import (
	"context"
	"slices"
	"time"

	"ipsync/codec"
)

// Scan costs.
const (
	// firstWindow is the UID span of the first search below UIDNEXT; each
	// next window is windowGrowth times larger, up to maxWindow.
	firstWindow  = 16
	windowGrowth = 4
	maxWindow    = 1 << 16
	// A UID FETCH reads firstBatch candidates, then each next one
	// batchGrowth times more, up to maxBatch: the newest few usually hold
	// a message delivered on time, below which the scan stops.
	firstBatch  = 4
	batchGrowth = 4
	maxBatch    = 64
)

// verdict is what judging one candidate found.
type verdict int

const (
	// valid: opens, verifies, names this server, is not dated too far
	// ahead, and is newer than the last accepted message.
	valid verdict = iota
	// notNewer: a genuine message of this server, but not newer than the
	// last accepted one (a replay, or an older one read again).
	notNewer
	// junk: can never be valid: malformed, forged, not an ipsync message.
	junk
	// otherKey: no key this client holds opens it (held, see saved.Held).
	otherKey
	// otherName: it opens and verifies but names another server (held).
	otherName
	// future: a genuine message dated too far ahead (read again later).
	future
)

// genuine reports whether the message was verified as this server's.
func (v verdict) genuine() bool { return v == valid || v == notNewer }

// judgement is one candidate, read and judged.
type judgement struct {
	uid     uint32
	arrived time.Time // INTERNALDATE
	p       codec.Payload
	verdict verdict
	reason  string // why it was rejected; "" if valid
	keyID   string // otherKey: the key id the message names
}

// scanner is one round of a scan: it walks the mailbox from UIDNEXT down,
// in windows that grow, over the UIDs not examined before, and judges the
// small messages with the subject in batches. It lives on one goroutine.
//
// Why it may stop before the bottom: a mailbox only appends, so a message
// arrived after everything below it. A genuine message that arrived
// (INTERNALDATE, set by the mail server) within o.Slack of its own
// issued_at is not a replay, and anything with a higher sequence was
// issued after it, so arrived after its issued_at minus the slack. Once
// the walk reaches a candidate that arrived before that point, nothing
// below can be newer (docs/protocol.md §4.2).
type scanner struct {
	f    *Fetcher
	s    *session
	now  time.Time
	last *codec.Payload // last accepted; nil if none

	skip   uidRanges // not to search or read this round
	budget int64     // body bytes this round may read

	searched  uidRanges // the windows searched this round
	cands     []uint32  // the candidates those searches found
	results   []judgement
	best      *judgement // the valid message with the highest sequence
	cutoff    time.Time  // candidates that arrived before it cannot be newer
	cutoffUID uint32     // the message that set cutoff
	floor     uint32     // UIDs ≤ floor cannot be newer (0: none)
	batch     int        // the size of the next UID FETCH
	bytes     int64
	complete  bool // every candidate was judged, or the floor reached
}

// scanOutcome is what one round of a scan found.
type scanOutcome struct {
	// Complete is false when the round stopped at its byte budget with
	// candidates left: another round should follow promptly.
	Complete bool
	Accepted bool
	Payload  codec.Payload // accepted payload
	Previous codec.Payload // accepted before it (zero if none)
	Changed  bool          // address differs from Previous (or first)
}

// scan runs one round over s (which has the mailbox examined): it judges
// candidates not examined before, newest first, and accepts the valid
// message with the highest sequence once the round is complete.
func (f *Fetcher) scan(ctx context.Context, s *session) (scanOutcome, error) {
	if f.o.Format == codec.FormatLegacy {
		f.legacyWarned.Do(func() {
			f.log.Warn("legacy message format: it is NOT authenticated, anyone able to mail this mailbox can forge the address")
		})
	}
	sc := f.beginScan(s)
	if err := sc.walk(ctx); err != nil {
		return scanOutcome{}, err
	}
	return f.commitScan(sc), nil
}

// beginScan resets what a new UIDVALIDITY or key set makes void and
// returns a scanner for one round.
func (f *Fetcher) beginScan(s *session) *scanner {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.o.Clock.Now()
	st := &f.st
	if st.UIDValidity != s.uidValidity {
		if st.UIDValidity != 0 {
			f.log.Info("mailbox UIDVALIDITY changed; reading it afresh", "old", st.UIDValidity, "new", s.uidValidity)
		}
		*st = saved{Version: st.Version, Account: st.Account, Accepted: st.Accepted, Format: st.Format, ReceivedAt: st.ReceivedAt, UIDValidity: s.uidValidity}
	}
	if keys := f.keyIDs(); !slices.Equal(st.KeyIDs, keys) || st.Name != f.o.Name {
		if len(st.Held) > 0 {
			f.log.Info("client keys or name changed; reading again the messages they rejected", "messages", st.Held.count())
		}
		st.Held, st.KeyIDs, st.Name = nil, keys, f.o.Name
		st.Rejected.OtherKey, st.Rejected.OtherKeyIDs = nil, nil
		st.Rejected.OtherName, st.Rejected.OtherNames = nil, nil
	}
	skip := slices.Clone(st.Examined)
	for _, r := range st.Held {
		skip.add(r.Lo, r.Hi)
	}
	for _, m := range st.Future {
		if !f.futureDue(m, now) {
			skip.addUID(m.UID)
		}
	}
	sc := &scanner{f: f, s: s, now: now, skip: skip, budget: f.o.RoundBytes, batch: firstBatch}
	if st.Accepted != nil {
		p := st.Accepted.payload()
		sc.last = &p
	}
	return sc
}

// keyIDs returns the sorted ids of the configured keys (nil for legacy or
// a custom Decoder).
func (f *Fetcher) keyIDs() []string {
	var ids []string
	for _, k := range f.o.Keys {
		if id := k.ID(); id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// futureDue reports whether a future-dated message may be accepted now.
func (f *Fetcher) futureDue(m futureMessage, now time.Time) bool {
	return !m.IssuedAt.After(now.Add(f.o.MaxFuture))
}

// walk searches windows from the top of the mailbox down and judges the
// candidates, until the bottom, the floor or the byte budget.
func (sc *scanner) walk(ctx context.Context) error {
	top, err := sc.s.topUID(ctx)
	if err != nil {
		return err
	}
	window := uint32(firstWindow)
	for cur := top; ; {
		if cur = sc.skip.below(cur); cur == 0 {
			sc.complete = true
			return nil
		}
		lo := uint32(1)
		if cur > window {
			lo = cur - window + 1
		}
		gaps := sc.skip.gaps(lo, cur)
		uids, err := sc.s.search(ctx, gaps, sc.f.o.Subject, sc.f.o.MaxSize)
		if err != nil {
			return err
		}
		for _, g := range gaps {
			sc.searched.add(g.Lo, g.Hi)
		}
		sc.cands = append(sc.cands, uids...)
		stop, err := sc.judgeAll(ctx, uids)
		if err != nil || stop {
			return err
		}
		cur = lo - 1
		window = min(window*windowGrowth, maxWindow)
	}
}

// judgeAll reads and judges uids (descending) in batches. It reports stop
// when the walk must end: the floor reached (complete), a legacy message
// accepted (complete), or the byte budget spent (not complete).
func (sc *scanner) judgeAll(ctx context.Context, uids []uint32) (stop bool, err error) {
	for len(uids) > 0 {
		if sc.bytes >= sc.budget {
			return true, nil
		}
		batch := uids[:min(len(uids), sc.batch)]
		sc.batch = min(sc.batch*batchGrowth, maxBatch)
		uids = uids[len(batch):]
		msgs, n, err := sc.s.fetch(ctx, batch, sc.f.o.MaxSize)
		sc.bytes += n
		if err != nil {
			return true, err
		}
		for _, uid := range batch {
			m, ok := msgs[uid]
			if !ok {
				// Expunged, or appended so recently that this session has
				// not been told yet: left for the next scan.
				continue
			}
			if !sc.cutoff.IsZero() && !m.InternalDate.IsZero() && m.InternalDate.Before(sc.cutoff) {
				sc.floor, sc.complete = uid, true
				return true, nil
			}
			if sc.judgeOne(m) {
				sc.floor, sc.complete = uid-1, true
				return true, nil
			}
		}
	}
	return false, nil
}

// judgeOne judges m and updates the best message and the cutoff. It
// reports true when a legacy message was accepted: legacy messages carry
// no sequence, so the newest acceptable one by UID is taken.
func (sc *scanner) judgeOne(m rawMessage) bool {
	f := sc.f
	j := f.judge(m, sc.last, sc.now)
	sc.results = append(sc.results, j)
	if j.verdict != valid {
		f.log.Warn("rejected message", "uid", j.uid, "reason", j.reason)
	}
	if f.o.Format == codec.FormatLegacy {
		if j.verdict == valid {
			sc.best = &j
			return true
		}
		return false
	}
	if j.verdict == valid && (sc.best == nil || j.p.Seq > sc.best.p.Seq) {
		sc.best = &j
	}
	if j.verdict.genuine() && !m.InternalDate.IsZero() && m.InternalDate.Sub(j.p.IssuedAt) <= f.o.Slack {
		// Delivered on time: not a replay (see scanner). The on-time test
		// used the slack up, so the cutoff leaves room again for the
		// server's clock running ahead of the mail server's, by as much
		// as a message may be dated in the future (MaxFuture).
		if c := m.InternalDate.Add(-f.o.Slack - f.o.MaxFuture); c.After(sc.cutoff) {
			sc.cutoff, sc.cutoffUID = c, m.UID
		}
	}
	return false
}

// commitScan records what the round found in the state and accepts the
// best message if the round was complete.
func (f *Fetcher) commitScan(sc *scanner) scanOutcome {
	out := scanOutcome{Complete: sc.complete}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &f.st
	if st.UIDValidity != sc.s.uidValidity {
		return out // another scan saw a new UIDVALIDITY meanwhile
	}
	sc.recordSearched(st)
	for i := range sc.results {
		sc.record(st, &sc.results[i])
	}
	if sc.floor > 0 {
		// Nothing at or below the floor can be newer, held ones included.
		st.Examined.add(1, sc.floor)
		st.Held.removeUpTo(sc.floor)
		st.Future = slices.DeleteFunc(st.Future, func(m futureMessage) bool { return m.UID <= sc.floor })
	}
	if sc.complete && sc.best != nil {
		out = f.acceptLocked(sc.best, out)
	}
	if !sc.complete {
		f.log.Info("many candidate messages; reading on", "read_bytes", sc.bytes, "examined_uids", st.Examined.count())
	}
	f.saveLocked()
	return out
}

// recordSearched marks as examined the searched UIDs that were not
// candidates (other subject, or too large): they never become one.
// Candidates are recorded by record once judged; those not judged (budget,
// gone) stay unexamined.
func (sc *scanner) recordSearched(st *saved) {
	cands := slices.Clone(sc.cands)
	slices.Sort(cands)
	// A future-dated message that no search finds any more was expunged.
	st.Future = slices.DeleteFunc(st.Future, func(m futureMessage) bool {
		_, found := slices.BinarySearch(cands, m.UID)
		return sc.searched.has(m.UID) && !found
	})
	k := 0
	for _, g := range sc.searched {
		lo := g.Lo
		for k < len(cands) && cands[k] < g.Lo {
			k++
		}
		for ; k < len(cands) && cands[k] <= g.Hi; k++ {
			if cands[k] > lo {
				st.Examined.add(lo, cands[k]-1)
			}
			lo = cands[k] + 1
		}
		if lo <= g.Hi {
			st.Examined.add(lo, g.Hi)
		}
	}
}

// record files one judged candidate in the state.
func (sc *scanner) record(st *saved, j *judgement) {
	if j.verdict != future {
		st.Future = slices.DeleteFunc(st.Future, func(m futureMessage) bool { return m.UID == j.uid })
	}
	switch j.verdict {
	case valid, notNewer:
		// Until a complete round accepts it, the best is read again in the
		// next round, and so is the message that set the cutoff; the
		// others can never be chosen over the best.
		keep := !sc.complete && ((sc.best != nil && j.uid == sc.best.uid) || j.uid == sc.cutoffUID)
		if !keep {
			st.Examined.addUID(j.uid)
		}
	case junk:
		st.Examined.addUID(j.uid)
		st.Rejected.Junk.addUID(j.uid)
	case otherKey:
		st.Held.addUID(j.uid)
		st.Rejected.OtherKey.addUID(j.uid)
		st.Rejected.OtherKeyIDs = note(st.Rejected.OtherKeyIDs, j.keyID)
	case otherName:
		st.Held.addUID(j.uid)
		st.Rejected.OtherName.addUID(j.uid)
		st.Rejected.OtherNames = note(st.Rejected.OtherNames, j.p.Name)
	case future:
		i := slices.IndexFunc(st.Future, func(m futureMessage) bool { return m.UID == j.uid })
		if i < 0 {
			st.Future = append(st.Future, futureMessage{UID: j.uid, Seq: j.p.Seq, IssuedAt: j.p.IssuedAt})
		}
	}
}
