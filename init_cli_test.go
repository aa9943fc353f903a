package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"ipsync/config"
)

// TestInitNonInteractive: init with flags writes a server config whose
// mail lines pass the check, prints the invite command, and the config it
// wrote invites a PC that then joins.
func TestInitNonInteractive(t *testing.T) {
	for _, withKeyring := range []bool{false, true} {
		name := map[bool]string{false: "files", true: "keyring"}[withKeyring]
		t.Run(name, func(t *testing.T) {
			et := newEnrolTest(t, withKeyring)
			echo := startEcho(t, "203.0.113.5")
			dir := filepath.Dir(et.serverCfg)
			_, smtpPort, _ := strings.Cut(et.mail.SMTPAddr(), ":")
			_, imapPort, _ := strings.Cut(et.mail.IMAPAddr(), ":")
			cfgPath := filepath.Join(t.TempDir(), "etc", "config.yaml")
			args := []string{"init", "--non-interactive", "--config", cfgPath,
				"--provider", "other", "--name", "office", "--address", "office@ipsync.test",
				"--password-file", filepath.Join(dir, "password"),
				"--smtp-host", "127.0.0.1", "--smtp-port", smtpPort, "--smtp-tls", "implicit",
				"--imap-host", "127.0.0.1", "--imap-port", imapPort, "--imap-tls", "starttls",
				"--ca-file", filepath.Join(dir, "ca.pem"), "--source", echo.HTTPSURL(), "--source", echo.DNSURL()}
			code, out, errOut := runCLI(t, args...)
			// The stand-in source answers with a documentation address,
			// which the check rightly fails: exit 3, but the mail passes.
			for _, want := range []string{"wrote " + cfgPath, "PASS smtp 127.0.0.1", "PASS imap 127.0.0.1", "FAIL source IPv4", "ipsync invite --config " + cfgPath + " --out"} {
				if !strings.Contains(out, want) {
					t.Errorf("init output lacks %q:\n%s%s", want, out, errOut)
				}
			}
			if code != exitNetwork || !strings.Contains(errOut, "the server is set up, but the check failed") {
				t.Errorf("init = %d %q, want %d", code, errOut, exitNetwork)
			}
			if strings.Contains(out+errOut, "pw-e2e") || strings.Contains(out+errOut, "ipsync-server-1:") {
				t.Errorf("init printed a secret:\n%s%s", out, errOut)
			}
			cfg := mustRead(t, cfgPath)
			if !strings.Contains(cfg, "role: server") || strings.Contains(cfg, "pw-e2e") {
				t.Errorf("config:\n%s", cfg)
			}
			if m := mode(t, cfgPath); m != 0o600 {
				t.Errorf("config mode %o, want 0600", m)
			}
			if withKeyring {
				if !strings.Contains(cfg, "password: keyring:ipsync/office@ipsync.test") {
					t.Errorf("config does not use the keyring:\n%s", cfg)
				}
				if k, err := keyring.Get("ipsync", "office server key"); err != nil || !strings.HasPrefix(k, "ipsync-server-1:") {
					t.Errorf("keyring server key = %v", err)
				}
			} else {
				for _, f := range []string{"server.key", "password"} {
					if m := mode(t, filepath.Join(filepath.Dir(cfgPath), f)); m != 0o600 {
						t.Errorf("%s mode %o, want 0600", f, m)
					}
				}
			}
			// A second init keeps the config.
			if code, _, errOut := runCLI(t, args...); code != exitUsage || !strings.Contains(errOut, "already holds a config") {
				t.Errorf("init over a config = %d %q", code, errOut)
			}
			// The config init wrote invites a PC.
			et.serverCfg = cfgPath
			inv := et.invite(t)
			if code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile); code != exitOK {
				t.Errorf("join of an invitation from init's config = %d\n%s%s", code, out, errOut)
			}
		})
	}
}

func TestInitRefuses(t *testing.T) {
	newEnrolTest(t, false)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no provider", []string{"--name", "o", "--address", "a@b.test", "--password-file", pw}, "needs --provider"},
		{"unknown provider", []string{"--provider", "aol", "--name", "o", "--address", "a@b.test", "--password-file", pw}, `--provider "aol"`},
		{"other without hosts", []string{"--provider", "other", "--name", "o", "--address", "a@b.test", "--password-file", pw}, "needs --smtp-host and --imap-host"},
		{"no password", []string{"--provider", "gmail", "--name", "o", "--address", "a@b.test"}, "needs --password-file"},
		{"bad name", []string{"--provider", "gmail", "--name", "o f", "--address", "a@b.test", "--password-file", pw}, "name"},
		{"every missing flag at once", []string{"--provider", "gmail"}, "needs --name (the server's name, e.g. office), --address (the mailbox), --password-file FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"init", "--non-interactive", "--no-check", "--config", cfg}, tt.args...)
			code, _, errOut := runCLI(t, args...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("init %v = %d %q, want %d and %q", tt.args, code, errOut, exitUsage, tt.want)
			}
			if _, err := os.Stat(cfg); err == nil {
				t.Errorf("init wrote %s after failing", cfg)
			}
			if entries, _ := os.ReadDir(filepath.Dir(cfg)); len(entries) != 0 {
				t.Errorf("init left %v", entries)
			}
		})
	}
}

// TestFirstRunWithoutDesktop: with no config and no desktop, the client
// and the server say how to set the machine up.
func TestFirstRunWithoutDesktop(t *testing.T) {
	newEnrolTest(t, false)
	code, _, errOut := runCLI(t, "client", "--headless")
	if code != exitUsage || !strings.Contains(errOut, "config file not found") || !strings.Contains(errOut, "run `ipsync join FILE`") {
		t.Errorf("client with no config = %d %q", code, errOut)
	}
	// Not on a terminal (go test), so server does not start init.
	code, _, errOut = runCLI(t, "server", "--headless")
	if code != exitUsage || !strings.Contains(errOut, "config file not found") {
		t.Errorf("server with no config = %d %q", code, errOut)
	}
}

// scriptedAsker answers init's questions from a list and records prompts.
type scriptedAsker struct {
	answers []string
	said    []string
}

func (s *scriptedAsker) next(prompt, def string) (string, error) {
	s.said = append(s.said, prompt)
	if len(s.answers) == 0 {
		return "", errors.New("no more answers")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	if a == "" {
		return def, nil
	}
	return a, nil
}
func (s *scriptedAsker) line(prompt, def string) (string, error) { return s.next(prompt, def) }
func (s *scriptedAsker) secret(prompt string) (string, error)    { return s.next(prompt, "") }
func (s *scriptedAsker) say(text string)                         { s.said = append(s.said, text) }

// TestAskInit: the interactive questions fill the same answers as the
// flags, with the provider picked by number and defaults taken on Enter.
func TestAskInit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		answers []string
		want    initAnswers
	}{
		{"fastmail by number, defaults", []string{"4", "me@fastmail.test", "", "app-pw", "office"},
			initAnswers{provider: "fastmail", address: "me@fastmail.test", username: "me@fastmail.test", password: "app-pw", name: "office"}},
		{"other by key, a bad choice first", []string{"9", "other", "mail.example.test", "imap.example.test", "not-an-address", "a@example.test", "login", "pw", "srv"},
			initAnswers{provider: "other", address: "a@example.test", username: "login", password: "pw", name: "srv",
				smtp: config.Server{Host: "mail.example.test"}, imap: config.IMAP{Host: "imap.example.test"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := &scriptedAsker{answers: tt.answers}
			var got initAnswers
			if err := askInit(q, &got, "/x/config.yaml"); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("askInit(%q) = %+v, want %+v", tt.answers, got, tt.want)
			}
			if err := got.complete(); err != nil {
				t.Errorf("complete() = %v", err)
			}
			if !strings.Contains(strings.Join(q.said, "\n"), "Gmail") {
				t.Errorf("the provider menu was not shown: %q", q.said)
			}
		})
	}
}
