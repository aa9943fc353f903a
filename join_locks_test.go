package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJoinHoldsJoiningLock: join holds the joining lock while it works (a
// waiting first-run tray leaves the config alone until then) and lets go
// once the tray is started, before its last message.
func TestJoinHoldsJoiningLock(t *testing.T) {
	et := newEnrolTest(t, false)
	inv := et.invite(t)
	cfg := filepath.Join(et.cfgDir, "config.yaml")
	heldAtStart := false
	startDetached = func(exe string, args []string) error {
		heldAtStart = lockHeld(t.Context(), cfg, "joining")
		et.started = append(et.started, args)
		return nil
	}
	if code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile, "--start"); code != exitOK {
		t.Fatalf("join --start = %d\n%s%s", code, out, errOut)
	}
	if len(et.started) != 1 || !heldAtStart {
		t.Errorf("tray started %q, joining lock held then: %v; want one start with the lock held", et.started, heldAtStart)
	}
	if lockHeld(t.Context(), cfg, "joining") {
		t.Error("the joining lock is still held after join")
	}
}

// TestJoinStartWithClientRunning: join --force --start while a client runs
// with the old config starts nothing and says to restart that client.
func TestJoinStartWithClientRunning(t *testing.T) {
	et := newEnrolTest(t, false)
	inv := et.invite(t)
	cfg := filepath.Join(et.cfgDir, "config.yaml")
	release, err := holdLock(t.Context(), cfg, "client", time.Second) // the running client
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile, "--start")
	if code != exitOK || !strings.Contains(out, "quit it from its menu and start it again") || strings.Contains(out, "started the tray") {
		t.Errorf("join --start with a client running = %d\n%s%s", code, out, errOut)
	}
	if len(et.started) != 0 {
		t.Errorf("join started %q beside a running client", et.started)
	}
}

// TestStartedByIpsyncEndsQuietly: a client that join or the first-run tray
// started, finding one running, ends without a word (the running one is the
// one wanted), and does not pass the mark on to what it starts; started by
// a person, it says why it ends.
func TestStartedByIpsyncEndsQuietly(t *testing.T) {
	e := newE2E(t)
	old := instanceWait
	instanceWait = 50 * time.Millisecond
	t.Cleanup(func() { instanceWait = old })
	release, err := holdLock(t.Context(), e.clientCfg, "client", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	t.Setenv(startedByIpsync, "1")
	code, out, errOut := runCLI(t, "client", "--headless", "--config", e.clientCfg)
	// The log line stays (the log says why the process ended); no word to
	// a person.
	if code != exitOK || out != "" || strings.Contains(errOut, "already running with "+e.clientCfg) {
		t.Errorf("client started by ipsync beside a running one = %d %q %q, want 0 and nothing said", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "client", "--headless", "--config", e.clientCfg)
	if code != exitOK || !strings.Contains(errOut, "already running with "+e.clientCfg) {
		t.Errorf("client started by a person beside a running one = %d %q, want 0 and \"already running\"", code, errOut)
	}
}
