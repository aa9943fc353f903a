package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/fetcher"
)

// variant writes a copy of the client config with old replaced by new and
// returns its path.
func (e *e2e) variant(t *testing.T, name, old, new string) string {
	t.Helper()
	text := mustRead(t, e.clientCfg)
	if !strings.Contains(text, old) {
		t.Fatalf("client config has no %q:\n%s", old, text)
	}
	p := filepath.Join(filepath.Dir(e.clientCfg), name)
	if err := os.WriteFile(p, []byte(strings.Replace(text, old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckAndFetchDiagnose: with the wrong client key or the wrong name,
// `check` fails on the newest message and says why, and `fetch --once`
// exits 1 with the same diagnosis, in text and in JSON.
func TestCheckAndFetchDiagnose(t *testing.T) {
	e := newE2E(t)
	dir := filepath.Dir(e.clientCfg)
	sk, err := codec.ParseServerKey(mustRead(t, filepath.Join(dir, "server.key")))
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := codec.GenerateServerKey(nil)
	if err := os.WriteFile(filepath.Join(dir, "wrong.key"), []byte(wrong.ClientKey().Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", "8.8.4.4"); code != exitOK {
		t.Fatalf("publish = %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "check", "--config", e.clientCfg); code != exitOK || !strings.Contains(out, `PASS newest message for "office" in INBOX: newest message from "office" opens and verifies: 8.8.4.4`) {
		t.Errorf("check (right key) = %d\n%s", code, out)
	}
	wrongKey := e.variant(t, "wrong-key.yaml", "key: file:client.key", "key: file:wrong.key")
	keyProblem := fmt.Sprintf("signed by another key (key id %s; this client holds %s)", sk.ID(), wrong.ID())
	code, out, _ := runCLI(t, "check", "--config", wrongKey)
	if code != exitUsage || !strings.Contains(out, "FAIL newest message for \"office\"") || !strings.Contains(out, keyProblem) {
		t.Errorf("check (wrong key) = %d, want %d and a FAIL line with %q:\n%s", code, exitUsage, keyProblem, out)
	}
	wrongName := e.variant(t, "wrong-name.yaml", "name: office", "name: office-pc")
	code, out, _ = runCLI(t, "check", "--config", wrongName)
	if want := "is from `office`, this client is `office-pc`"; code != exitUsage || !strings.Contains(out, want) {
		t.Errorf("check (wrong name) = %d, want %d and %q:\n%s", code, exitUsage, want, out)
	}

	code, out, errOut := runCLI(t, "fetch", "--once", "--config", wrongKey)
	if code != exitNoResult || out != "" || !strings.Contains(errOut, "1 message "+keyProblem) {
		t.Errorf("fetch (wrong key) = %d %q %q, want %d and the diagnosis", code, out, errOut, exitNoResult)
	}
	code, out, _ = runCLI(t, "fetch", "--once", "--json", "--config", wrongName)
	var got struct {
		IPv4    *string `json:"ipv4"`
		Problem string  `json:"problem"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != exitNoResult || got.IPv4 != nil ||
		got.Problem != "1 message from `office`, this client is `office-pc` (check `name` in the config)" {
		t.Errorf("fetch --json (wrong name) = %d %s (%v), want exit 1 with the problem and no address", code, out, err)
	}
}

func TestFetchLine(t *testing.T) {
	t.Parallel()
	base := fetcher.Result{Name: "office", IPv4: netip.MustParseAddr("203.0.113.7"), Seq: 42, Format: codec.FormatSealed}
	tests := []struct {
		name      string
		age       time.Duration
		format    codec.Format
		lastKnown bool
		want      string
	}{
		{"current", 3 * time.Minute, codec.FormatSealed, false, "office 203.0.113.7 (seq 42, issued 3m0s ago)"},
		{"ahead", -9 * time.Minute, codec.FormatSealed, false, "office 203.0.113.7 (seq 42, dated 9m0s ahead of this PC's clock)"},
		{"last known", 5*time.Hour + 20*time.Minute, codec.FormatSealed, true, "office 203.0.113.7 (last known, 5 h old)"},
		{"last known days", 80 * time.Hour, codec.FormatSealed, true, "office 203.0.113.7 (last known, 3 days old)"},
		{"legacy", time.Minute, codec.FormatLegacy, false, "office 203.0.113.7 (legacy, unauthenticated; issued 1m0s ago)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := base
			r.Age, r.Format = tt.age, tt.format
			if got := fetchLine(r, tt.lastKnown); got != tt.want {
				t.Errorf("fetchLine(%s) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

// TestFetchPasswordRefused: a refused login is a configuration problem
// (exit 2) naming mail.password, not a network error, and never prints the
// password.
func TestFetchPasswordRefused(t *testing.T) {
	e := newE2E(t)
	dir := filepath.Dir(e.clientCfg)
	if err := os.WriteFile(filepath.Join(dir, "wrong-password"), []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.variant(t, "wrong-password.yaml", "password: file:password", "password: file:wrong-password")
	code, out, errOut := runCLI(t, "fetch", "--once", "--config", cfg)
	if code != exitUsage || !strings.Contains(errOut, `refused the login of "office@ipsync.test"`) || !strings.Contains(errOut, "mail.password") || strings.Contains(out+errOut, "not-the-password") {
		t.Errorf("fetch (wrong password) = %d %q %q, want %d naming mail.password without the password", code, out, errOut, exitUsage)
	}
}
