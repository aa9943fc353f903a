package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"ipsync/loopmail"
)

// writeVariant writes a copy of the config at base with each old string
// replaced by its new one, and returns its path.
func writeVariant(t *testing.T, base, name string, oldNew ...string) string {
	t.Helper()
	text := mustRead(t, base)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(text, oldNew[i]) {
			t.Fatalf("config %s has no %q", base, oldNew[i])
		}
		text = strings.Replace(text, oldNew[i], oldNew[i+1], 1)
	}
	p := filepath.Join(filepath.Dir(base), name+".yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMailErrorMessages: each set-up mistake a new user makes with the
// mail settings, driven for real against the loopback mail server, ends
// with one message that names the setting and the fix (no library
// jargon, no sequence number first, no doubled prefix) and its exit code.
func TestMailErrorMessages(t *testing.T) {
	e := newE2E(t)
	echo := startEcho(t, "203.0.113.5")
	impatientTLS := startImpatientTLS(t)
	_, smtpPort, _ := strings.Cut(e.mail.SMTPAddr(), ":")
	_, imapPort, _ := strings.Cut(e.mail.IMAPAddr(), ":")
	imapLine := "imap: {host: 127.0.0.1, port: " + imapPort + ", tls: starttls}"
	smtpLine := "smtp: {host: 127.0.0.1, port: " + smtpPort + ", tls: implicit}"
	fetch := []string{"fetch", "--once"}
	publish := []string{"publish", "--once", "--ip", "8.8.4.4"}
	// Stand-ins for SMTP servers that turn the login down in ways loopmail
	// does not: for now (454), and by offering no login at all (port 25).
	loginLater := startLoginServer(t, []string{"PLAIN"}, &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many login attempts, please try again later."})
	noLogin := startLoginServer(t, nil, nil)
	tests := []struct {
		name   string
		server bool     // vary the server config (else the client's)
		oldNew []string // config edits
		args   []string
		code   int
		want   []string // in stderr (or stdout for check)
	}{
		{"imap on the smtp port", false, []string{imapLine, "imap: {host: 127.0.0.1, port: " + smtpPort + ", tls: implicit}"}, fetch, exitNetwork,
			[]string{"ipsync: mail.imap.port: 127.0.0.1:" + smtpPort + " answers as an SMTP server, not IMAP: set mail.imap.port to the IMAP port"}},
		{"smtp on the imap port", true, []string{smtpLine, "smtp: {host: 127.0.0.1, port: " + imapPort + ", tls: starttls}"}, publish, exitNetwork,
			[]string{"ipsync: mail.smtp.port: 127.0.0.1:" + imapPort + " answers as an IMAP server, not SMTP: set mail.smtp.port to the SMTP submission port"}},
		{"smtp implicit on the imap port", true, []string{smtpLine, "smtp: {host: 127.0.0.1, port: " + imapPort + ", tls: implicit}"}, publish, exitNetwork,
			[]string{"ipsync: mail.smtp.port: 127.0.0.1:" + imapPort + " answers as an IMAP server, not SMTP"}},
		{"imap implicit on a starttls port", false, []string{imapLine, "imap: {host: 127.0.0.1, port: " + imapPort + ", tls: implicit}"}, fetch, exitNetwork,
			[]string{"ipsync: mail.imap.tls: ", "speaks IMAP without TLS from the first byte", "set mail.imap.tls: starttls"}},
		{"imap starttls on an implicit tls port", false, []string{imapLine, "imap: {host: 127.0.0.1, port: " + smtpPort + ", tls: starttls}"}, fetch, exitNetwork,
			[]string{"ipsync: mail.imap.tls: ", "expects TLS from the first byte", "set mail.imap.tls: implicit"}},
		{"smtp starttls on an implicit tls port", true, []string{smtpLine, "smtp: {host: 127.0.0.1, port: " + impatientTLS + ", tls: starttls}"}, publish, exitNetwork,
			[]string{"ipsync: mail.smtp.tls: ", "set mail.smtp.tls: implicit"}},
		{"unknown certificate authority, imap", false, []string{"  ca_file: ca.pem\n", ""}, fetch, exitNetwork,
			[]string{"ipsync: mail.ca_file: the certificate of 127.0.0.1:" + imapPort + " is signed by an authority this computer does not trust", "set mail.ca_file"}},
		{"unknown certificate authority, smtp", true, []string{"  ca_file: ca.pem\n", ""}, publish, exitNetwork,
			[]string{"ipsync: mail.ca_file: the certificate of 127.0.0.1:" + smtpPort}},
		{"wrong password, imap", false, []string{"file:password", "not-the-password"}, fetch, exitUsage,
			[]string{`ipsync: mail.password: the IMAP server 127.0.0.1 refused the login of "office@ipsync.test"`, "check mail.username and mail.password"}},
		{"wrong password, smtp", true, []string{"file:password", "not-the-password"}, publish, exitUsage,
			[]string{`ipsync: mail.password: the SMTP server 127.0.0.1 refused the login of "office@ipsync.test" (535`}},
		{"wrong password, check", true, []string{"file:password", "not-the-password", "role: server\n", "role: server\npublisher:\n  sources: [" + echo.HTTPSURL() + ", " + echo.DNSURL() + "]\n  agree: 1\n  ipv6: off\n"}, []string{"check"}, exitUsage,
			[]string{`FAIL smtp 127.0.0.1:` + smtpPort + ` (implicit) login: mail.password: the SMTP server 127.0.0.1 refused the login`,
				`FAIL imap 127.0.0.1:` + imapPort + ` (starttls) login for retention (keep_messages 48): mail.password: the IMAP server 127.0.0.1 refused the login`}},
		{"imap on the smtp port, check", false, []string{imapLine, "imap: {host: 127.0.0.1, port: " + smtpPort + ", tls: starttls}"}, []string{"check"}, exitNetwork,
			[]string{"FAIL imap 127.0.0.1:" + smtpPort + " (starttls) login and mailbox INBOX: mail.imap.tls: "}},
		{"mailbox missing", false, []string{imapLine, strings.TrimSuffix(imapLine, "}") + ", mailbox: Ipsync}"}, fetch, exitNetwork,
			[]string{`ipsync: mail.imap.mailbox: the mailbox "Ipsync" does not exist for office@ipsync.test`}},
		{"mailbox missing, check", true, []string{imapLine, strings.TrimSuffix(imapLine, "}") + ", mailbox: Ipsync}", "role: server\n", "role: server\npublisher:\n  sources: [" + echo.HTTPSURL() + ", " + echo.DNSURL() + "]\n  agree: 1\n  ipv6: off\n"}, []string{"check"}, exitNetwork,
			[]string{`FAIL imap 127.0.0.1:` + imapPort + ` (starttls) login for retention (keep_messages 48): mail.imap.mailbox: the mailbox "Ipsync" does not exist`}},
		{"smtp login refused for now", true, []string{smtpLine, "smtp: {host: 127.0.0.1, port: " + loginLater + ", tls: none}"}, publish, exitNetwork,
			[]string{`ipsync: mail.smtp.host: the SMTP server 127.0.0.1 did not take the login of "office@ipsync.test" just now (454 4.7.0 Too many login attempts, please try again later.)`, "not a verdict on the password"}},
		{"smtp without login", true, []string{smtpLine, "smtp: {host: 127.0.0.1, port: " + noLogin + ", tls: none}"}, publish, exitNetwork,
			[]string{"ipsync: mail.smtp.port: 127.0.0.1:" + noLogin + " offers no login ipsync can use", "set mail.smtp.port to the SMTP submission port"}},
		{"smtp without login, check", true, []string{smtpLine, "smtp: {host: 127.0.0.1, port: " + noLogin + ", tls: none}", "role: server\n", "role: server\npublisher:\n  sources: [" + echo.HTTPSURL() + ", " + echo.DNSURL() + "]\n  agree: 1\n  ipv6: off\n"}, []string{"check"}, exitNetwork,
			[]string{"FAIL smtp 127.0.0.1:" + noLogin + " (none) login: mail.smtp.port: 127.0.0.1:" + noLogin + " offers no login ipsync can use"}},
		{"missing client key file", false, []string{"file:client.key", "file:keys/client.key"}, fetch, exitUsage,
			[]string{"missing-client-key-file.yaml: codec.key:", "keys/client.key", "copy client.key from the server", "ipsync keygen"}},
		{"missing server key file", true, []string{"file:server.key", "file:keys/server.key"}, publish, exitUsage,
			[]string{"missing-server-key-file.yaml: codec.key:", "keys/server.key", "run `ipsync keygen --out DIR` on the server"}},
		{"server key on a client", false, []string{"file:client.key", "file:server.key"}, fetch, exitUsage,
			[]string{"this is a server key, which can forge messages: clients need the client key"}},
		{"client key on the server", true, []string{"file:server.key", "file:client.key"}, publish, exitUsage,
			[]string{"this is a client key, but the server needs the server key (ipsync-server-1:…, server.key of `ipsync keygen --out DIR`)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := e.clientCfg
			if tt.server {
				base = e.serverCfg
			}
			p := writeVariant(t, base, strings.NewReplacer(" ", "-", ",", "").Replace(tt.name), tt.oldNew...)
			code, out, errOut := runCLI(t, append(tt.args, "--config", p)...)
			got := errOut
			if tt.args[0] == "check" {
				got = out
			}
			if code != tt.code {
				t.Errorf("ipsync %s = exit %d, want %d\nstdout: %s\nstderr: %s", tt.name, code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("ipsync %s printed\n%s\nwant it to contain %q", tt.name, got, w)
				}
			}
			for _, jargon := range []string{"unknown tag", "short response", "first record does not look like", "unexpected EOF", "context deadline exceeded", "x509:", "dial failed", "ipsync: ipsync"} {
				if strings.Contains(errOut+out, jargon) {
					t.Errorf("ipsync %s printed %q, which says nothing a user can act on:\n%s%s", tt.name, jargon, out, errOut)
				}
			}
			if regexp.MustCompile(`ipsync: (publish|encode) message \d|seq(uence number)? \d+:`).MatchString(errOut) {
				t.Errorf("ipsync %s leads with the sequence number:\n%s", tt.name, errOut)
			}
			if n := strings.Count(got, "keygen"); n > 1 {
				t.Errorf("ipsync %s names keygen %d times (a message that repeats itself):\n%s", tt.name, n, got)
			}
		})
	}
}

// TestConfigFileMessages: the config file's own problems, as a new user
// meets them through the real command: every problem of the file at once,
// each with its line (a value that cannot be read hides none of the
// others), and a literal password in a file others can read named with the
// file's mode and the command that fixes it.
func TestConfigFileMessages(t *testing.T) {
	e := newE2E(t)
	tests := []struct {
		name   string
		oldNew []string
		mode   os.FileMode
		args   []string
		code   int
		want   []string // in stderr (stdout for check), with FILE for the config's path
	}{
		{"a value that cannot be read beside other problems", []string{"name: office", "name: office pc", "role: client\n", "role: client\nfetcher:\n  poll_every: often\n  idle: maybe\n  stale_after: 5s\n"}, 0o600,
			[]string{"fetch", "--once"}, exitUsage, []string{
				`ipsync: FILE: line 1: name: "office pc" is not a valid name`,
				`ipsync: FILE: line 13: fetcher.poll_every: "often" is not a duration: write it like 90s, 5m or 1h30m`,
				`ipsync: FILE: line 14: fetcher.idle: "maybe" must be auto, on or off`,
				"ipsync: FILE: line 15: fetcher.stale_after: 5s is too short",
			}},
		{"the same through check", []string{"name: office", "name: office pc", "role: client\n", "role: client\nfetcher:\n  poll_every: often\n  idle: maybe\n"}, 0o600,
			[]string{"check"}, exitUsage, []string{
				`FAIL config FILE: line 1: name: "office pc" is not a valid name`,
				`FAIL config FILE: line 13: fetcher.poll_every: "often" is not a duration`,
				`FAIL config FILE: line 14: fetcher.idle: "maybe" must be auto, on or off`,
			}},
		{"world-readable literal password", []string{"file:password", "pw-e2e"}, 0o644,
			[]string{"fetch", "--once"}, exitNoResult, []string{
				"FILE: line 5: mail.password is written in clear in a file other users can read (mode 0644): run chmod 600 FILE, and better, move it out of the file",
			}},
		{"world-readable literal password, check", []string{"file:password", "pw-e2e"}, 0o644,
			[]string{"check"}, exitOK, []string{
				"WARN FILE: line 5: mail.password is written in clear in a file other users can read (mode 0644): run chmod 600 FILE",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeVariant(t, e.clientCfg, strings.NewReplacer(" ", "-", ",", "").Replace(tt.name), tt.oldNew...)
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, append(tt.args, "--config", p)...)
			got := errOut
			if tt.args[0] == "check" {
				got = out
			}
			if code != tt.code {
				t.Errorf("ipsync %s = exit %d, want %d\nstdout: %s\nstderr: %s", tt.name, code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "FILE", p); !strings.Contains(got, w) {
					t.Errorf("ipsync %s printed\n%s\nwant it to contain %q", tt.name, got, w)
				}
			}
		})
	}
}

// startLoginServer starts an SMTP server on loopback (no TLS) whose AUTH
// offers mechs and answers every login with err, and returns its port. With
// no mechs it offers no AUTH at all, as port 25 of most mail servers does.
func startLoginServer(t *testing.T, mechs []string, err error) string {
	t.Helper()
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &loginSession{mechs: mechs, err: err}, nil
	}))
	s.AllowInsecureAuth = true
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	return port
}

// loginSession is a go-smtp session that refuses every login with err and
// takes no mail.
type loginSession struct {
	mechs []string
	err   error
}

func (s *loginSession) AuthMechanisms() []string { return s.mechs }
func (s *loginSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, _, _ string) error { return s.err }), nil
}
func (s *loginSession) Mail(string, *smtp.MailOptions) error { return errors.New("log in first") }
func (s *loginSession) Rcpt(string, *smtp.RcptOptions) error { return errors.New("log in first") }
func (s *loginSession) Data(io.Reader) error                 { return errors.New("log in first") }
func (s *loginSession) Reset()                               {}
func (s *loginSession) Logout() error                        { return nil }

func TestFlagErrorPrefix(t *testing.T) {
	for _, verb := range []string{"client", "server", "fetch", "publish", "check", "keygen", "demo", "version"} {
		code, _, errOut := runCLI(t, verb, "--bogus")
		want := "ipsync: " + verb + ": flag provided but not defined: -bogus (see `ipsync " + verb + " --help`)\n"
		if code != exitUsage || errOut != want {
			t.Errorf("ipsync %s --bogus = %d %q, want %d %q", verb, code, errOut, exitUsage, want)
		}
		code, _, errOut = runCLI(t, verb, "extra")
		if code != exitUsage || !strings.HasPrefix(errOut, "ipsync: "+verb+" takes no arguments") {
			t.Errorf("ipsync %s extra = %d %q, want %d and a refusal of the argument", verb, code, errOut, exitUsage)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("random source broken") }

// TestExitCodes: one case per exit code, with the failures that are not
// the network's (a broken random source, a state folder that cannot be
// made) no longer reported as mail or network errors.
func TestExitCodes(t *testing.T) {
	e := newE2E(t)
	// A folder stands where the state file's lock belongs: refused at start
	// as an unsafe state location, with the fix (the user's to make).
	lockBlocked := writeVariant(t, e.serverCfg, "lock-blocked", "state_dir: state-server", "state_dir: state-blocked")
	if err := os.MkdirAll(filepath.Join(filepath.Dir(lockBlocked), "state-blocked", "server-office.json.lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	closedIMAP := writeVariant(t, e.clientCfg, "closed-imap", "port: "+strings.Split(e.mail.IMAPAddr(), ":")[1], "port: 9")
	tests := []struct {
		name string
		env  env
		args []string
		code int
		want string // in stderr
	}{
		{"ok", env{}, []string{"version"}, exitOK, ""},
		{"no valid result", env{}, []string{"fetch", "--once", "--config", e.clientCfg}, exitNoResult, "no valid message"},
		{"usage", env{}, []string{"fetch", "--once", "--nope"}, exitUsage, "flag provided but not defined"},
		{"config", env{}, []string{"fetch", "--once", "--config", "/nonexistent/ipsync.yaml"}, exitUsage, "config file not found"},
		{"mail or network", env{}, []string{"fetch", "--once", "--config", closedIMAP}, exitNetwork, "mail.imap.port: nothing accepts connections on 127.0.0.1:9"},
		{"keygen without randomness", env{rand: failingReader{}}, []string{"keygen"}, exitInternal, "generate server key: read random bytes: random source broken"},
		{"state lock blocked", env{}, []string{"publish", "--once", "--ip", "8.8.4.4", "--config", lockBlocked}, exitUsage, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			ev := tt.env
			ev.stdout, ev.stderr = &out, &errb
			err := ev.run(t.Context(), tt.args)
			if code := exitCode(err); code != tt.code || !strings.Contains(errb.String()+fmt.Sprint(err), tt.want) {
				t.Errorf("ipsync %q = exit %d (%v), stderr %q; want exit %d with %q", tt.args, code, err, errb.String(), tt.code, tt.want)
			}
		})
	}
	// The errors a verb does not classify itself.
	for _, tt := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("reserve sequence number: save publisher state: %w", &fs.PathError{Op: "write", Path: "/var/lib/ipsync/x", Err: syscall.ENOSPC}), exitInternal},
		{errors.New("something unforeseen"), exitInternal},
		{fmt.Errorf("send: %w", syscall.ECONNRESET), exitNetwork},
		{usageErr("bad"), exitUsage},
	} {
		if got := exitCode(tt.err); got != tt.code {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
	}
}

// startImpatientTLS listens on loopback as an implicit-TLS port that gives
// a client half a second to start the handshake (the loopback mail server
// gives 30 s), and returns its port.
func startImpatientTLS(t *testing.T) string {
	t.Helper()
	cert, _, err := loopmail.SelfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	return port
}
