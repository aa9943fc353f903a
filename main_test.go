package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/ipecho"
	"ipsync/loopmail"
)

// runCLI runs one command line in-process and returns its exit code and
// output.
func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndHelp(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"no verb", nil, exitUsage, "Usage:", "no verb given"},
		{"help", []string{"help"}, exitOK, "Exit codes", ""},
		{"unknown verb", []string{"frobnicate"}, exitUsage, "", `unknown verb "frobnicate"`},
		{"version", []string{"version"}, exitOK, "ipsync dev", ""},
		{"bad flag", []string{"check", "--colour"}, exitUsage, "", "flag provided but not defined: -colour"},
		{"fetch without once", []string{"fetch"}, exitUsage, "", "fetch needs --once"},
		{"publish without once", []string{"publish"}, exitUsage, "", "publish needs --once"},
		{"publish private ip", []string{"publish", "--once", "--ip", "10.0.0.1"}, exitUsage, "", "not a public unicast address"},
		{"publish cgnat ip", []string{"publish", "--once", "--ip", "100.64.1.1"}, exitUsage, "", "--ip 100.64.1.1 is not a public unicast address: carrier-grade NAT range 100.64.0.0/10; give the address the internet sees"},
		{"publish documentation ip", []string{"publish", "--once", "--ip", "203.0.113.7"}, exitUsage, "", "documentation range 203.0.113.0/24; for a demo or test, add --allow-documentation-ip"},
		{"publish private ip despite exception", []string{"publish", "--once", "--allow-documentation-ip", "--ip", "192.168.1.1"}, exitUsage, "", "private address"},
		{"legacy no sub", []string{"legacy"}, exitUsage, "", "encode or decode"},
		{"legacy bad factor", []string{"legacy", "encode", "--factor", "x", "--alphabet", "odzmtaciru", "--padding", "b", "1.2.3.4"}, exitUsage, "", "--factor"},
		{"legacy ipv6", []string{"legacy", "encode", "--factor", "2", "--alphabet", "odzmtaciru", "--padding", "b", "2001:db8::1"}, exitUsage, "", "IPv4 only"},
		{"missing config", []string{"check", "--config", "/nonexistent/ipsync.yaml"}, exitUsage, "FAIL config: /nonexistent/ipsync.yaml: config file not found", ""},
		{"client missing config", []string{"client", "--headless", "--config", "/nonexistent/ipsync.yaml"}, exitUsage, "", "config file not found"},
	}
	verbHelp := []string{"server", "client", "publish", "fetch", "keygen", "legacy", "check", "demo", "version"}
	for _, v := range verbHelp {
		tests = append(tests, struct {
			name     string
			args     []string
			code     int
			out, err string
		}{v + " --help", []string{v, "--help"}, exitOK, "Usage: ipsync " + v, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Errorf("ipsync %q = %d, stdout %q, stderr %q; want %d, stdout with %q, stderr with %q",
					tt.args, code, out, errOut, tt.code, tt.out, tt.err)
			}
		})
	}
}

func TestLegacySeedVector(t *testing.T) {
	const text = "-5538.823987594815mn-9692.941978290926cq-0.0ox-9.616013867352109db"
	code, out, errOut := runCLI(t, "legacy", "decode", "--factor", "-9.616013867352109", "--alphabet", "odzmtaciru", "--", text)
	if code != exitOK || out != "192.168.0.1\n" {
		t.Fatalf("legacy decode = %d %q %q, want 192.168.0.1", code, out, errOut)
	}
	code, out, _ = runCLI(t, "legacy", "encode", "--factor", "-9.616013867352109", "--alphabet", "odzmtaciru", "--padding", "befghjklnpqsvwxy", "192.168.0.1")
	if code != exitOK {
		t.Fatalf("legacy encode = %d", code)
	}
	code, back, _ := runCLI(t, "legacy", "decode", "--factor", "-9.616013867352109", "--alphabet", "odzmtaciru", "--padding", "befghjklnpqsvwxy", "--", strings.TrimSpace(out))
	if code != exitOK || back != "192.168.0.1\n" {
		t.Errorf("decode(encode(192.168.0.1)) = %d %q", code, back)
	}
	code, _, errOut = runCLI(t, "legacy", "decode", "--factor", "-9.616013867352109", "--alphabet", "odzmtaciru", "--", text+"x")
	if code != exitNoResult || !strings.Contains(errOut, "group") {
		t.Errorf("decode(junk) = %d %q, want exit 1 naming the group", code, errOut)
	}
}

func TestKeygen(t *testing.T) {
	code, out, _ := runCLI(t, "keygen")
	if code != exitOK {
		t.Fatalf("keygen = %d", code)
	}
	var sk codec.ServerKey
	var ck codec.ClientKey
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "ipsync-server-1:"):
			k, err := codec.ParseServerKey(line)
			if err != nil {
				t.Fatal(err)
			}
			sk = k
		case strings.HasPrefix(line, "ipsync-client-1:"):
			k, err := codec.ParseClientKey(line)
			if err != nil {
				t.Fatal(err)
			}
			ck = k
		}
	}
	if sk.ID() == "" || sk.ClientKey().Text() != ck.Text() {
		t.Fatalf("keygen printed keys that do not belong together:\n%s", out)
	}
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, "keygen", "--out", dir); code != exitOK {
		t.Fatalf("keygen --out = %d %s", code, errOut)
	}
	if fi, err := os.Stat(filepath.Join(dir, "server.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("server.key = %v, %v; want mode 0600", fi, err)
	}
	if code, _, errOut := runCLI(t, "keygen", "--out", dir); code != exitUsage || !strings.Contains(errOut, "never overwrites") {
		t.Errorf("second keygen --out = %d %q, want refusal", code, errOut)
	}
	code, out, _ = runCLI(t, "keygen", "--server-key", filepath.Join(dir, "server.key"))
	client, _ := os.ReadFile(filepath.Join(dir, "client.key"))
	if code != exitOK || !strings.Contains(out, strings.TrimSpace(string(client))) {
		t.Errorf("keygen --server-key = %d %q, want the client key %q", code, out, client)
	}
}

// e2e is a loopback mail server and matching server and client configs.
type e2e struct {
	mail                 *loopmail.Server
	serverCfg, clientCfg string
}

func newE2E(t testing.TB) *e2e {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m, err := loopmail.Start(ctx, loopmail.Options{
		Users:   map[string]string{"office@ipsync.test": "pw-e2e"},
		SMTPTLS: loopmail.TLSImplicit,
		IMAPTLS: loopmail.TLSStartTLS,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", string(m.CertPEM()))
	write("server.key", sk.Text())
	write("client.key", sk.ClientKey().Text())
	write("password", "pw-e2e\n")
	_, smtpPort, _ := strings.Cut(m.SMTPAddr(), ":")
	_, imapPort, _ := strings.Cut(m.IMAPAddr(), ":")
	common := `name: office
state_dir: state-%s
mail:
  address: office@ipsync.test
  password: file:password
  ca_file: ca.pem
  smtp: {host: 127.0.0.1, port: ` + smtpPort + `, tls: implicit}
  imap: {host: 127.0.0.1, port: ` + imapPort + `, tls: starttls}
codec:
  key: file:%s
`
	return &e2e{
		mail:      m,
		serverCfg: write("server.yaml", strings.ReplaceAll(strings.Replace(common, "%s", "server", 1), "%s", "server.key")+"role: server\n"),
		clientCfg: write("client.yaml", strings.ReplaceAll(strings.Replace(common, "%s", "client", 1), "%s", "client.key")+"role: client\n"),
	}
}

func TestPublishThenFetch(t *testing.T) {
	e := newE2E(t)
	if code, _, errOut := runCLI(t, "fetch", "--once", "--config", e.clientCfg); code != exitNoResult {
		t.Errorf("fetch on an empty mailbox = %d %q, want %d", code, errOut, exitNoResult)
	}
	code, out, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", "8.8.4.4", "--ip", "2606:4700::1")
	if code != exitOK || !strings.Contains(out, "sent 8.8.4.4 2606:4700::1") {
		t.Fatalf("publish = %d %q %q", code, out, errOut)
	}
	// Sequence numbers start from the clock (publisher.UnixSeq).
	seq := uint64(time.Now().Unix())
	code, out, errOut = runCLI(t, "fetch", "--once", "--json", "--config", e.clientCfg)
	if code != exitOK {
		t.Fatalf("fetch = %d %q", code, errOut)
	}
	var got struct {
		Name       string  `json:"name"`
		IPv4       *string `json:"ipv4"`
		IPv6       *string `json:"ipv6"`
		Seq        uint64  `json:"sequence"`
		IssuedAt   string  `json:"issued_at"`
		AgeSeconds *int64  `json:"age_seconds"`
		Format     string  `json:"format"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("fetch --json printed %q: %v", out, err)
	}
	if got.Name != "office" || got.IPv4 == nil || *got.IPv4 != "8.8.4.4" || got.IPv6 == nil || *got.IPv6 != "2606:4700::1" ||
		got.Seq < seq-60 || got.Seq > seq+60 || got.Format != "sealed" || got.AgeSeconds == nil || *got.AgeSeconds > 60 {
		t.Errorf("fetch --json = %s", out)
	}
	if _, err := time.Parse(time.RFC3339, got.IssuedAt); err != nil {
		t.Errorf("issued_at %q: %v", got.IssuedAt, err)
	}
	code, out, _ = runCLI(t, "fetch", "--once", "--config", e.clientCfg)
	if code != exitOK || !strings.HasPrefix(out, fmt.Sprintf("office 8.8.4.4 2606:4700::1 (seq %d,", got.Seq)) {
		t.Errorf("fetch = %d %q", code, out)
	}
}

// TestPublishDocumentationIPNeedsException: --ip follows discovery's
// public-address rule; the documentation ranges the demo and the desktop
// scripts publish pass only with the named exception.
func TestPublishDocumentationIPNeedsException(t *testing.T) {
	e := newE2E(t)
	if code, _, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", "203.0.113.7"); code != exitUsage || !strings.Contains(errOut, "--allow-documentation-ip") {
		t.Errorf("publish --ip 203.0.113.7 = %d %q, want %d naming --allow-documentation-ip", code, errOut, exitUsage)
	}
	code, out, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--allow-documentation-ip", "--ip", "203.0.113.7")
	if code != exitOK || !strings.Contains(out, "sent 203.0.113.7") {
		t.Errorf("publish --allow-documentation-ip --ip 203.0.113.7 = %d %q %q, want sent", code, out, errOut)
	}
}

func TestCheckAgainstLoopback(t *testing.T) {
	e := newE2E(t)
	code, out, errOut := runCLI(t, "check", "--config", e.clientCfg)
	if code != exitOK || !strings.Contains(out, "PASS imap 127.0.0.1") || !strings.Contains(out, "PASS client secrets") {
		t.Errorf("check client = %d\n%s%s", code, out, errOut)
	}
	// The server check also asks the real address sources, which tests
	// must not reach: check only the SMTP line with no sources reachable.
	bad := strings.Replace(mustRead(t, e.clientCfg), "file:password", "env:IPSYNC_TEST_NO_SUCH_VAR", 1)
	p := filepath.Join(filepath.Dir(e.clientCfg), "bad.yaml")
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "check", "--config", p)
	if code != exitUsage || !strings.Contains(out, "FAIL client secrets: mail.password") {
		t.Errorf("check with a missing secret = %d\n%s", code, out)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckServerAgainstLoopback(t *testing.T) {
	e := newE2E(t)
	echo := startEcho(t, "203.0.113.5")
	// The stand-in answers with a documentation address, which production
	// validation must reject: the source lines fail, the mail lines pass.
	cfg := mustRead(t, e.serverCfg) + "publisher:\n  sources: [" + echo.HTTPSURL() + ", " + echo.DNSURL() + "]\n  agree: 1\n  ipv6: off\n"
	p := filepath.Join(filepath.Dir(e.serverCfg), "server-check.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "check", "--config", p)
	for _, want := range []string{"PASS server secrets", "PASS smtp 127.0.0.1", "PASS imap 127.0.0.1", "login for retention", "FAIL source IPv4 dns://127.0.0.1", "plain DNS, corroborates only", "documentation range", "(localhost; authenticated)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if code != exitNetwork {
		t.Errorf("check = %d, want %d (a source failed)", code, exitNetwork)
	}
}

// TestLegacyEndToEnd: a legacy deployment (migration) publishes and reads
// the original tool's text through the real mail path.
func TestLegacyEndToEnd(t *testing.T) {
	e := newE2E(t)
	legacy := "codec:\n  format: legacy\n  legacy:\n    factor: -9.616013867352109\n    alphabet: odzmtaciru\n    padding: befghjklnpqsvwxy\n"
	rewrite := func(path string) string {
		cfg := mustRead(t, path)
		cfg = cfg[:strings.Index(cfg, "codec:\n")] + legacy + cfg[strings.Index(cfg, "role:"):]
		p := strings.TrimSuffix(path, ".yaml") + "-legacy.yaml"
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	server, client := rewrite(e.serverCfg), rewrite(e.clientCfg)
	if code, out, errOut := runCLI(t, "publish", "--once", "--config", server, "--ip", "8.8.4.4"); code != exitOK {
		t.Fatalf("legacy publish = %d %q %q", code, out, errOut)
	}
	msgs, err := e.mail.Messages("office@ipsync.test")
	if err != nil || len(msgs) != 1 || strings.Contains(string(msgs[0]), "8.8.4.4") {
		t.Fatalf("mailbox = %d messages, %v; want one that does not show the address in clear", len(msgs), err)
	}
	code, out, errOut := runCLI(t, "fetch", "--once", "--config", client)
	if code != exitOK || !strings.HasPrefix(out, "office 8.8.4.4 (legacy, unauthenticated;") {
		t.Errorf("legacy fetch = %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "publish", "--once", "--config", server, "--ip", "2606:4700::1"); code != exitUsage || !strings.Contains(errOut, "IPv4 only") {
		t.Errorf("legacy publish of an IPv6-only address = %d %q, want exit %d naming IPv4 only", code, errOut, exitUsage)
	}
}

func TestCheckPicksRoleAndReportsSources(t *testing.T) {
	e := newE2E(t)
	// No role: key in the file, so check infers it from codec.key.
	cfg := strings.Replace(mustRead(t, e.clientCfg), "role: client\n", "", 1)
	p := filepath.Join(filepath.Dir(e.clientCfg), "norole.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "check", "--config", p)
	if code != exitOK || !strings.Contains(out, "NOTE checking the client role: codec.key holds a client key") || strings.Contains(out, "server secrets") {
		t.Errorf("check without a role = %d\n%s", code, out)
	}
	// An unknown source preset is a config problem with its line.
	bad := mustRead(t, e.serverCfg) + "publisher:\n  sources: [ipify, aws]\n"
	p = filepath.Join(filepath.Dir(e.serverCfg), "badsource.yaml")
	if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "check", "--config", p)
	if code != exitUsage || !strings.Contains(out, "FAIL config "+p+": line 13: publisher.sources[1]: source \"aws\": not a preset") {
		t.Errorf("check with an unknown preset = %d\n%s", code, out)
	}
}

func TestLegacyFlagsAfterArgument(t *testing.T) {
	code, out, errOut := runCLI(t, "legacy", "encode", "192.168.0.1", "--factor", "-9.616013867352109", "--alphabet", "odzmtaciru", "--padding", "befghjklnpqsvwxy")
	if code != exitOK || !strings.HasPrefix(out, "-5538.823987594815m") {
		t.Errorf("legacy encode ADDR --flags = %d %q %q", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "legacy", "decode", "--factor", "2", "--alphabet", "odzmtaciru", "-5538.8x")
	if code != exitUsage || !strings.Contains(errOut, "goes after --") {
		t.Errorf("legacy decode of a negative TEXT without -- = %d %q, want a hint about --", code, errOut)
	}
	if code, out, _ := runCLI(t, "--version"); code != exitOK || !strings.HasPrefix(out, "ipsync ") {
		t.Errorf("ipsync --version = %d %q", code, out)
	}
}

// startEcho starts a loopback stand-in for the public "what is my IP"
// services answering ipv4; it stops when t ends.
func startEcho(t testing.TB, ipv4 string) *ipecho.Server {
	t.Helper()
	cert, _, err := loopmail.SelfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	echo, err := ipecho.Start(t.Context(), ipecho.Options{Cert: cert, IPv4: netip.MustParseAddr(ipv4)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	return echo
}

// TestRefusedRecipientEndToEnd: publish --once delivers to the recipient
// that accepts, names the refused one, and check lists both.
func TestRefusedRecipientEndToEnd(t *testing.T) {
	e := newE2E(t)
	echo := startEcho(t, "203.0.113.5")
	cfg := mustRead(t, e.serverCfg) + "publisher:\n  to: [office@ipsync.test, departed@ipsync.test]\n" +
		"  sources: [" + echo.DNSURL() + "]\n  agree: 1\n  ipv6: off\n"
	p := filepath.Join(filepath.Dir(e.serverCfg), "server-to.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "publish", "--once", "--config", p, "--ip", "8.8.4.4")
	if code != exitOK || !strings.Contains(out, "to office@ipsync.test\n") ||
		!strings.Contains(errOut, "not delivered to departed@ipsync.test: refused 550 5.1.1") {
		t.Errorf("publish = %d %q %q, want sent to office and departed named as refused", code, out, errOut)
	}
	if msgs, err := e.mail.Messages("office@ipsync.test"); err != nil || len(msgs) != 1 {
		t.Errorf("office's inbox = %d, %v, want 1 message", len(msgs), err)
	}
	_, out, _ = runCLI(t, "check", "--config", p)
	for _, want := range []string{"PASS recipient office@ipsync.test", "FAIL recipient departed@ipsync.test: refused 550 5.1.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}
