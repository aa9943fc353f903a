package fetcher

import (
	"encoding/json"
	"net/netip"
	"slices"
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
	// AuthRefused: the mail server refused the user name or password
	// (IMAP [AUTHENTICATIONFAILED] and the other RFC 5530 login codes).
	// Retrying will not help until the configuration changes, so Run
	// backs off to hours; FetchNow retries at once.
	AuthRefused = health.AuthRefused
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
	// SignInNeeded is true (with State Error, and Err matching
	// ErrSignInNeeded) while the OAuth2 sign-in is no longer accepted:
	// Run does not log in until the user signs in again (`ipsync login`,
	// the tray's "Sign in…"); it notices a new sign-in within 5 minutes
	// without contacting the mail server, and at once on FetchNow.
	SignInNeeded bool
	// Err is the last mail error when State is Error or AuthRefused, and
	// the probe error when State is Unreachable; nil otherwise.
	Err error
	// Problem, when not "", says why the client shows no current address
	// although the mailbox holds messages meant for it, counted by reason
	// since the last valid one, e.g. "12 messages signed by another key
	// (key id 3f2a…; this client holds 9c01…)" or "1 message dated 11 min
	// in the future (is this PC's clock right?)". It is independent of
	// State: a Current or Stale address may come with a Problem (then the
	// address is not the server's newest, or is overdue).
	Problem string
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
	// Name is the server's name (the configured name when there is no
	// message).
	Name string
	// IPv4 and IPv6 are the addresses; zero when absent.
	IPv4, IPv6 netip.Addr
	// Seq is the message's sequence number (0 for legacy messages).
	Seq uint64
	// IssuedAt is when the server issued the message; zero if none.
	IssuedAt time.Time
	// Age is how long ago the message was issued, by the Fetcher's clock;
	// negative for a message dated ahead of this PC's clock (accepted
	// within MaxFuture).
	Age time.Duration
	// Format is the format the message came in.
	Format codec.Format
	// Heartbeat is the server's heartbeat interval (0 if unknown).
	Heartbeat time.Duration
	// Problem, when not "", says why the address is not current (see
	// Update.Problem): the address, if any, is only the last known one.
	Problem string
}

// MarshalJSON writes the one JSON shape of a fetch result (`ipsync fetch
// --once --json`): name, ipv4 and ipv6 (null when absent), sequence,
// issued_at (RFC 3339, null when there is no message), age_seconds
// (null likewise), format, heartbeat_seconds (when known) and problem
// (when there is one).
func (r Result) MarshalJSON() ([]byte, error) {
	out := struct {
		Name       string  `json:"name"`
		IPv4       *string `json:"ipv4"`
		IPv6       *string `json:"ipv6"`
		Seq        *uint64 `json:"sequence"`
		IssuedAt   *string `json:"issued_at"`
		AgeSeconds *int64  `json:"age_seconds"`
		Format     string  `json:"format,omitempty"`
		Heartbeat  int64   `json:"heartbeat_seconds,omitempty"`
		Problem    string  `json:"problem,omitempty"`
	}{Name: r.Name, Format: string(r.Format), Heartbeat: int64(r.Heartbeat / time.Second), Problem: r.Problem}
	if r.Seq != 0 { // sequences start at 1: 0 is "no message"
		seq := r.Seq
		out.Seq = &seq
	}
	if r.IPv4.IsValid() {
		s := r.IPv4.String()
		out.IPv4 = &s
	}
	if r.IPv6.IsValid() {
		s := r.IPv6.String()
		out.IPv6 = &s
	}
	if !r.IssuedAt.IsZero() {
		s := r.IssuedAt.UTC().Format(time.RFC3339)
		age := int64(r.Age.Round(time.Second) / time.Second)
		out.IssuedAt, out.AgeSeconds = &s, &age
	}
	return json.Marshal(out)
}

// saved is the state file's content.
type saved struct {
	Version    int           `json:"version"`
	Account    string        `json:"account"`
	Accepted   *savedPayload `json:"accepted,omitempty"`
	Format     codec.Format  `json:"format,omitempty"`
	ReceivedAt time.Time     `json:"received_at,omitzero"`
	// AcceptedUID is the UID of Accepted in UIDValidity (0: unknown).
	AcceptedUID uint32 `json:"accepted_uid,omitempty"`
	UIDValidity uint32 `json:"uid_validity"`
	// Examined holds the UIDs that need never be read again: searched and
	// found not to be candidates (other subject, too large), judged for
	// good (junk, forged, not newer), or below a point under which nothing
	// can be newer than a message delivered on time (see scanner.floor).
	Examined uidRanges `json:"examined"`
	// Held holds candidates rejected for a reason that depends on this
	// client's keys or name; they are read again when KeyIDs or Name
	// change.
	Held   uidRanges `json:"held,omitempty"`
	KeyIDs []string  `json:"key_ids,omitempty"`
	Name   string    `json:"name,omitempty"`
	// Future lists messages of this server dated too far ahead; each is
	// read again once its time is near enough.
	Future []futureMessage `json:"future,omitempty"`
	// Rejected counts, by reason, the candidates rejected above
	// AcceptedUID: the diagnosis shown when no valid message is current.
	Rejected rejections `json:"rejected,omitzero"`
}

// futureMessage is a verified message of this server dated too far ahead.
type futureMessage struct {
	UID      uint32    `json:"uid"`
	Seq      uint64    `json:"seq"`
	IssuedAt time.Time `json:"issued_at"`
}

// rejections are the candidates rejected since the last valid message.
type rejections struct {
	// OtherKey: no key of this client opens them.
	OtherKey uidRanges `json:"other_key,omitempty"`
	// OtherKeyIDs are the key ids those messages name (a few).
	OtherKeyIDs []string `json:"other_key_ids,omitempty"`
	// OtherName: they open and verify but name another server.
	OtherName  uidRanges `json:"other_name,omitempty"`
	OtherNames []string  `json:"other_names,omitempty"`
	// Junk: malformed, forged, not an ipsync message.
	Junk uidRanges `json:"junk,omitempty"`
}

// maxNoted bounds the key ids and names kept for the diagnosis.
const maxNoted = 3

func note(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) || len(list) >= maxNoted {
		return list
	}
	return append(list, v)
}

// dropUpTo forgets the rejections at or below uid (older than the valid
// message at uid).
func (r *rejections) dropUpTo(uid uint32) {
	r.OtherKey.removeUpTo(uid)
	r.OtherName.removeUpTo(uid)
	r.Junk.removeUpTo(uid)
	if len(r.OtherKey) == 0 {
		r.OtherKeyIDs = nil
	}
	if len(r.OtherName) == 0 {
		r.OtherNames = nil
	}
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

// stateVersion 2 replaced version 1's single seen-UID bound (which hid
// messages rejected for reasons that could change) by UID sets; a version 1
// file keeps its accepted message and reads the mailbox afresh.
const stateVersion = 2
