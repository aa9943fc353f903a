package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"ipsync/codec"
	"ipsync/enrol"
)

// enrolTest sets a fresh home (so the default config path is empty), a
// server config against the loopback mail server, and the seams of join:
// started from a terminal, never starting a tray.
type enrolTest struct {
	*e2e
	home, cfgDir, passFile string
	started                [][]string
}

func newEnrolTest(t *testing.T, withKeyring bool) *enrolTest {
	t.Helper()
	et := &enrolTest{e2e: newE2E(t), home: t.TempDir()}
	t.Setenv("HOME", et.home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(et.home, ".config"))
	et.cfgDir = filepath.Join(et.home, ".config", "ipsync")
	if withKeyring {
		keyring.MockInit()
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus") // only the mock answers
	} else {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	}
	oldWF, oldDesk, oldStart := inviteWorkFactor, startedFromDesktop, startDetached
	inviteWorkFactor = 10
	startedFromDesktop = func() bool { return false }
	startDetached = func(exe string, args []string) error {
		et.started = append(et.started, append([]string{exe}, args...))
		return nil
	}
	t.Cleanup(func() { inviteWorkFactor, startedFromDesktop, startDetached = oldWF, oldDesk, oldStart })
	et.passFile = filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(et.passFile, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return et
}

// invite writes an invitation with the test passphrase and returns its path.
func (et *enrolTest) invite(t *testing.T, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "office-pc3.ipsync")
	args := append([]string{"invite", "--config", et.serverCfg, "--out", out, "--passphrase-file", et.passFile}, extra...)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK {
		t.Fatalf("invite = %d\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "correct horse") || strings.Contains(stdout+stderr, "pw-e2e") {
		t.Errorf("invite printed a secret:\n%s%s", stdout, stderr)
	}
	return out
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInviteJoinFetch: an invitation made on the server sets up a fresh
// PC (secrets in 0600 files: no keyring) that then fetches the address
// with no other step.
func TestInviteJoinFetch(t *testing.T) {
	et := newEnrolTest(t, false)
	inv := et.invite(t)
	if m := mode(t, inv); m != 0o600 {
		t.Errorf("invitation mode = %o, want 0600", m)
	}
	if code, out, errOut := runCLI(t, "publish", "--once", "--config", et.serverCfg, "--ip", "8.8.4.4"); code != exitOK {
		t.Fatalf("publish = %d %s%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile)
	if code != exitOK {
		t.Fatalf("join = %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"wrote " + filepath.Join(et.cfgDir, "config.yaml"), "files of mode 0600", "start at login: on", "PASS imap 127.0.0.1", `joined "office"`} {
		if !strings.Contains(out, want) {
			t.Errorf("join output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, "pw-e2e") || strings.Contains(out+errOut, "ipsync-client-1:") {
		t.Errorf("join printed a secret:\n%s%s", out, errOut)
	}
	for _, f := range []string{"config.yaml", "office.client.key", "office.password", "office-ca.pem"} {
		if m := mode(t, filepath.Join(et.cfgDir, f)); m != 0o600 {
			t.Errorf("%s mode = %o, want 0600", f, m)
		}
	}
	if m := mode(t, et.cfgDir); m != 0o700 {
		t.Errorf("config directory mode = %o, want 0700", m)
	}
	cfgText, _ := os.ReadFile(filepath.Join(et.cfgDir, "config.yaml"))
	if strings.Contains(string(cfgText), "pw-e2e") || !strings.Contains(string(cfgText), "password: file:office.password") {
		t.Errorf("config.yaml:\n%s", cfgText)
	}
	auto, err := os.ReadFile(filepath.Join(et.home, ".config", "autostart", "ipsync-client.desktop"))
	if err != nil || !strings.Contains(string(auto), " client") {
		t.Errorf("autostart entry = %q, %v", auto, err)
	}
	if len(et.started) != 0 {
		t.Errorf("join from a terminal started %q; want nothing without --start", et.started)
	}
	// The joined PC reads the address with no --config and no other step.
	code, out, errOut = runCLI(t, "fetch", "--once")
	if code != exitOK || !strings.HasPrefix(out, "office 8.8.4.4 ") {
		t.Errorf("fetch after join = %d %q %q", code, out, errOut)
	}
}

// TestJoinKeyring: with a keyring, the secrets go there and no secret file
// is written.
func TestJoinKeyring(t *testing.T) {
	et := newEnrolTest(t, true)
	inv := et.invite(t)
	code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile, "--start")
	if code != exitOK || !strings.Contains(out, "the OS keyring") {
		t.Fatalf("join = %d\n%s%s", code, out, errOut)
	}
	cfgText, _ := os.ReadFile(filepath.Join(et.cfgDir, "config.yaml"))
	for _, want := range []string{"password: keyring:ipsync/office@ipsync.test", "key: keyring:ipsync/office client key"} {
		if !strings.Contains(string(cfgText), want) {
			t.Errorf("config lacks %q:\n%s", want, cfgText)
		}
	}
	if pw, err := keyring.Get("ipsync", "office@ipsync.test"); err != nil || pw != "pw-e2e" {
		t.Errorf("keyring password = %q, %v", pw, err)
	}
	if k, err := keyring.Get("ipsync", "office client key"); err != nil || !strings.HasPrefix(k, "ipsync-client-1:") {
		t.Errorf("keyring client key = %q, %v", k, err)
	}
	for _, f := range []string{"office.client.key", "office.password"} {
		if _, err := os.Stat(filepath.Join(et.cfgDir, f)); err == nil {
			t.Errorf("%s written although the keyring took the secrets", f)
		}
	}
	if len(et.started) != 1 || et.started[0][1] != "client" {
		t.Errorf("join --start started %q, want one `client`", et.started)
	}
}

// TestJoinRefuses: each way a join can go wrong has its message and exit
// code, and writes nothing.
func TestJoinRefuses(t *testing.T) {
	et := newEnrolTest(t, false)
	inv := et.invite(t)
	good, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrongPass := write("wrong", []byte("wrong horse battery\n"))
	tampered := bytes.Clone(good)
	i := len(tampered) / 2
	for tampered[i] == '\n' {
		i++
	}
	tampered[i] ^= 0x01
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var serverBundle bytes.Buffer
	b := enrol.Bundle{Role: "server", Name: "office", ClientKey: sk.ClientKey().Text(),
		Mail: enrol.Mail{Address: "office@ipsync.test", Username: "office@ipsync.test", PasswordMode: enrol.PasswordOmit, IMAP: enrol.Endpoint{Host: "127.0.0.1", Port: 993, TLS: "implicit"}}}
	if err := enrol.Seal(&serverBundle, b, "correct horse battery", &enrol.Options{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		wantText string
	}{
		{"wrong passphrase", []string{inv, "--passphrase-file", wrongPass}, exitWrongPassphrase, "the passphrase does not open this invitation"},
		{"tampered", []string{write("tampered.ipsync", tampered), "--passphrase-file", et.passFile}, exitBadInvitation, "damaged"},
		{"truncated", []string{write("cut.ipsync", good[:len(good)*2/3]), "--passphrase-file", et.passFile}, exitBadInvitation, "damaged"},
		{"not an invitation", []string{et.serverCfg, "--passphrase-file", et.passFile}, exitBadInvitation, "not an ipsync invitation"},
		{"server-role bundle", []string{write("server.ipsync", serverBundle.Bytes()), "--passphrase-file", et.passFile}, exitOtherRole, "for the server role, not the client role"},
		{"no file", []string{"--passphrase-file", et.passFile}, exitUsage, "one invitation FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"join"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.wantText) {
				t.Errorf("join = %d %q, want %d and %q", code, errOut, tt.code, tt.wantText)
			}
			if tt.code != exitUsage && !strings.Contains(errOut, "nothing was written") {
				t.Errorf("join error %q does not say that nothing was written", errOut)
			}
			if _, err := os.Stat(et.cfgDir); err == nil {
				t.Errorf("join wrote into %s after failing:\n%s", et.cfgDir, out)
			}
			if _, err := os.Stat(filepath.Join(et.home, ".config", "autostart")); err == nil {
				t.Errorf("join turned on start at login after failing")
			}
		})
	}
	t.Run("existing config", func(t *testing.T) {
		if err := os.MkdirAll(et.cfgDir, 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(et.cfgDir, "config.yaml")
		if err := os.WriteFile(p, []byte("name: mine\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile)
		if code != exitUsage || !strings.Contains(errOut, "already holds a config") || !strings.Contains(errOut, "--force") {
			t.Errorf("join over a config = %d %q", code, errOut)
		}
		if data, _ := os.ReadFile(p); string(data) != "name: mine\n" {
			t.Errorf("the config was changed to %q", data)
		}
		if entries, _ := os.ReadDir(et.cfgDir); len(entries) != 1 {
			t.Errorf("join wrote beside the config: %v", entries)
		}
		code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile, "--force")
		if code != exitOK {
			t.Errorf("join --force = %d\n%s%s", code, out, errOut)
		}
	})
}

// TestInvitePassphraseAndRecipient: a generated passphrase is printed and
// opens the file; --add-recipient edits publisher.to, keeps the comments
// and makes the invitation read that mailbox, asking its password on the PC.
func TestInvitePassphraseAndRecipient(t *testing.T) {
	et := newEnrolTest(t, false)
	withComment := "# the office server\n" + mustRead(t, et.serverCfg)
	if err := os.WriteFile(et.serverCfg, []byte(withComment), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pc4.ipsync")
	code, stdout, stderr := runCLI(t, "invite", "--config", et.serverCfg, "--out", out, "--add-recipient", "pc4@ipsync.test")
	if code != exitOK {
		t.Fatalf("invite = %d\n%s%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`passphrase: ([A-Z2-7-]{29})\n`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("invite printed no passphrase:\n%s", stdout)
	}
	data, _ := os.ReadFile(out)
	b, err := enrol.Open(bytes.NewReader(data), m[1], "client")
	if err != nil {
		t.Fatalf("the printed passphrase does not open the invitation: %v", err)
	}
	if b.Mail.Address != "pc4@ipsync.test" || b.Mail.Username != "pc4@ipsync.test" || b.Mail.PasswordMode != enrol.PasswordAsk || b.Mail.Password != "" || b.CAPEM == "" {
		t.Errorf("bundle mail = %+v (CA %d bytes)", b.Mail, len(b.CAPEM))
	}
	cfg := mustRead(t, et.serverCfg)
	if !strings.HasPrefix(cfg, "# the office server\n") || !strings.Contains(cfg, "- office@ipsync.test\n") || !strings.Contains(cfg, "- pc4@ipsync.test\n") {
		t.Errorf("server config after --add-recipient:\n%s", cfg)
	}
	// include with another mailbox would give away the server's password.
	code, _, stderr = runCLI(t, "invite", "--config", et.serverCfg, "--out", out+"2", "--add-recipient", "pc5@ipsync.test", "--mailbox-password", "include")
	if code != exitUsage || !strings.Contains(stderr, "use ask or omit") {
		t.Errorf("invite --add-recipient --mailbox-password include = %d %q", code, stderr)
	}
	// An existing --out file is kept.
	code, _, stderr = runCLI(t, "invite", "--config", et.serverCfg, "--out", out)
	if code != exitUsage || !strings.Contains(stderr, "--force") {
		t.Errorf("invite over an existing file = %d %q", code, stderr)
	}
}
