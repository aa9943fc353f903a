package publisher

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"ipsync/statefile"
)

// State is what the publisher remembers between runs.
type State struct {
	// Seq is the highest sequence number reserved so far. A number is
	// reserved (and this State saved, under the Store's exclusion) before
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
}

// Store keeps the publisher's [State], which may be shared with other
// processes (the service and a one-off `ipsync publish` using the same
// configuration).
type Store interface {
	// Load returns the saved state; found is false when there is none yet.
	Load() (st State, found bool, err error)
	// Update reads the saved state, passes it to fn (found is false when
	// there is none yet) and saves what fn returns, returning that. The
	// whole cycle must exclude every other Update of the same saved state,
	// in this process and in others, and the save must be atomic and
	// durable when Update returns nil: the publisher reserves sequence
	// numbers with it before it sends. fn is called at most once, while
	// the exclusion is held, and must not call the Store. Update gives up
	// with an error when ctx ends while it waits for the exclusion.
	Update(ctx context.Context, fn func(saved State, found bool) State) (State, error)
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
func (f FileStore) Load() (State, bool, error) {
	var st State
	found, err := statefile.Load(f.Path, &st)
	if err != nil {
		return State{}, false, fmt.Errorf("load publisher state: %w", err)
	}
	return st, found, nil
}

// Update locks the state file, reads it, saves fn's result atomically and
// unlocks. It blocks while another process or FileStore holds the lock, up
// to the end of ctx.
func (f FileStore) Update(ctx context.Context, fn func(saved State, found bool) State) (st State, err error) {
	unlock, err := statefile.Lock(ctx, f.Path)
	if err != nil {
		return State{}, fmt.Errorf("lock publisher state: %w", err)
	}
	defer func() {
		if uerr := unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	saved, found, err := f.Load()
	if err != nil {
		return State{}, err
	}
	st = fn(saved, found)
	if err := statefile.Save(f.Path, st); err != nil {
		return State{}, fmt.Errorf("save publisher state to %s: %w", f.Path, err)
	}
	return st, nil
}

// merge combines this process's state st with saved, the state as another
// process may have rewritten it since st was read. The higher reservation
// wins, and so does the sent record with the higher SentSeq: that is the
// message clients hold, whoever sent it. Paused is taken from saved unless
// ownPause (this process changed the switch and has not saved it yet).
func merge(st, saved State, ownPause bool) State {
	st.Seq = max(st.Seq, saved.Seq)
	if saved.SentSeq > st.SentSeq {
		st.SentSeq, st.SentAt, st.IPv4, st.IPv6 = saved.SentSeq, saved.SentAt, saved.IPv4, saved.IPv6
	}
	if !ownPause {
		st.Paused = saved.Paused
	}
	return st
}
