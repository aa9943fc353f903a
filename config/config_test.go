package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zalando/go-keyring"
)

const validYAML = `role: client
name: office
mail:
  address: ipsync@example.com
  password: env:IPSYNC_TEST_PASSWORD
  smtp:
    host: smtp.example.com
  imap:
    host: imap.example.com
codec:
  key: env:IPSYNC_TEST_KEY
`

func TestParseValidAppliesDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(validYAML))
	if err != nil {
		t.Fatalf("Parse(valid) = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"username", c.Mail.Username, "ipsync@example.com"},
		{"smtp port", c.Mail.SMTP.Port, 465},
		{"smtp tls", c.Mail.SMTP.TLS, "implicit"},
		{"imap port", c.Mail.IMAP.Port, 993},
		{"mailbox", c.Mail.IMAP.Mailbox, "INBOX"},
		{"format", c.Codec.Format, "sealed"},
		{"to", strings.Join(c.Publisher.To, ","), "ipsync@example.com"},
		{"subject", c.Publisher.Subject, "ipsync office"},
		{"check_every", c.Publisher.CheckEvery.D(), 5 * time.Minute},
		{"heartbeat_every", c.Publisher.HeartbeatEvery.D(), time.Hour},
		{"agree", c.Publisher.Agree, 2},
		{"keep", *c.Publisher.KeepMessages, 48},
		{"idle", c.Fetcher.Idle, "auto"},
		{"idle_refresh", c.Fetcher.IdleRefresh.D(), 10 * time.Minute},
		{"poll_every", c.Fetcher.PollEvery.D(), 5 * time.Minute},
		{"notify", c.NotifyEnabled(), true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", c.Warnings)
	}
	if err := c.Require(RoleClient); err != nil {
		t.Errorf("Require(client) = %v", err)
	}
	if err := c.Require(RoleServer); err != nil {
		t.Errorf("Require(server) = %v", err)
	}
}

func TestStartTLSDefaultPorts(t *testing.T) {
	t.Parallel()
	y := strings.Replace(validYAML, "    host: smtp.example.com\n", "    host: smtp.example.com\n    tls: starttls\n", 1)
	y = strings.Replace(y, "    host: imap.example.com\n", "    host: imap.example.com\n    tls: starttls\n", 1)
	c, err := Parse("c.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail.SMTP.Port != 587 || c.Mail.IMAP.Port != 143 {
		t.Errorf("ports = %d/%d, want 587/143", c.Mail.SMTP.Port, c.Mail.IMAP.Port)
	}
}

// TestProblems checks that every validation message names its key (and the
// line, where the decoder knows it).
func TestProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(string) string
		key  string // the key the message must name
		want string // a phrase the message must contain
	}{
		{"unknown top key", add("colour: blue\n"), "colour", "unknown key"},
		{"typo suggestion", rep("  smtp:\n    host:", "  smtp:\n    hots: x\n    host:"), "mail.smtp.hots", `did you mean "host"`},
		{"duplicate key", add("name: other\n"), "name", "appears twice"},
		{"bad role", rep("role: client", "role: both"), "role", "use server or client"},
		{"missing name", rep("name: office\n", ""), "name", "missing"},
		{"bad name", rep("name: office", "name: 'my office'"), "name", "not a valid name"},
		{"missing address", rep("  address: ipsync@example.com\n", ""), "mail.address", "missing"},
		{"bad address", rep("address: ipsync@example.com", "address: ipsync"), "mail.address", "not a mail address"},
		{"bad password ref", rep("env:IPSYNC_TEST_PASSWORD", "keyring:ipsync"), "mail.password", "SERVICE/USER"},
		{"empty env ref", rep("env:IPSYNC_TEST_PASSWORD", "'env:'"), "mail.password", "variable name"},
		{"missing ca file", rep("  smtp:\n", "  ca_file: /nonexistent/ca.pem\n  smtp:\n"), "mail.ca_file", "cannot read"},
		{"bad smtp port", rep("    host: smtp.example.com\n", "    host: smtp.example.com\n    port: 99999\n"), "mail.smtp.port", "out of range"},
		{"port not a number", rep("    host: smtp.example.com\n", "    host: smtp.example.com\n    port: abc\n"), "mail.smtp.port", "whole number"},
		{"bad smtp tls", rep("    host: smtp.example.com\n", "    host: smtp.example.com\n    tls: ssl\n"), "mail.smtp.tls", "implicit, starttls or none"},
		{"bad helo", rep("    host: smtp.example.com\n", "    host: smtp.example.com\n    helo: 'my host'\n"), "mail.smtp.helo", "not a domain name"},
		{"plaintext remote", rep("    host: imap.example.com\n", "    host: imap.example.com\n    tls: none\n"), "mail.imap.tls", "only allowed for loopback"},
		{"empty mailbox", rep("    host: imap.example.com\n", "    host: imap.example.com\n    mailbox: ' '\n"), "mail.imap.mailbox", "is empty"},
		{"bad format", rep("codec:\n", "codec:\n  format: rot13\n"), "codec.format", "sealed"},
		{"legacy no factor", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    alphabet: odzmtaciru\n"), "codec.legacy.factor", "missing"},
		{"legacy zero factor", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 0\n    alphabet: odzmtaciru\n"), "codec.legacy.factor", "other than 0"},
		{"legacy big factor", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 11\n    alphabet: odzmtaciru\n"), "codec.legacy.factor", "[-10, 10]"},
		{"legacy short alphabet", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 2\n    alphabet: abc\n"), "codec.legacy.alphabet", "10 different"},
		{"legacy padding overlaps", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 2\n    alphabet: odzmtaciru\n    padding: bo\n"), "codec.legacy.padding", "also in the alphabet"},
		{"bad to", add("publisher:\n  to: [a@example.com, nope]\n"), "publisher.to[1]", "not a mail address"},
		{"multiline subject", add("publisher:\n  subject: \"a\\nb\"\n"), "publisher.subject", "one line"},
		{"short check", add("publisher:\n  check_every: 1s\n"), "publisher.check_every", "at least 10s"},
		{"bad duration", add("publisher:\n  check_every: soon\n"), "publisher.check_every", "not a duration"},
		{"short heartbeat", add("publisher:\n  heartbeat_every: 30s\n"), "publisher.heartbeat_every", "at least 1m"},
		{"heartbeat below check", add("publisher:\n  check_every: 10m\n  heartbeat_every: 5m\n"), "publisher.heartbeat_every", "shorter than publisher.check_every"},
		{"empty source", add("publisher:\n  sources: ['']\n"), "publisher.sources[0]", "is empty"},
		{"agree zero", add("publisher:\n  agree: -1\n"), "publisher.agree", "at least 1"},
		{"agree too many", add("publisher:\n  sources: [ipify]\n  agree: 2\n"), "publisher.agree", "more than the 1 sources"},
		{"bad ipv4 mode", add("publisher:\n  ipv4: yes\n"), "publisher.ipv4", "auto, on or off"},
		{"both off", add("publisher:\n  ipv4: off\n  ipv6: off\n"), "publisher.ipv6", "nothing to publish"},
		{"bad suffix", add("publisher:\n  ipv6_suffix: 2001:db8::1\n"), "publisher.ipv6_suffix", "interface id"},
		{"negative keep", add("publisher:\n  keep_messages: -1\n"), "publisher.keep_messages", "0 (keep everything)"},
		{"bad idle", add("fetcher:\n  idle: maybe\n"), "fetcher.idle", "auto, on or off"},
		{"long idle refresh", add("fetcher:\n  idle_refresh: 30m\n"), "fetcher.idle_refresh", "between 1m and 29m"},
		{"short poll", add("fetcher:\n  poll_every: 1s\n"), "fetcher.poll_every", "at least 10s"},
		{"short stale", add("fetcher:\n  stale_after: 30s\n"), "fetcher.stale_after", "at least 1m"},
		{"on_change empty program", add("fetcher:\n  on_change: ['', x]\n"), "fetcher.on_change", "program to run"},
		{"on_change string", add("fetcher:\n  on_change: echo hi\n"), "fetcher.on_change", "list is needed"},
		{"probe port", add("fetcher:\n  probe:\n    port: 70000\n"), "fetcher.probe.port", "out of range"},
		{"notify not bool", add("notify:\n  enabled: maybe\n"), "notify.enabled", "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("c.yaml", []byte(tt.edit(validYAML)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse() = %v, want *Error", err)
			}
			for _, p := range ce.Problems {
				if p.Key == tt.key && strings.Contains(p.Msg, tt.want) {
					if !strings.Contains(err.Error(), "c.yaml: ") || !strings.Contains(err.Error(), tt.key+": ") {
						t.Errorf("Error() = %q, want file and key named", err)
					}
					return
				}
			}
			t.Errorf("Parse() problems = %q, want key %q with %q", err, tt.key, tt.want)
		})
	}
}

func TestUnknownKeyHasLine(t *testing.T) {
	t.Parallel()
	_, err := Parse("/etc/ipsync.yaml", []byte(validYAML+"fetcher:\n  pol_every: 1m\n"))
	want := `/etc/ipsync.yaml: line 13: fetcher.pol_every: unknown key; did you mean "poll_every"?`
	if err == nil || err.Error() != want {
		t.Errorf("Parse() = %v, want %s", err, want)
	}
}

func TestNotYAML(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "a: [", "- just\n- a list\n"} {
		_, err := Parse("c.yaml", []byte(in))
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Errorf("Parse(%q) = %v, want *Error", in, err)
		}
	}
}

func TestRequire(t *testing.T) {
	t.Parallel()
	base := "name: office\nmail:\n  address: a@example.com\n"
	tests := []struct {
		name string
		yaml string
		role Role
		keys []string
	}{
		{"server bare", base, RoleServer, []string{"codec.key", "mail.password", "mail.smtp.host"}},
		{"client bare", base, RoleClient, []string{"codec.key", "mail.password", "mail.imap.host"}},
		{"legacy server needs padding", base + "codec:\n  format: legacy\n  legacy: {factor: 2, alphabet: odzmtaciru}\n", RoleServer, []string{"mail.password", "mail.smtp.host", "codec.legacy.padding"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse("c.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Require(tt.role)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Require(%s) = %v, want *Error", tt.role, err)
			}
			var got []string
			for _, p := range ce.Problems {
				got = append(got, p.Key)
			}
			if strings.Join(got, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("Require(%s) keys = %q, want %q", tt.role, got, tt.keys)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IPSYNC_TEST_SECRET", "from-env")
	c := &Config{Path: filepath.Join(dir, "config.yaml")}
	tests := []struct {
		ref, want, errHas string
	}{
		{"env:IPSYNC_TEST_SECRET", "from-env", ""},
		{"env:IPSYNC_TEST_UNSET_VAR", "", "IPSYNC_TEST_UNSET_VAR is not set"},
		{"file:pw", "s3cret", ""},
		{"file:" + filepath.Join(dir, "pw"), "s3cret", ""},
		{"file:missing", "", "cannot read"},
		{"plain-literal", "plain-literal", ""},
		{"", "", "not set"},
	}
	for _, tt := range tests {
		got, err := c.Resolve("mail.password", NewSecret(tt.ref))
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), "mail.password") || !errors.Is(err, ErrSecretUnavailable) {
				t.Errorf("Resolve(%q) error = %v, want one naming mail.password and %q", tt.ref, err, tt.errHas)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q) = %q, %v, want %q", tt.ref, got, err, tt.want)
		}
	}
}

func TestLiteralSecretWarnsAndIsRedacted(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(strings.Replace(validYAML, "env:IPSYNC_TEST_PASSWORD", "hunter2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "mail.password") || !strings.Contains(c.Warnings[0], "line 5") {
		t.Errorf("Warnings = %q, want one for mail.password at line 5", c.Warnings)
	}
	for _, s := range append(c.Warnings, c.Mail.Password.String()) {
		if strings.Contains(s, "hunter2") {
			t.Errorf("%q reveals the secret", s)
		}
	}
}

func TestExampleFileIsValid(t *testing.T) {
	t.Parallel()
	c, err := Load("../config.example.yaml")
	if err != nil {
		t.Fatalf("Load(config.example.yaml) = %v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("example has warnings: %q", c.Warnings)
	}
}

func TestLoadMissing(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !IsNotFound(err) || !strings.Contains(err.Error(), "--config") {
		t.Errorf("Load(missing) = %v, want not-found error with a hint", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	if data, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("a: [\n"))
	f.Add([]byte("mail: {smtp: {port: x}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever parses must be self-consistent after defaults.
		c.ApplyDefaults()
		_ = c.Require(RoleServer)
		_ = c.Require(RoleClient)
	})
}

func TestValidationProblemHasLine(t *testing.T) {
	t.Parallel()
	_, err := Parse("c.yaml", []byte(validYAML+"publisher:\n  to: [a@example.com, nope]\n  agree: -1\n"))
	for _, want := range []string{"c.yaml: line 13: publisher.to[1]: ", "c.yaml: line 14: publisher.agree: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse() = %v, want a line with %q", err, want)
		}
	}
}

func TestKeyringSecret(t *testing.T) {
	keyring.MockInit()
	if err := keyring.Set("ipsync", "office@example.com", " app-password \n"); err != nil {
		t.Fatal(err)
	}
	c := &Config{}
	got, err := c.Resolve("mail.password", NewSecret("keyring:ipsync/office@example.com"))
	if err != nil || got != "app-password" {
		t.Errorf("Resolve(keyring) = %q, %v, want app-password", got, err)
	}
	_, err = c.Resolve("mail.password", NewSecret("keyring:ipsync/nobody@example.com"))
	if err == nil || !strings.Contains(err.Error(), "mail.password") || !strings.Contains(err.Error(), "secret-tool store") || !errors.Is(err, ErrSecretUnavailable) {
		t.Errorf("Resolve(missing keyring entry) = %v, want a hint naming the key", err)
	}
}

func TestSecretEnvNames(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.SecretEnvNames(), ","); got != "IPSYNC_TEST_PASSWORD,IPSYNC_TEST_KEY" {
		t.Errorf("SecretEnvNames() = %q, want both env: references", got)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"open.txt": 0o644, "closed.txt": 0o600} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, edit string
		want       string // "" = no warning
	}{
		{"starttls on 465", "    host: smtp.example.com\n    port: 465\n    tls: starttls\n", "mail.smtp.port 465 is the implicit-TLS port but mail.smtp.tls is starttls"},
		{"implicit on 143", "    host: smtp.example.com\n", ""},
		{"world-readable password file", "    host: smtp.example.com\n", "can be read by other users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			y := strings.Replace(validYAML, "    host: smtp.example.com\n", tt.edit, 1)
			switch tt.name {
			case "implicit on 143":
				y = strings.Replace(y, "    host: imap.example.com\n", "    host: imap.example.com\n    port: 143\n", 1)
				tt.want = "mail.imap.port 143 is the STARTTLS port but mail.imap.tls is implicit"
			case "world-readable password file":
				y = strings.Replace(y, "env:IPSYNC_TEST_PASSWORD", "file:open.txt", 1)
				y = strings.Replace(y, "env:IPSYNC_TEST_KEY", "file:closed.txt", 1)
			}
			c, err := Parse(filepath.Join(dir, "c.yaml"), []byte(y))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tt.want) {
				t.Errorf("Warnings = %q, want one with %q", c.Warnings, tt.want)
			}
		})
	}
}

// TestEveryProblemAtOnce: a value that cannot be read (a duration written
// as a word, a port as text) does not hide the other problems of the file:
// each is reported with its line, in file order, and a key whose value was
// not read is reported once, not again for the default standing in for it.
func TestEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // the lines of Error(), in order
	}{
		{
			name: "unreadable duration beside bad values",
			yaml: validYAML + "publisher:\n  check_every: often\n  agree: -1\nfetcher:\n  poll_every: 5s\n",
			want: []string{
				`c.yaml: line 13: publisher.check_every: "often" is not a duration: write it like 90s, 5m or 1h30m`,
				"c.yaml: line 14: publisher.agree: -1 must be at least 1 (2 is the default and recommended)",
				"c.yaml: line 16: fetcher.poll_every: 5s is too short; use at least 10s (providers throttle; 5m0s is the default)",
			},
		},
		{
			name: "unknown key, unreadable port and bad name",
			yaml: strings.NewReplacer("name: office", "name: 'office pc'", "    host: smtp.example.com\n", "    host: smtp.example.com\n    port: abc\n    tls: ssl\n").Replace(validYAML) + "colour: blue\n",
			want: []string{
				`c.yaml: line 2: name: "office pc" is not a valid name; use 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit`,
				"c.yaml: line 8: mail.smtp.port: expected a different kind of value, got the text `abc` where a whole number is needed",
				`c.yaml: line 9: mail.smtp.tls: "ssl" must be implicit, starttls or none (loopback only)`,
				"c.yaml: line 14: colour: unknown key; keys here are: codec, fetcher, mail, name, notify, publisher, role, state_dir",
			},
		},
		{
			name: "several keys on one line (flow style)",
			yaml: strings.Replace(validYAML, "  imap:\n    host: imap.example.com\n", "  imap: {host: imap.example.com, port: abc, tls: implicit}\n", 1),
			want: []string{
				"c.yaml: line 8: mail.imap.port: expected a different kind of value, got the text `abc` where a whole number is needed",
			},
		},
		{
			name: "a section written as a value",
			yaml: validYAML + "fetcher: often\nnotify:\n  enabled: maybe\n",
			want: []string{
				"c.yaml: line 12: fetcher: expected a different kind of value, got the text `often` where a mapping of keys is needed",
				"c.yaml: line 14: notify.enabled: expected a different kind of value, got the text `maybe` where true or false is needed",
			},
		},
		{
			name: "duplicate key beside an unreadable value",
			yaml: validYAML + "name: other\npublisher:\n  keep_messages: many\n",
			want: []string{
				"c.yaml: line 12: name: appears twice; keep one",
				"c.yaml: line 14: publisher.keep_messages: expected a different kind of value, got the text `many` where a whole number is needed",
			},
		},
		{
			name: "a bad address is reported once, not again as the default recipient",
			yaml: strings.Replace(validYAML, "address: ipsync@example.com", "address: ipsync", 1),
			want: []string{`c.yaml: line 4: mail.address: "ipsync" is not a mail address; write it as name@example.com`},
		},
		{
			name: "missing keys come last",
			yaml: strings.Replace(validYAML, "name: office\n", "", 1) + "publisher:\n  heartbeat_every: hourly\n",
			want: []string{
				`c.yaml: line 12: publisher.heartbeat_every: "hourly" is not a duration: write it like 90s, 5m or 1h30m`,
				"c.yaml: name: missing; set the server's name, e.g. name: office (the same on the server and its clients)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("c.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse() = nil, want %d problems", len(tt.want))
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Parse() =\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestLiteralSecretInReadableFile: a config file that holds a literal
// password and that other users can read draws a warning naming the file,
// its mode and the exact command that fixes it.
func TestLiteralSecretInReadableFile(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file modes say nothing about access on Windows")
	}
	literal := strings.Replace(validYAML, "env:IPSYNC_TEST_PASSWORD", "hunter2", 1)
	tests := []struct {
		name string
		file string
		mode os.FileMode
		want string // the warning, with DIR for the directory
	}{
		{"world-readable", "ipsync.yaml", 0o644,
			"DIR/ipsync.yaml: line 5: mail.password is written in clear in a file other users can read (mode 0644): run chmod 600 DIR/ipsync.yaml, and better, move it out of the file (env:NAME, file:PATH or keyring:SERVICE/USER)"},
		{"group-readable", "ipsync.yaml", 0o640,
			"DIR/ipsync.yaml: line 5: mail.password is written in clear in a file other users can read (mode 0640): run chmod 600 DIR/ipsync.yaml, and better, move it out of the file (env:NAME, file:PATH or keyring:SERVICE/USER)"},
		{"a name the shell would split", "my config.yaml", 0o604,
			"DIR/my config.yaml: line 5: mail.password is written in clear in a file other users can read (mode 0604): run chmod 600 'DIR/my config.yaml', and better, move it out of the file (env:NAME, file:PATH or keyring:SERVICE/USER)"},
		{"owner only", "ipsync.yaml", 0o600,
			"DIR/ipsync.yaml: line 5: mail.password is written in the file in clear; prefer env:NAME, file:PATH or keyring:SERVICE/USER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if err := os.WriteFile(path, []byte(literal), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			if len(c.Warnings) != 1 || c.Warnings[0] != want {
				t.Errorf("Load(%s, mode %04o).Warnings = %q, want [%q]", tt.file, tt.mode, c.Warnings, want)
			}
		})
	}
}
