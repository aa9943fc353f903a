package codec

import (
	"errors"
	"net/netip"
	"time"
)

// Format names a message format, as written in the config's codec.format.
type Format string

const (
	// FormatSealed is the default: encrypted and signed.
	FormatSealed Format = "sealed"
	// FormatLegacy is the original tool's obfuscated IPv4 text (no security).
	FormatLegacy Format = "legacy"
)

// Payload is what one message says about one server.
type Payload struct {
	// Name identifies the server; clients accept only their configured name.
	Name string
	// IPv4 is the server's public IPv4 address; the zero Addr means none.
	IPv4 netip.Addr
	// IPv6 is the server's public IPv6 address; the zero Addr means none.
	IPv6 netip.Addr
	// Seq increases by at least one with every message a server sends.
	// Clients ignore a message whose Seq is not above the last accepted one.
	Seq uint64
	// IssuedAt is when the server wrote the message (UTC, second precision
	// on the wire).
	IssuedAt time.Time
	// Heartbeat is the server's heartbeat interval, so clients can tell when
	// it has gone silent. Zero means unknown.
	Heartbeat time.Duration
}

// Errors that callers branch on. Open and Decode wrap them with detail;
// test with errors.Is.
var (
	// ErrMalformed: the text is not a well-formed message of the format.
	ErrMalformed = errors.New("malformed message")
	// ErrVersion: a sealed message of a format version this build does not know.
	ErrVersion = errors.New("unsupported message version")
	// ErrWrongKey: none of the client keys matches the message's key id, or
	// the matching key does not decrypt it.
	ErrWrongKey = errors.New("no key opens this message")
	// ErrBadSignature: the message decrypts but its signature is not the
	// server's (tampered, or signed by another server key).
	ErrBadSignature = errors.New("message signature does not verify")
)
