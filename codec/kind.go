package codec

import (
	"fmt"
	"strings"
)

// KeyKind is the kind of key a text holds: a server key (which signs), a
// client key (which only opens and verifies), or neither.
type KeyKind int

// The key kinds.
const (
	KeyUnknown KeyKind = iota // no ipsync key line, or one of an unknown kind or version
	KeyServer                 // "ipsync-server-1:…"
	KeyClient                 // "ipsync-client-1:…"
)

// String returns "server key", "client key" or "unknown key".
func (k KeyKind) String() string {
	switch k {
	case KeyServer:
		return "server key"
	case KeyClient:
		return "client key"
	}
	return "unknown key"
}

// KindOf reports which kind of key text holds, from the prefixes of its
// lines; blank lines and '#' comments are skipped and the keys themselves
// are not checked. Text with a server-key line is KeyServer even if it also
// holds client keys: that is the whole output of `ipsync keygen`, which
// ParseServerKeyFile accepts. Text with only client-key lines is KeyClient.
// Anything else is KeyUnknown.
func KindOf(text string) KeyKind {
	kind := KeyUnknown
	for _, line := range keyLines(text) {
		switch {
		case strings.HasPrefix(line, serverKeyPrefix):
			return KeyServer
		case strings.HasPrefix(line, clientKeyPrefix):
			kind = KeyClient
		}
	}
	return kind
}

// KeyKindError is the error for a key of the wrong kind: a client key
// where the server key is needed, or the reverse. Its message says which
// key is needed and where `ipsync keygen` puts it.
type KeyKindError struct {
	Want, Got KeyKind
}

func (e *KeyKindError) Error() string {
	if e.Want == KeyServer {
		return "this is a client key, but the server needs the server key (" +
			serverKeyPrefix + "…, server.key of `ipsync keygen --out DIR`)"
	}
	return "this is a server key, which can forge messages: clients need the client key (" +
		clientKeyPrefix + "…, client.key of `ipsync keygen --out DIR`)"
}

// ParseServerKeyFile reads the server key from the text of a key file: the
// key alone, or the whole output of `ipsync keygen` saved as it is
// (comments, the server key, then its client key). A file whose only keys
// are client keys fails with a *KeyKindError. Errors never quote the key.
func ParseServerKeyFile(text string) (ServerKey, error) {
	var server []string
	for _, line := range keyLines(text) {
		if strings.HasPrefix(line, serverKeyPrefix) {
			server = append(server, line)
		}
	}
	switch lines := keyLines(text); {
	case len(server) == 1:
		return ParseServerKey(server[0])
	case len(server) > 1:
		return ServerKey{}, fmt.Errorf("parse server key: %d server keys in one file; keep only the one this server signs with", len(server))
	case len(lines) == 1:
		return ParseServerKey(lines[0])
	case KindOf(text) == KeyClient:
		return ServerKey{}, fmt.Errorf("parse server key: %w", &KeyKindError{Want: KeyServer, Got: KeyClient})
	}
	return ParseServerKey(text)
}

// keyLines returns the non-empty lines of text with '#' comments and
// surrounding white space removed.
func keyLines(text string) []string {
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}
