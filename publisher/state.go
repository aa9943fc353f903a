package publisher

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"ipsync/statefile"
)

// stateTimeout bounds one state update, most of it waiting for another
// process that holds the state file's lock.
const stateTimeout = 30 * time.Second

// errStateTimeout is the cause of a state update that ran out of
// stateTimeout.
var errStateTimeout = errors.New("state file update timed out")

// Record is what the publisher remembers between runs.
type Record struct {
	// Seq is the highest sequence number reserved so far. A number is
	// reserved (and this Record saved, under the Store's exclusion) before
	// the message carrying it is sent, so the next message always uses
	// Seq+1 and no number is reused, even after a crash between reserving
	// and sending or by two processes sharing the state.
	Seq uint64 `json:"seq"`
	// SentSeq is the sequence number of the last message the mail server
	// accepted; 0 means none yet.
	SentSeq uint64 `json:"sent_seq,omitzero"`
	// SentAt is when that message was issued.
	SentAt time.Time `json:"sent_at,omitzero"`
	// IPv4 and IPv6 are the addresses that message carried.
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	IPv6 netip.Addr `json:"ipv6,omitzero"`
	// Paused is the user's pause switch: while set, nothing is sent.
	Paused bool `json:"paused,omitzero"`
	// SentIDs are the Message-IDs of the newest messages sent, with their
	// recipients, so that a delivery-status report (a bounce) can be told
	// to refer to one of them. At most maxSentIDs, none older than
	// sentIDsAge.
	SentIDs []SentID `json:"sent_ids,omitempty"`
}

// SentID is one sent message, as a bounce refers to it.
type SentID struct {
	// ID is the Message-ID without angle brackets.
	ID string `json:"id"`
	// To are the envelope recipients.
	To []string `json:"to"`
	// At is when it was sent.
	At time.Time `json:"at"`
}

// How many Message-IDs the state remembers, and for how long: bounces come
// back within minutes, some after a few days of retries by the provider.
const (
	maxSentIDs = 200
	sentIDsAge = 7 * 24 * time.Hour
)

// mergeSentIDs returns the union of a and b by ID, oldest first, without
// entries older than sentIDsAge before now, at most maxSentIDs.
func mergeSentIDs(a, b []SentID, now time.Time) []SentID {
	seen := make(map[string]bool, len(a)+len(b))
	var out []SentID
	for _, s := range append(slices.Clone(a), b...) {
		if seen[s.ID] || now.Sub(s.At) > sentIDsAge {
			continue
		}
		seen[s.ID] = true
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(x, y SentID) int { return x.At.Compare(y.At) })
	if len(out) > maxSentIDs {
		out = out[len(out)-maxSentIDs:]
	}
	return out
}

// recordSentIDLocked remembers the Message-ID of msg, sent at now (saved
// with the next state write). Called with p.mu held.
func (p *Publisher) recordSentIDLocked(msg Message, now time.Time) {
	p.rec.SentIDs = mergeSentIDs(p.rec.SentIDs, []SentID{{ID: msg.MessageID, To: slices.Clone(msg.To), At: now}}, now)
}

// Store keeps the publisher's [Record], which may be shared with other
// processes (the service and a one-off `ipsync publish` using the same
// configuration).
type Store interface {
	// Load returns the saved state; found is false when there is none yet.
	Load() (rec Record, found bool, err error)
	// Update reads the saved state, passes it to fn (found is false when
	// there is none yet) and saves what fn returns, returning that. The
	// whole cycle must exclude every other Update of the same saved state,
	// in this process and in others, and the save must be atomic and
	// durable when Update returns nil: the publisher reserves sequence
	// numbers with it before it sends. fn is called at most once, while
	// the exclusion is held, and must not call the Store. Update gives up
	// with an error when ctx ends while it waits for the exclusion.
	Update(ctx context.Context, fn func(saved Record, found bool) Record) (Record, error)
}

// FileStore is a [Store] in a JSON file, written crash-safely (temporary
// file, fsync, rename) by package statefile. Updates are serialised
// between processes by statefile.Lock (an advisory lock on Path+".lock").
type FileStore struct {
	// Path is the state file; its directory is created when needed.
	Path string
}

var _ Store = FileStore{}

// Load reads the state file without locking (writes replace it atomically,
// so a reader sees a whole file). A missing file is not an error.
func (f FileStore) Load() (Record, bool, error) {
	var rec Record
	found, err := statefile.Load(f.Path, &rec)
	if err != nil {
		return Record{}, false, fmt.Errorf("load publisher state: %w", err)
	}
	return rec, found, nil
}

// Update locks the state file, reads it, saves fn's result atomically and
// unlocks. It blocks while another process or FileStore holds the lock, up
// to the end of ctx.
func (f FileStore) Update(ctx context.Context, fn func(saved Record, found bool) Record) (rec Record, err error) {
	unlock, err := statefile.Lock(ctx, f.Path)
	if err != nil {
		return Record{}, fmt.Errorf("lock publisher state: %w", err)
	}
	defer func() {
		if uerr := unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	saved, found, err := f.Load()
	if err != nil {
		return Record{}, err
	}
	rec = fn(saved, found)
	if err := statefile.Save(f.Path, rec); err != nil {
		return Record{}, fmt.Errorf("save publisher state to %s: %w", f.Path, err)
	}
	return rec, nil
}

// merge combines this process's record st with saved, the record as
// another process may have rewritten it since st was read. The higher reservation
// wins, and so does the sent record with the higher SentSeq: that is the
// message clients hold, whoever sent it. Paused is taken from saved unless
// ownPause (this process changed the switch and has not saved it yet).
func merge(st, saved Record, ownPause bool, now time.Time) Record {
	st.Seq = max(st.Seq, saved.Seq)
	if saved.SentSeq > st.SentSeq {
		st.SentSeq, st.SentAt, st.IPv4, st.IPv6 = saved.SentSeq, saved.SentAt, saved.IPv4, saved.IPv6
	}
	if !ownPause {
		st.Paused = saved.Paused
	}
	st.SentIDs = mergeSentIDs(st.SentIDs, saved.SentIDs, now)
	return st
}

// save updates the saved record: under the Store's exclusion it merges this
// process's record with the saved one (see merge), applies change if set,
// keeps the result in memory and saves it. The in-memory record keeps the
// result even when saving fails, so a reservation made by change is never
// handed out twice. Saves in this process are ordered.
func (p *Publisher) save(ctx context.Context, change func(*Record)) error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	ctx, cancel := context.WithTimeoutCause(ctx, stateTimeout, errStateTimeout)
	defer cancel()
	var wrotePause bool
	saved, err := p.opts.Store.Update(ctx, func(disk Record, found bool) Record {
		p.mu.Lock()
		defer p.mu.Unlock()
		rec := p.rec
		if found {
			rec = merge(rec, disk, p.pauseDirty, p.now())
		}
		if change != nil {
			change(&rec)
		}
		p.rec = rec
		wrotePause = p.pauseDirty
		return rec
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	if wrotePause && p.rec.Paused == saved.Paused {
		p.pauseDirty = false
	}
	p.mu.Unlock()
	return nil
}
