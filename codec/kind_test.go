package codec

import (
	"errors"
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	t.Parallel()
	sk := testServerKey(t, 5)
	st, ct := sk.Text(), sk.ClientKey().Text()
	keygen := "# ipsync keys, key id " + sk.ID() + "\n# Server key: keep it on the server only.\n" + st + "\n# Client key: give it to every staff PC.\n" + ct + "\n"
	tests := []struct {
		name string
		text string
		want KeyKind
	}{
		{"empty", "", KeyUnknown},
		{"junk", "hello", KeyUnknown},
		{"server key", st, KeyServer},
		{"server key with spaces", "  " + st + "\r\n", KeyServer},
		{"client key", ct, KeyClient},
		{"client keys with comments", "# rotation\n" + ct + "  # new\n" + ct + "\n", KeyClient},
		{"keygen output", keygen, KeyServer},
		{"future version", "ipsync-server-2:" + st[16:], KeyUnknown},
		{"commented out server key", "# " + st + "\n" + ct, KeyClient},
		{"damaged server key", st[:30], KeyServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := KindOf(tt.text); got != tt.want {
				t.Errorf("KindOf(%s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestKeyKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[KeyKind]string{KeyServer: "server key", KeyClient: "client key", KeyUnknown: "unknown key"} {
		if got := k.String(); got != want {
			t.Errorf("KeyKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// TestKeyKindMixUp: a key of the other kind is a *KeyKindError whose
// message says once which key is needed and where keygen puts it.
func TestKeyKindMixUp(t *testing.T) {
	t.Parallel()
	sk := testServerKey(t, 6)
	st, ct := sk.Text(), sk.ClientKey().Text()
	tests := []struct {
		name      string
		parse     func(string) error
		text      string
		want, got KeyKind
		msg       string
	}{
		{"server needs server key", parseServer, ct, KeyServer, KeyClient,
			"parse server key: this is a client key, but the server needs the server key (ipsync-server-1:…, server.key of `ipsync keygen --out DIR`)"},
		{"server key file with client keys only", parseServerFile, "# client\n" + ct + "\n", KeyServer, KeyClient,
			"parse server key: this is a client key, but the server needs the server key (ipsync-server-1:…, server.key of `ipsync keygen --out DIR`)"},
		{"client needs client key", parseClient, st, KeyClient, KeyServer,
			"parse client key: this is a server key, which can forge messages: clients need the client key (ipsync-client-1:…, client.key of `ipsync keygen --out DIR`)"},
		{"client keys with the server key", parseClientKeys, ct + "\n" + st, KeyClient, KeyServer,
			"line 2: parse client key: this is a server key, which can forge messages: clients need the client key (ipsync-client-1:…, client.key of `ipsync keygen --out DIR`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.parse(tt.text)
			var ke *KeyKindError
			if !errors.As(err, &ke) || ke.Want != tt.want || ke.Got != tt.got {
				t.Fatalf("parse(%s) error = %v, want a *KeyKindError{Want: %v, Got: %v}", tt.name, err, tt.want, tt.got)
			}
			if err.Error() != tt.msg {
				t.Errorf("parse(%s) error = %q, want %q", tt.name, err, tt.msg)
			}
			if strings.Count(err.Error(), "keygen") != 1 {
				t.Errorf("parse(%s) error %q names keygen more than once", tt.name, err)
			}
		})
	}
}

func TestParseServerKeyFile(t *testing.T) {
	t.Parallel()
	sk := testServerKey(t, 7)
	st, ct := sk.Text(), sk.ClientKey().Text()
	other := testServerKey(t, 8).Text()
	keygen := "# ipsync keys, key id " + sk.ID() + "\n# Server key: keep it on the server only.\n" + st + "\n# Client key: give it to every staff PC.\n" + ct + "\n"
	tests := []struct {
		name      string
		text      string
		errSubstr string // "" means it parses to sk
	}{
		{"key alone", st, ""},
		{"key with newline", st + "\n", ""},
		{"keygen output", keygen, ""},
		{"key with a comment", "# office server\n" + st + "  # since May\n", ""},
		{"two server keys", st + "\n" + other + "\n", "2 server keys in one file"},
		{"client key", ct, "this is a client key"},
		{"empty", "\n", "empty text"},
		{"junk", "hello\nworld\n", `does not start with "ipsync-server-1:"`},
		{"damaged", "# key\n" + st[:40] + "\n", "cut off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseServerKeyFile(tt.text)
			if tt.errSubstr == "" {
				if err != nil || got.Text() != st {
					t.Fatalf("ParseServerKeyFile(%s) = %v, %v; want %v", tt.name, got, err, sk)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Fatalf("ParseServerKeyFile(%s) error = %v, want one containing %q", tt.name, err, tt.errSubstr)
			}
		})
	}
}

func parseServerFile(s string) error { _, err := ParseServerKeyFile(s); return err }
func parseClientKeys(s string) error { _, err := ParseClientKeys(s); return err }
