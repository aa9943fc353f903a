package publisher

import (
	"fmt"
	"net/netip"
	"time"

	"ipsync/statefile"
)

// State is what the publisher remembers between runs.
type State struct {
	// Seq is the highest sequence number reserved so far. A number is
	// reserved (and this State saved) before the message carrying it is
	// sent, so the next message always uses Seq+1 and no number is reused,
	// even after a crash between reserving and sending.
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

// Store keeps the publisher's [State]. Save must be atomic and durable when
// it returns nil: the publisher relies on it before it sends.
type Store interface {
	// Load returns the saved state; found is false when there is none yet.
	Load() (st State, found bool, err error)
	// Save replaces the saved state.
	Save(State) error
}

// FileStore is a [Store] in a JSON file, written crash-safely (temporary
// file, fsync, rename) by package statefile.
type FileStore struct {
	// Path is the state file; its directory is created when needed.
	Path string
}

var _ Store = FileStore{}

// Load reads the state file. A missing file is not an error.
func (f FileStore) Load() (State, bool, error) {
	var st State
	found, err := statefile.Load(f.Path, &st)
	if err != nil {
		return State{}, false, fmt.Errorf("load publisher state: %w", err)
	}
	return st, found, nil
}

// Save writes the state file atomically.
func (f FileStore) Save(st State) error {
	if err := statefile.Save(f.Path, st); err != nil {
		return fmt.Errorf("save publisher state to %s: %w", f.Path, err)
	}
	return nil
}
