package codec

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// The sealed format, version 1. docs/protocol.md describes it byte by byte.
const (
	// Version1 is the sealed format version Seal writes and Open reads.
	Version1 = 1

	nonceSize  = chacha20poly1305.NonceSizeX // 24
	headerSize = 1 + keyIDSize + nonceSize + 1
	sigSize    = ed25519.SignatureSize
	tagSize    = chacha20poly1305.Overhead

	minSealed = minPayload + sigSize + tagSize
	maxSealed = maxPayload + sigSize + tagSize

	// MaxFrameLen is the largest sealed frame, in bytes before armouring.
	MaxFrameLen = headerSize + maxSealed

	// sigContext starts every signed message, so an ipsync signature can
	// never be mistaken for a signature over anything else.
	sigContext = "ipsync-sealed-v1"
)

// The armour's marker lines.
const (
	BeginMarker = "-----BEGIN IPSYNC MESSAGE-----"
	EndMarker   = "-----END IPSYNC MESSAGE-----"

	armourWidth = 64
	// maxArmourBody bounds the text between the markers (base64 plus any
	// whitespace) that Open will look at: generous for re-wrapping, small
	// enough that junk is refused before decoding.
	maxArmourBody = 16 << 10
)

// Seal encrypts and signs p with key and returns the armoured message: the
// BEGIN line, the base64 frame wrapped at 64 columns, and the END line, each
// ending in "\n". rand supplies the 24-byte nonce; nil means crypto/rand.
//
// IssuedAt is sent in whole seconds and Heartbeat in whole seconds
// (fractions are dropped). Seal fails if key is the zero key, if p breaks
// the rules Open enforces (non-empty name of at most MaxNameLen bytes of
// UTF-8 without control characters; at least one address; IPv4 a 4-byte
// address; IPv6 a 16-byte, non-IPv4-mapped address without zone; IssuedAt
// not before 1970; Heartbeat in 0..2^32-1 s), or if rand fails.
//
// Seal does no other I/O and is safe for concurrent use.
func Seal(p Payload, key ServerKey, rand io.Reader) (string, error) {
	if !key.valid() {
		return "", errors.New("seal: zero server key")
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("seal: invalid payload: %w", err)
	}
	if rand == nil {
		rand = crand.Reader
	}
	var nonce [nonceSize]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return "", fmt.Errorf("seal: read nonce: %w", err)
	}
	frame, err := sealFrame(p.marshal(nil), key.secret[:], key.id, key.priv, nonce[:])
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	return armour(frame), nil
}

// sealFrame builds a version-1 frame. Tests call it with mismatched parts to
// build messages Seal never would.
func sealFrame(plaintext, secret []byte, id [keyIDSize]byte, priv ed25519.PrivateKey, nonce []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(secret)
	if err != nil {
		return nil, fmt.Errorf("init XChaCha20-Poly1305: %w", err)
	}
	sealedLen := len(plaintext) + sigSize + tagSize
	if sealedLen > 255 {
		return nil, fmt.Errorf("plaintext of %d bytes is too long", len(plaintext))
	}
	frame := make([]byte, 0, headerSize+sealedLen)
	frame = append(frame, Version1)
	frame = append(frame, id[:]...)
	frame = append(frame, nonce...)
	frame = append(frame, byte(sealedLen))
	header := frame[:headerSize:headerSize]

	msg := make([]byte, 0, len(sigContext)+headerSize+len(plaintext))
	msg = append(msg, sigContext...)
	msg = append(msg, header...)
	msg = append(msg, plaintext...)
	sig := ed25519.Sign(priv, msg)

	inner := make([]byte, 0, len(plaintext)+sigSize)
	inner = append(inner, plaintext...)
	inner = append(inner, sig...)
	return aead.Seal(frame, nonce, inner, header), nil
}

// armour wraps a frame in the marker lines.
func armour(frame []byte) string {
	enc := base64.StdEncoding.EncodeToString(frame)
	var b strings.Builder
	b.Grow(len(BeginMarker) + len(EndMarker) + len(enc) + len(enc)/armourWidth + 4)
	b.WriteString(BeginMarker)
	b.WriteByte('\n')
	for len(enc) > armourWidth {
		b.WriteString(enc[:armourWidth])
		b.WriteByte('\n')
		enc = enc[armourWidth:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	b.WriteString(EndMarker)
	b.WriteByte('\n')
	return b.String()
}

// Open finds the armoured message in text, decrypts it with whichever of
// keys has its key id, verifies the signature and returns the payload.
//
// text may hold other text around the armour (mail headers, greetings,
// footers); the first BEGIN marker and the first END marker after it are
// used and anything after the END marker is ignored. Between the markers
// only base64 and whitespace (space, tab, CR, LF) may appear, so any
// re-wrapping and CRLF line ends are accepted, while quoting ('>') or other
// additions are not. Undo transfer encodings (quoted-printable, base64)
// before calling Open.
//
// Errors, to test with errors.Is: ErrMalformed (no armour, bad base64, a
// truncated or extended frame, or a payload that breaks Seal's rules);
// ErrVersion (a frame of another format version); ErrWrongKey (no key has
// the message's key id, or none with that id decrypts it: a different
// secret, or a damaged message); ErrBadSignature (it decrypts but the
// signature is not that key's server's). Zero keys in keys are skipped.
//
// IssuedAt is returned in UTC. Open checks neither the name, nor the
// sequence, nor the time against anything: that is the caller's job. It
// does no I/O and is safe for concurrent use.
func Open(text string, keys ...ClientKey) (Payload, error) {
	frame, err := dearmour(text)
	if err != nil {
		return Payload{}, fmt.Errorf("open: %w", err)
	}
	p, err := openFrame(frame, keys)
	if err != nil {
		return Payload{}, fmt.Errorf("open: %w", err)
	}
	return p, nil
}

// dearmour extracts and decodes the frame. Errors wrap ErrMalformed.
func dearmour(text string) ([]byte, error) {
	i := strings.Index(text, BeginMarker)
	if i < 0 {
		return nil, fmt.Errorf("%w: no %q line", ErrMalformed, BeginMarker)
	}
	start := i + len(BeginMarker)
	j := strings.Index(text[start:], EndMarker)
	if j < 0 {
		return nil, fmt.Errorf("%w: no %q line after the BEGIN line (message cut off?)", ErrMalformed, EndMarker)
	}
	body := text[start : start+j]
	if len(body) > maxArmourBody {
		return nil, fmt.Errorf("%w: armour is %d bytes long, more than %d", ErrMalformed, len(body), maxArmourBody)
	}
	enc := make([]byte, 0, len(body))
	for k := 0; k < len(body); k++ {
		c := body[k]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
			enc = append(enc, c)
		case c == '>':
			return nil, fmt.Errorf("%w: armour contains '>' at byte %d (quoted in a reply?)", ErrMalformed, start+k)
		default:
			return nil, fmt.Errorf("%w: armour contains byte %#02x at byte %d, which is neither base64 nor whitespace", ErrMalformed, c, start+k)
		}
	}
	if len(enc) == 0 {
		return nil, fmt.Errorf("%w: armour is empty", ErrMalformed)
	}
	frame, err := base64.StdEncoding.Strict().DecodeString(string(enc))
	if err != nil {
		return nil, fmt.Errorf("%w: armour base64: %v", ErrMalformed, err)
	}
	return frame, nil
}

// openFrame checks, decrypts and verifies a frame.
func openFrame(frame []byte, keys []ClientKey) (Payload, error) {
	if len(frame) == 0 {
		return Payload{}, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if v := frame[0]; v != Version1 {
		return Payload{}, fmt.Errorf("%w: format version %d (this build reads %d)", ErrVersion, v, Version1)
	}
	if len(frame) < headerSize {
		return Payload{}, fmt.Errorf("%w: frame of %d bytes is shorter than its %d-byte header (truncated?)", ErrMalformed, len(frame), headerSize)
	}
	header := frame[:headerSize:headerSize]
	sealedLen := int(header[headerSize-1])
	if sealedLen < minSealed || sealedLen > maxSealed {
		return Payload{}, fmt.Errorf("%w: header gives sealed length %d, want %d..%d", ErrMalformed, sealedLen, minSealed, maxSealed)
	}
	if got := len(frame) - headerSize; got != sealedLen {
		return Payload{}, fmt.Errorf("%w: header gives sealed length %d but %d bytes follow (truncated or extended?)", ErrMalformed, sealedLen, got)
	}
	id := [keyIDSize]byte(header[1 : 1+keyIDSize])
	nonce := header[1+keyIDSize : 1+keyIDSize+nonceSize]
	sealed := frame[headerSize:]

	var tried []string
	for _, k := range keys {
		if !k.valid() || k.id != id {
			continue
		}
		tried = append(tried, k.String())
		aead, err := chacha20poly1305.NewX(k.secret[:])
		if err != nil {
			return Payload{}, fmt.Errorf("init XChaCha20-Poly1305: %w", err) // impossible: the key size is fixed
		}
		inner, err := aead.Open(nil, nonce, sealed, header)
		if err != nil {
			continue
		}
		plaintext, sig := inner[:len(inner)-sigSize], inner[len(inner)-sigSize:]
		msg := make([]byte, 0, len(sigContext)+headerSize+len(plaintext))
		msg = append(msg, sigContext...)
		msg = append(msg, header...)
		msg = append(msg, plaintext...)
		if !ed25519.Verify(k.pub, msg, sig) {
			return Payload{}, fmt.Errorf("%w (key id %s)", ErrBadSignature, k.ID())
		}
		return unmarshalPayload(plaintext)
	}
	if len(tried) == 0 {
		have := make([]string, 0, len(keys))
		for _, k := range keys {
			if k.valid() {
				have = append(have, k.ID())
			}
		}
		if len(have) == 0 {
			return Payload{}, fmt.Errorf("%w: no client keys given", ErrWrongKey)
		}
		return Payload{}, fmt.Errorf("%w: message has key id %s, keys held: %s", ErrWrongKey, hex.EncodeToString(id[:]), strings.Join(have, ", "))
	}
	return Payload{}, fmt.Errorf("%w: %s does not decrypt it (different secret for the same signing key, or damaged in transit)", ErrWrongKey, strings.Join(tried, ", "))
}
