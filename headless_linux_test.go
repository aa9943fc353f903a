package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipsync/internal/dbustest"
)

// TestHeadlessClientStopsCleanly runs the real client without a display:
// it must say in one line why there is no tray, show the address in its
// log, and on SIGTERM exit 0 with its state saved and its IMAP connection
// logged out.
func TestHeadlessClientStopsCleanly(t *testing.T) {
	e := newE2E(t)
	if code, _, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", "8.8.4.4"); code != exitOK {
		t.Fatalf("publish: %d %s", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	env := []string{childEnvFor("client", "--config", e.clientCfg)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISPLAY=") && !strings.HasPrefix(kv, "WAYLAND_DISPLAY=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log dbustest.Buffer
	idle := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
			if !signalled && strings.Contains(log.String(), "state=current") && strings.Contains(log.String(), "mode=idle") {
				close(idle)
				signalled = true
			}
		}
	}()
	select {
	case <-idle:
	case <-ctx.Done():
		t.Fatalf("client never reached IDLE with the address:\n%s", log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client exit after SIGTERM = %v, want 0\n%s", err, log.String())
	}
	out := log.String()
	for _, want := range []string{"no display (DISPLAY/WAYLAND_DISPLAY unset): running headless", "server address received", "ipv4=8.8.4.4"} {
		if !strings.Contains(out, want) {
			t.Errorf("client log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pw-e2e") {
		t.Errorf("client log reveals the password:\n%s", out)
	}
	var saved struct {
		Accepted struct {
			IPv4 string `json:"ipv4"`
		} `json:"accepted"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(e.clientCfg), "state-client", "client-office.json"))
	if err != nil || json.Unmarshal(data, &saved) != nil || saved.Accepted.IPv4 != "8.8.4.4" {
		t.Errorf("state file = %s, %v; want the accepted 8.8.4.4", data, err)
	}
	// The server closes a connection when the client logs out; give the
	// server's side a bounded moment to notice.
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for e.mail.Stats().IMAPConnsOpen != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("IMAP connections still open after exit: %d", e.mail.Stats().IMAPConnsOpen)
		}
		<-tick.C
	}
}
