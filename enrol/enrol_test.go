package enrol

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age/armor"

	"ipsync/codec"
	"ipsync/config"
)

var fast = &Options{WorkFactor: 10}

func testBundle(t testing.TB) Bundle {
	t.Helper()
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return Bundle{
		Role: "client",
		Name: "office",
		Mail: Mail{
			Address: "office@example.com", Username: "office@example.com",
			Password: "mailbox-password-1", PasswordMode: PasswordInclude,
			SMTP:    Endpoint{Host: "smtp.example.com", Port: 465, TLS: "implicit"},
			IMAP:    Endpoint{Host: "imap.example.com", Port: 993, TLS: "implicit"},
			Mailbox: "INBOX",
		},
		ClientKey: sk.ClientKey().Text(),
		Subject:   "ipsync office",
		Fetch:     Fetch{Idle: "auto", PollEvery: "5m0s"},
		CAPEM:     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	}
}

func seal(t testing.TB, b Bundle, pass string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Seal(&buf, b, pass, fast); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := testBundle(t)
	pass := NewPassphrase()
	data := seal(t, b, pass)
	if !bytes.HasPrefix(data, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Errorf("Seal wrote %q…, want an armoured age file", data[:40])
	}
	// Secrets long enough that base64 cannot spell them by chance (a
	// two-letter one turned up in the armour about once in seven runs).
	for _, secret := range []string{"office@example.com", "mailbox-password-1", "ipsync-client-1:"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the sealed file shows %q in clear", secret)
		}
	}
	got, err := Open(bytes.NewReader(data), pass, "client")
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	b.Kind, b.Version = Kind, Version
	if got != b {
		t.Errorf("Open = %+v, want %+v", got, b)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	b := testBundle(t)
	good := seal(t, b, "right horse")
	server := b
	server.Role = "server"
	forServer := seal(t, server, "right horse")
	// Flip one base64 character in the middle of the armoured body.
	tampered := bytes.Clone(good)
	mid := len(tampered) / 2
	for tampered[mid] == '\n' || tampered[mid] == '-' {
		mid++
	}
	if tampered[mid] == 'A' {
		tampered[mid] = 'B'
	} else {
		tampered[mid] = 'A'
	}
	lines := strings.Split(string(good), "\n")
	cutBody := strings.Join(lines[:len(lines)-3], "\n") + "\n" + lines[len(lines)-2] + "\n" // drop the last body line
	tests := []struct {
		name, pass string
		data       []byte
		want       error
	}{
		{"wrong passphrase", "wrong horse", good, ErrWrongPassphrase},
		{"tampered", "right horse", tampered, ErrDamaged},
		{"truncated in the middle", "right horse", good[:len(good)/2], ErrDamaged},
		{"truncated: last line missing", "right horse", []byte(cutBody), ErrDamaged},
		{"truncated: first line only", "right horse", good[:10], ErrDamaged},
		{"not an invitation", "right horse", []byte("role: client\n"), ErrNotInvitation},
		{"empty", "right horse", nil, ErrNotInvitation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Open(bytes.NewReader(tt.data), tt.pass, "client")
			if !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("work factor above the limit", func(t *testing.T) {
		t.Parallel()
		// The scrypt stanza is "-> scrypt SALT LOGN": ask for 2^20 (1 GiB)
		// without making anything that large.
		bin, err := io.ReadAll(armor.NewReader(bytes.NewReader(good)))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(bin), "\n", 3)
		if !strings.HasPrefix(lines[1], "-> scrypt ") || !strings.HasSuffix(lines[1], " 10") {
			t.Fatalf("unexpected stanza %q", lines[1])
		}
		lines[1] = strings.TrimSuffix(lines[1], " 10") + " 20"
		if _, err := Open(strings.NewReader(strings.Join(lines, "\n")), "right horse", "client"); !errors.Is(err, ErrDamaged) {
			t.Errorf("Open(work factor 20) = %v, want ErrDamaged", err)
		}
	})
	t.Run("other role", func(t *testing.T) {
		t.Parallel()
		_, err := Open(bytes.NewReader(forServer), "right horse", "client")
		var re *RoleError
		if !errors.As(err, &re) || re.Got != "server" || re.Want != "client" {
			t.Errorf("Open = %v, want a RoleError server/client", err)
		}
	})
}

func TestSealRefusesBadBundles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Bundle)
	}{
		{"include without password", func(b *Bundle) { b.Mail.Password = "" }},
		{"ask with password", func(b *Bundle) { b.Mail.PasswordMode = PasswordAsk }},
		{"bad mode", func(b *Bundle) { b.Mail.PasswordMode = "maybe" }},
		{"bad key", func(b *Bundle) { b.ClientKey = "ipsync-server-1:x" }},
		{"no name", func(b *Bundle) { b.Name = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := testBundle(t)
			tt.edit(&b)
			if err := Seal(&bytes.Buffer{}, b, "p", fast); err == nil {
				t.Errorf("Seal(%s) = nil, want an error", tt.name)
			}
		})
	}
}

func TestNewPassphrase(t *testing.T) {
	t.Parallel()
	a, b := NewPassphrase(), NewPassphrase()
	if a == b || len(a) != 29 || strings.Count(a, "-") != 4 {
		t.Errorf("NewPassphrase = %q, %q; want two different 5×5 groups", a, b)
	}
}

func TestClientConfigLoads(t *testing.T) {
	t.Parallel()
	b := testBundle(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	c, err := b.ClientConfig(path, config.NewSecret("keyring:ipsync/office mail.password"), config.NewSecret("file:client.key"), "ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal("made by a test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "ca.pem"), []byte(b.CAPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse(path, data)
	if err != nil {
		t.Fatalf("Parse(Marshal) = %v\n%s", err, data)
	}
	if got.Role != config.RoleClient || got.Mail.IMAP.Host != "imap.example.com" || got.Fetcher.PollEvery.String() != "5m0s" ||
		got.Codec.Key.String() != "file:client.key" || got.Mail.Password.String() != "keyring:ipsync/office mail.password" {
		t.Errorf("config from the bundle = %+v\n%s", got, data)
	}
	if err := got.Require(config.RoleClient); err != nil {
		t.Errorf("Require(client) = %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	b := testBundle(f)
	f.Add(seal(f, b, "p"))
	f.Add([]byte("age-encryption.org/v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Open(bytes.NewReader(data), "p", "client")
		if err == nil && got.Validate() != nil {
			t.Errorf("Open accepted an invalid bundle: %+v", got)
		}
	})
}
