package codec

import (
	"bytes"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Text-form prefixes of the two key kinds. The trailing digit is the key
// format version.
const (
	serverKeyPrefix = "ipsync-server-1:"
	clientKeyPrefix = "ipsync-client-1:"
)

const (
	secretSize   = 32 // XChaCha20-Poly1305 key
	keyIDSize    = 8  // bytes of the key id on the wire
	checksumSize = 4  // typo check at the end of a key's text form

	// serverKeyBody and clientKeyBody are the decoded sizes of the text
	// forms: secret, then Ed25519 seed or public key, then checksum.
	serverKeyBody = secretSize + ed25519.SeedSize + checksumSize
	clientKeyBody = secretSize + ed25519.PublicKeySize + checksumSize
)

// keyIDContext separates key-id hashing from any other use of SHA-256.
const keyIDContext = "ipsync key id v1"

// ServerKey is a server's secret key material: the 32-byte secret it shares
// with its clients (to encrypt) and its Ed25519 private key (to sign). It is
// what Seal needs.
//
// The zero ServerKey is invalid: Seal refuses it, Text and ID return "".
// A ServerKey is immutable and safe for concurrent use. Its String and
// GoString methods are redacted, so printing or logging it with fmt or slog
// never reveals the secret; only Text does.
type ServerKey struct {
	secret [secretSize]byte
	priv   ed25519.PrivateKey // nil in the zero value
	id     [keyIDSize]byte
}

// ClientKey is what a client needs to open a server's messages: the shared
// 32-byte secret (to decrypt) and the server's Ed25519 public key (to
// verify). Holding it does not allow forging messages.
//
// The zero ClientKey is invalid: Open skips it, Text and ID return "".
// A ClientKey is immutable and safe for concurrent use. String and GoString
// are redacted; only Text reveals the secret.
type ClientKey struct {
	secret [secretSize]byte
	pub    ed25519.PublicKey // nil in the zero value
	id     [keyIDSize]byte
}

// GenerateServerKey makes a new server key from 64 bytes of rand: the first
// 32 are the shared secret, the next 32 the Ed25519 seed. A nil rand means
// crypto/rand. It fails only if rand does.
func GenerateServerKey(rand io.Reader) (ServerKey, error) {
	if rand == nil {
		rand = crand.Reader
	}
	var b [secretSize + ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return ServerKey{}, fmt.Errorf("generate server key: read random bytes: %w", err)
	}
	return newServerKey(b[:secretSize], b[secretSize:]), nil
}

func newServerKey(secret, seed []byte) ServerKey {
	k := ServerKey{priv: ed25519.NewKeyFromSeed(seed)}
	copy(k.secret[:], secret)
	k.id = keyID(k.priv.Public().(ed25519.PublicKey))
	return k
}

func newClientKey(secret, pub []byte) ClientKey {
	k := ClientKey{pub: bytes.Clone(pub)}
	copy(k.secret[:], secret)
	k.id = keyID(k.pub)
	return k
}

// keyID is the first 8 bytes of SHA-256("ipsync key id v1" || public key).
func keyID(pub ed25519.PublicKey) [keyIDSize]byte {
	h := sha256.New()
	h.Write([]byte(keyIDContext))
	h.Write(pub)
	var id [keyIDSize]byte
	copy(id[:], h.Sum(nil))
	return id
}

// keyChecksum is the first 4 bytes of SHA-256(prefix || body), appended to a
// key's text form so that a mistyped or cut-off key is reported as such
// instead of as a key that opens nothing.
func keyChecksum(prefix string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(body)
	return h.Sum(nil)[:checksumSize]
}

func keyText(prefix string, a, b []byte) string {
	body := make([]byte, 0, len(a)+len(b)+checksumSize)
	body = append(body, a...)
	body = append(body, b...)
	body = append(body, keyChecksum(prefix, body)...)
	return prefix + base64.RawURLEncoding.EncodeToString(body)
}

// parseKeyText checks kind, encoding, length and checksum of one key's text
// form and returns the body without its checksum. Error messages never quote
// the text: it is secret.
func parseKeyText(text string, want KeyKind, bodyLen int) ([]byte, error) {
	prefix, what := serverKeyPrefix, "server key"
	if want == KeyClient {
		prefix, what = clientKeyPrefix, "client key"
	}
	text = strings.TrimSpace(text)
	switch got := KindOf(text); {
	case text == "":
		return nil, fmt.Errorf("parse %s: empty text", what)
	case got != KeyUnknown && got != want:
		return nil, fmt.Errorf("parse %s: %w", what, &KeyKindError{Want: want, Got: got})
	case !strings.HasPrefix(text, prefix):
		if strings.HasPrefix(text, "ipsync-") {
			if i := strings.IndexByte(text, ':'); i > 0 && i < 32 {
				return nil, fmt.Errorf("parse %s: unknown key kind or version %q (this build reads %q)", what, text[:i+1], prefix)
			}
		}
		return nil, fmt.Errorf("parse %s: does not start with %q (`ipsync keygen` prints keys in this form)", what, prefix)
	}
	enc := text[len(prefix):]
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("parse %s: invalid character at position %d (want unpadded base64url: A-Z a-z 0-9 - _)", what, len(prefix)+i+1)
		}
	}
	if want := base64.RawURLEncoding.EncodedLen(bodyLen); len(enc) != want {
		return nil, fmt.Errorf("parse %s: key part is %d characters, want %d (cut off or joined with something?)", what, len(enc), want)
	}
	body, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("parse %s: decode base64url: %w", what, err)
	}
	n := len(body) - checksumSize
	if subtle.ConstantTimeCompare(body[n:], keyChecksum(prefix, body[:n])) != 1 {
		return nil, fmt.Errorf("parse %s: checksum mismatch (typo or damaged copy?)", what)
	}
	return body[:n], nil
}

// ParseServerKey reads a server key's text form, as written by Text
// ("ipsync-server-1:" and unpadded base64url). Surrounding whitespace is
// ignored. A client key is refused with a *KeyKindError. Errors say what is
// wrong without quoting the secret.
func ParseServerKey(text string) (ServerKey, error) {
	body, err := parseKeyText(text, KeyServer, serverKeyBody)
	if err != nil {
		return ServerKey{}, err
	}
	return newServerKey(body[:secretSize], body[secretSize:]), nil
}

// ParseClientKey reads a client key's text form, as written by Text
// ("ipsync-client-1:" and unpadded base64url). Surrounding whitespace is
// ignored. A server key is refused with a *KeyKindError: clients must never
// hold the signing key.
func ParseClientKey(text string) (ClientKey, error) {
	body, err := parseKeyText(text, KeyClient, clientKeyBody)
	if err != nil {
		return ClientKey{}, err
	}
	return newClientKey(body[:secretSize], body[secretSize:]), nil
}

// ParseClientKeys reads several client keys, one per line, as a client holds
// them while a server's key rotates. Blank lines are skipped and a '#' starts
// a comment that runs to the end of the line. Repeated keys are kept once.
// It fails if a line is not a client key (naming the line) or if no key is
// found.
func ParseClientKeys(text string) ([]ClientKey, error) {
	var keys []ClientKey
	seen := map[string]bool{}
	for i, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, err := ParseClientKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		if t := k.Text(); !seen[t] {
			seen[t] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("parse client keys: no key found")
	}
	return keys, nil
}

func (k ServerKey) valid() bool { return len(k.priv) == ed25519.PrivateKeySize }
func (k ClientKey) valid() bool { return len(k.pub) == ed25519.PublicKeySize }

// Text returns the key's full secret text form, "ipsync-server-1:" followed
// by unpadded base64url of secret || Ed25519 seed || checksum, for keygen
// output and key files. It returns "" for the zero key. Never log it.
func (k ServerKey) Text() string {
	if !k.valid() {
		return ""
	}
	return keyText(serverKeyPrefix, k.secret[:], k.priv.Seed())
}

// String returns a redacted description naming only the key id, e.g.
// "server key 3f2a9c1d0b4e5f60". It is safe to log.
func (k ServerKey) String() string {
	if !k.valid() {
		return "server key (none)"
	}
	return "server key " + k.ID()
}

// GoString is String, so that %#v does not print the secret.
func (k ServerKey) GoString() string { return k.String() }

// ID returns the key id as 16 lower-case hex digits. A server key and the
// client key derived from it have the same id; it is not secret. It returns
// "" for the zero key.
func (k ServerKey) ID() string {
	if !k.valid() {
		return ""
	}
	return hex.EncodeToString(k.id[:])
}

// ClientKey returns the key its clients need: the same secret and the public
// half of the signing key. The zero ServerKey gives the zero ClientKey.
func (k ServerKey) ClientKey() ClientKey {
	if !k.valid() {
		return ClientKey{}
	}
	return ClientKey{secret: k.secret, pub: k.priv.Public().(ed25519.PublicKey), id: k.id}
}

// Text returns the key's full secret text form, "ipsync-client-1:" followed
// by unpadded base64url of secret || Ed25519 public key || checksum. It
// returns "" for the zero key. Never log it: the secret decrypts messages.
func (k ClientKey) Text() string {
	if !k.valid() {
		return ""
	}
	return keyText(clientKeyPrefix, k.secret[:], k.pub)
}

// String returns a redacted description naming only the key id, e.g.
// "client key 3f2a9c1d0b4e5f60". It is safe to log.
func (k ClientKey) String() string {
	if !k.valid() {
		return "client key (none)"
	}
	return "client key " + k.ID()
}

// GoString is String, so that %#v does not print the secret.
func (k ClientKey) GoString() string { return k.String() }

// ID returns the key id as 16 lower-case hex digits, the same as the server
// key's. It returns "" for the zero key.
func (k ClientKey) ID() string {
	if !k.valid() {
		return ""
	}
	return hex.EncodeToString(k.id[:])
}
