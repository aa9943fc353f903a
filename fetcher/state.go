package fetcher

import (
	"encoding/json"
	"net/netip"
	"time"

	"ipsync/codec"
	"ipsync/health"
)

// State is what a client knows about its server: one of Unknown, Current,
// Stale, Unreachable or Error (see package health for their meaning). It is
// health.State, the tray's own states, so main hands it on without a copy.
type State = health.State

// The states a Fetcher reports; it never reports health.Working, but sets
// Update.Fetching instead.
const (
	Unknown     = health.Unknown
	Current     = health.Current
	Stale       = health.Stale
	Unreachable = health.Unreachable
	Error       = health.Error
)

// Mode strings reported in Update.Mode.
const (
	ModeIdle       = "idle"
	ModePoll       = "poll"
	ModePollShared = "poll (shared mailbox)"
)

// Update is one report from a running Fetcher.
type Update struct {
	// State summarises the situation.
	State State
	// Payload is the last accepted message; zero if none.
	Payload codec.Payload
	// Previous is the accepted message before Payload; zero if none.
	Previous codec.Payload
	// Changed is true on the one Update where a newly accepted message
	// carries a different address than Previous (or is the first one).
	Changed bool
	// Format is the format Payload arrived in.
	Format codec.Format
	// ReceivedAt is when Payload was accepted (by the Fetcher's clock).
	ReceivedAt time.Time
	// LastCheck is when the mailbox was last read successfully; zero if
	// never in this run.
	LastCheck time.Time
	// Mode is "idle", "poll" or "poll (shared mailbox)"; "" before the
	// first connection.
	Mode string
	// Fetching is true while a fetch is in progress.
	Fetching bool
	// Err is the last mail error when State is Error, and the probe error
	// when State is Unreachable; nil otherwise.
	Err error
}

// Consumer receives Updates from Run.
type Consumer interface {
	// Update is called from the Fetcher's goroutine, one call at a time.
	// It must not block: hand the Update to another goroutine (a
	// channel with room, or a tray's SetStatus) and return.
	Update(Update)
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(Update)

// Update calls f(u).
func (f ConsumerFunc) Update(u Update) { f(u) }

var _ Consumer = ConsumerFunc(nil)

// Result is the outcome of FetchOnce.
type Result struct {
	Name      string        `json:"name"`
	IPv4      netip.Addr    `json:"ipv4"`
	IPv6      netip.Addr    `json:"ipv6"`
	Seq       uint64        `json:"sequence"`
	IssuedAt  time.Time     `json:"issued_at"`
	Age       time.Duration `json:"-"`
	Format    codec.Format  `json:"format"`
	Heartbeat time.Duration `json:"-"`
}

// MarshalJSON writes Age and Heartbeat as Go duration strings ("1h2m3s").
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		Age       string `json:"age"`
		Heartbeat string `json:"heartbeat,omitempty"`
	}{plain(r), r.Age.Round(time.Second).String(), durString(r.Heartbeat)})
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// saved is the state file's content.
type saved struct {
	Version     int           `json:"version"`
	Account     string        `json:"account"`
	Accepted    *savedPayload `json:"accepted,omitempty"`
	Format      codec.Format  `json:"format,omitempty"`
	ReceivedAt  time.Time     `json:"received_at,omitzero"`
	SeenUID     uint32        `json:"seen_uid"`
	UIDValidity uint32        `json:"uid_validity"`
	// ExaminedLo and ExaminedHi (0 if none) bound a run of candidates
	// above SeenUID that were all examined and rejected by a scan that ran
	// out of tries; the next scan skips them and continues below.
	ExaminedLo uint32 `json:"examined_lo,omitempty"`
	ExaminedHi uint32 `json:"examined_hi,omitempty"`
}

type savedPayload struct {
	Name      string        `json:"name"`
	IPv4      netip.Addr    `json:"ipv4,omitzero"`
	IPv6      netip.Addr    `json:"ipv6,omitzero"`
	Seq       uint64        `json:"seq"`
	IssuedAt  time.Time     `json:"issued_at"`
	Heartbeat time.Duration `json:"heartbeat_ns"`
}

func toSaved(p codec.Payload) *savedPayload {
	return &savedPayload{Name: p.Name, IPv4: p.IPv4, IPv6: p.IPv6, Seq: p.Seq, IssuedAt: p.IssuedAt, Heartbeat: p.Heartbeat}
}

func (s *savedPayload) payload() codec.Payload {
	if s == nil {
		return codec.Payload{}
	}
	return codec.Payload{Name: s.Name, IPv4: s.IPv4, IPv6: s.IPv6, Seq: s.Seq, IssuedAt: s.IssuedAt, Heartbeat: s.Heartbeat}
}

const stateVersion = 1
