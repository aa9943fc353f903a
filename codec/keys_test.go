package codec

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// countingReader yields 0, 1, 2, ... starting at start.
type countingReader struct{ next byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// testServerKey returns a fixed server key made from bytes start, start+1, ...
func testServerKey(t testing.TB, start byte) ServerKey {
	t.Helper()
	k, err := GenerateServerKey(&countingReader{next: start})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateServerKey(t *testing.T) {
	t.Parallel()
	a, err := GenerateServerKey(nil)
	if err != nil {
		t.Fatalf("GenerateServerKey(nil) error = %v", err)
	}
	b, err := GenerateServerKey(nil)
	if err != nil {
		t.Fatalf("GenerateServerKey(nil) error = %v", err)
	}
	if a.Text() == b.Text() || a.ID() == b.ID() {
		t.Fatalf("two keys from crypto/rand are equal: %v, %v", a, b)
	}
	if len(a.ID()) != 16 {
		t.Errorf("ID() = %q, want 16 hex digits", a.ID())
	}

	// Deterministic from the random bytes: secret first, then the seed.
	k := testServerKey(t, 0)
	var want [32]byte
	for i := range want {
		want[i] = byte(i)
	}
	if k.secret != want {
		t.Errorf("secret = %x, want %x", k.secret, want)
	}
	for i := range want {
		want[i] = byte(32 + i)
	}
	if !bytes.Equal(k.priv.Seed(), want[:]) {
		t.Errorf("seed = %x, want %x", k.priv.Seed(), want)
	}

	_, err = GenerateServerKey(io.LimitReader(&countingReader{}, 40))
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("GenerateServerKey(short reader) error = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestKeyTextRoundTrip(t *testing.T) {
	t.Parallel()
	sk := testServerKey(t, 7)
	ck := sk.ClientKey()
	if !strings.HasPrefix(sk.Text(), "ipsync-server-1:") || !strings.HasPrefix(ck.Text(), "ipsync-client-1:") {
		t.Fatalf("Text() = %q, %q; want the ipsync-server-1: and ipsync-client-1: prefixes", sk.Text(), ck.Text())
	}
	for _, wrap := range []string{"%s", "  %s\n", "\r\n\t%s\r\n"} {
		text := fmt.Sprintf(wrap, sk.Text())
		got, err := ParseServerKey(text)
		if err != nil {
			t.Fatalf("ParseServerKey(%q) error = %v", text, err)
		}
		if got.Text() != sk.Text() || got.ID() != sk.ID() {
			t.Errorf("ParseServerKey(%q) = %s, want %s", text, got.Text(), sk.Text())
		}
		text = fmt.Sprintf(wrap, ck.Text())
		gotc, err := ParseClientKey(text)
		if err != nil {
			t.Fatalf("ParseClientKey(%q) error = %v", text, err)
		}
		if gotc.Text() != ck.Text() || gotc.ID() != ck.ID() {
			t.Errorf("ParseClientKey(%q) = %s, want %s", text, gotc.Text(), ck.Text())
		}
	}
	if sk.ID() != ck.ID() {
		t.Errorf("server key ID %s != client key ID %s", sk.ID(), ck.ID())
	}
	if got, want := ck.pub, sk.priv.Public().(ed25519.PublicKey); !got.Equal(want) {
		t.Errorf("ClientKey().pub = %x, want %x", got, want)
	}
	if ck.secret != sk.secret {
		t.Errorf("ClientKey().secret differs from the server key's")
	}
}

func TestKeyRedaction(t *testing.T) {
	t.Parallel()
	sk := testServerKey(t, 1)
	ck := sk.ClientKey()
	secretText := strings.TrimPrefix(sk.Text(), serverKeyPrefix)[:20]
	clientText := strings.TrimPrefix(ck.Text(), clientKeyPrefix)[:20]
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("keys", "server", sk, "client", ck)
	outputs := map[string]string{
		"String":   sk.String() + ck.String(),
		"%v":       fmt.Sprintf("%v %v", sk, ck),
		"%+v":      fmt.Sprintf("%+v %+v", sk, ck),
		"%#v":      fmt.Sprintf("%#v %#v", sk, ck),
		"%s":       fmt.Sprintf("%s %s", sk, ck),
		"slog":     logged.String(),
		"in slice": fmt.Sprintf("%v", []ClientKey{ck}),
	}
	for name, out := range outputs {
		if strings.Contains(out, secretText) || strings.Contains(out, clientText) || strings.Contains(out, fmt.Sprint(sk.secret[:4])) {
			t.Errorf("%s output %q reveals key material", name, out)
		}
		if !strings.Contains(out, sk.ID()) {
			t.Errorf("%s output %q does not name the key id %s", name, out, sk.ID())
		}
	}
	if got, want := sk.String(), "server key "+sk.ID(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := ck.String(), "client key "+sk.ID(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestZeroKeys(t *testing.T) {
	t.Parallel()
	var sk ServerKey
	var ck ClientKey
	if sk.Text() != "" || sk.ID() != "" || ck.Text() != "" || ck.ID() != "" {
		t.Errorf("zero keys: Text/ID = %q %q %q %q, want all empty", sk.Text(), sk.ID(), ck.Text(), ck.ID())
	}
	if got := sk.String(); got != "server key (none)" {
		t.Errorf("ServerKey{}.String() = %q, want %q", got, "server key (none)")
	}
	if got := ck.String(); got != "client key (none)" {
		t.Errorf("ClientKey{}.String() = %q, want %q", got, "client key (none)")
	}
	if got := sk.ClientKey(); got.valid() {
		t.Errorf("ServerKey{}.ClientKey() is valid, want the zero key")
	}
}

func TestParseKeyErrors(t *testing.T) {
	t.Parallel()
	sk := testServerKey(t, 3)
	st, ct := sk.Text(), sk.ClientKey().Text()
	flip := func(s string, i int) string { // change one base64url character
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name      string
		parse     func(string) error
		text      string
		errSubstr string
	}{
		{"server: empty", parseServer, "  ", "empty"},
		{"server: junk", parseServer, "hello", `does not start with "ipsync-server-1:"`},
		{"server: client key", parseServer, ct, "this is a client key"},
		{"server: future version", parseServer, "ipsync-server-2:" + st[16:], `unknown key kind or version "ipsync-server-2:"`},
		{"server: truncated", parseServer, st[:len(st)-3], "cut off"},
		{"server: extended", parseServer, st + "AA", "cut off"},
		{"server: inner space", parseServer, st[:30] + " " + st[30:], "invalid character at position 31"},
		{"server: padding", parseServer, st + "=", "invalid character"},
		{"server: std base64", parseServer, st[:40] + "+" + st[41:], "invalid character at position 41"},
		{"server: typo", parseServer, flip(st, 40), "checksum mismatch"},
		{"server: typo in checksum", parseServer, flip(st, len(st)-2), "checksum mismatch"},
		{"server: two keys", parseServer, st + "\n" + st, "invalid character"},
		{"client: server key", parseClient, st, "this is a server key"},
		{"client: junk", parseClient, "ipsync-client-1:!!", "invalid character"},
		{"client: typo", parseClient, flip(ct, 50), "checksum mismatch"},
		{"client: truncated", parseClient, ct[:20], "cut off"},
		{"client: no prefix", parseClient, ct[16:], "does not start with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.parse(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Fatalf("parse(%q) error = %v, want one containing %q", tt.text, err, tt.errSubstr)
			}
			if body := strings.SplitN(strings.TrimSpace(tt.text), ":", 2); len(body) == 2 && len(body[1]) > 8 && strings.Contains(err.Error(), body[1][:8]) {
				t.Errorf("parse error %q quotes the key text", err)
			}
		})
	}
}

func parseServer(s string) error { _, err := ParseServerKey(s); return err }
func parseClient(s string) error { _, err := ParseClientKey(s); return err }

func TestParseClientKeys(t *testing.T) {
	t.Parallel()
	a, b := testServerKey(t, 10).ClientKey(), testServerKey(t, 20).ClientKey()
	text := "# keys for server office\n\n" +
		a.Text() + "   # current\r\n" +
		"   # old key, remove after rotation\n" +
		"\t" + b.Text() + "\n" +
		a.Text() + "\n" // repeated: kept once
	keys, err := ParseClientKeys(text)
	if err != nil {
		t.Fatalf("ParseClientKeys error = %v", err)
	}
	if len(keys) != 2 || keys[0].Text() != a.Text() || keys[1].Text() != b.Text() {
		t.Fatalf("ParseClientKeys = %v, want [%v %v]", keys, a, b)
	}

	tests := []struct {
		name      string
		text      string
		errSubstr string
	}{
		{"empty", "", "no key found"},
		{"only comments", "# nothing\n\n  # here\n", "no key found"},
		{"bad line", a.Text() + "\n\nnot-a-key\n", "line 3: parse client key"},
		{"server key", a.Text() + "\n" + testServerKey(t, 10).Text(), "line 2: parse client key: this is a server key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseClientKeys(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Fatalf("ParseClientKeys(%q) error = %v, want one containing %q", tt.text, err, tt.errSubstr)
			}
		})
	}
}
