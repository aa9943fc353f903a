package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the payload's binary form (docs/protocol.md, "Payload").
const (
	// MaxNameLen is the longest server name, in bytes of UTF-8.
	MaxNameLen = 64

	flagIPv4 = 1 << 0
	flagIPv6 = 1 << 1

	// fixed part: flags, name length, seq, issued-at, heartbeat
	payloadFixed = 1 + 1 + 8 + 8 + 4
	minPayload   = payloadFixed + 1 + 4 // one-byte name, IPv4 only
	maxPayload   = payloadFixed + MaxNameLen + 4 + 16
)

// validate checks the rules both Seal and Open enforce, so that Open accepts
// exactly what Seal can produce.
func (p Payload) validate() error {
	if p.Name == "" {
		return errors.New("name is empty")
	}
	if len(p.Name) > MaxNameLen {
		return fmt.Errorf("name is %d bytes, longer than %d", len(p.Name), MaxNameLen)
	}
	if !utf8.ValidString(p.Name) {
		return errors.New("name is not valid UTF-8")
	}
	for _, r := range p.Name {
		if unicode.IsControl(r) {
			return fmt.Errorf("name contains control character %U", r)
		}
	}
	if !p.IPv4.IsValid() && !p.IPv6.IsValid() {
		return errors.New("no address: IPv4 and IPv6 are both unset")
	}
	if p.IPv4.IsValid() && !p.IPv4.Is4() {
		return fmt.Errorf("IPv4 field holds %v, not an IPv4 address", p.IPv4)
	}
	if p.IPv6.IsValid() {
		switch {
		case !p.IPv6.Is6():
			return fmt.Errorf("IPv6 field holds %v, not an IPv6 address", p.IPv6)
		case p.IPv6.Is4In6():
			return fmt.Errorf("IPv6 field holds IPv4-mapped address %v; put it in IPv4", p.IPv6)
		case p.IPv6.Zone() != "":
			return fmt.Errorf("IPv6 address %v has a zone, which a public address cannot have", p.IPv6)
		}
	}
	if p.IssuedAt.Before(time.Unix(0, 0)) {
		return fmt.Errorf("issued-at %v is before 1970 (unset?)", p.IssuedAt)
	}
	if p.Heartbeat < 0 || p.Heartbeat/time.Second > math.MaxUint32 {
		return fmt.Errorf("heartbeat %v is out of range 0..%ds", p.Heartbeat, uint32(math.MaxUint32))
	}
	return nil
}

// marshal appends p's canonical binary form to b. p must be valid.
func (p Payload) marshal(b []byte) []byte {
	var flags byte
	if p.IPv4.IsValid() {
		flags |= flagIPv4
	}
	if p.IPv6.IsValid() {
		flags |= flagIPv6
	}
	b = append(b, flags, byte(len(p.Name)))
	b = append(b, p.Name...)
	if p.IPv4.IsValid() {
		a := p.IPv4.As4()
		b = append(b, a[:]...)
	}
	if p.IPv6.IsValid() {
		a := p.IPv6.As16()
		b = append(b, a[:]...)
	}
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(p.IssuedAt.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(p.Heartbeat/time.Second))
	return b
}

// unmarshalPayload parses the canonical binary form and validates it. Every
// error wraps ErrMalformed.
func unmarshalPayload(b []byte) (Payload, error) {
	bad := func(format string, args ...any) (Payload, error) {
		return Payload{}, fmt.Errorf("%w: payload: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(b) < minPayload || len(b) > maxPayload {
		return bad("%d bytes, want %d..%d", len(b), minPayload, maxPayload)
	}
	flags, nameLen := b[0], int(b[1])
	if flags&^(flagIPv4|flagIPv6) != 0 {
		return bad("unknown flag bits %#02x", flags)
	}
	want := payloadFixed + nameLen
	if flags&flagIPv4 != 0 {
		want += 4
	}
	if flags&flagIPv6 != 0 {
		want += 16
	}
	if len(b) != want {
		return bad("%d bytes, but flags %#02x and name length %d need %d", len(b), flags, nameLen, want)
	}
	var p Payload
	b = b[2:]
	p.Name, b = string(b[:nameLen]), b[nameLen:]
	if flags&flagIPv4 != 0 {
		p.IPv4 = netip.AddrFrom4([4]byte(b[:4]))
		b = b[4:]
	}
	if flags&flagIPv6 != 0 {
		p.IPv6 = netip.AddrFrom16([16]byte(b[:16]))
		b = b[16:]
	}
	p.Seq = binary.BigEndian.Uint64(b)
	issued := int64(binary.BigEndian.Uint64(b[8:]))
	if issued < 0 {
		return bad("issued-at %d is before 1970", issued)
	}
	p.IssuedAt = time.Unix(issued, 0).UTC()
	p.Heartbeat = time.Duration(binary.BigEndian.Uint32(b[16:])) * time.Second
	if err := p.validate(); err != nil {
		return bad("%v", err)
	}
	return p, nil
}
