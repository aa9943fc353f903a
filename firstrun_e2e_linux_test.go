package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ipsync/internal/dbustest"
)

// TestFirstRunTrayOverDBus: `ipsync client` with no config (a fresh
// XDG_CONFIG_HOME) shows the "not set up" tray on a private session bus:
// its tooltip says so, its menu offers Join and the guide and hides Fetch
// now, and Quit ends it with status 0.
func TestFirstRunTrayOverDBus(t *testing.T) {
	d := dbustest.StartDesktop(t)
	c := startFirstRun(t, d, "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())

	item := d.WaitItem(t)
	tip := item.WaitToolTip(t, `"ipsync: not set up …"`, func(s string) bool { return strings.HasPrefix(s, "ipsync: not set up") })
	if !strings.Contains(tip, "Join with an invitation") {
		t.Errorf("ToolTip = %q, want it to point to Join with an invitation…", tip)
	}
	visible := func(e dbustest.MenuEntry) bool { return e.Props["visible"].Value() != false }
	for _, label := range []string{"ipsync is not set up on this PC", "Join with an invitation…", "Open the set-up guide", "Start at login", "Quit"} {
		if e := item.Entry(t, label); !visible(e) {
			t.Errorf("menu entry %q hidden", label)
		}
	}
	if e := item.Entry(t, "Fetch now"); visible(e) {
		t.Errorf("Fetch now visible in the not-set-up menu")
	}
	item.ClickExit(t, "Quit")
	if err := c.wait(t); err != nil {
		t.Fatalf("ipsync client after Quit: %v, want exit status 0", err)
	}
}

// startFirstRun starts `ipsync client` with no config as a child process
// on d's session bus, with env added; it is killed at the end of the test
// if still running.
func startFirstRun(t *testing.T, d *dbustest.Desktop, env ...string) *trayClient {
	t.Helper()
	c := &trayClient{done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childEnvFor("client"),
		"DISPLAY=:99",
		"WAYLAND_DISPLAY=",
		"DBUS_SESSION_BUS_ADDRESS="+d.Addr,
		"GORACE=exitcode=0",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = &c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
		dbustest.CheckRaces(t, c.stderr.String(), "ipsync/", "\n  main.")
		if t.Failed() {
			t.Logf("ipsync client stderr:\n%s", c.stderr.String())
		}
	})
	return c
}

// TestFirstRunTrayGivesWayToJoin: while the "not set up" tray shows, a
// join run from a terminal (no --start) writes the config; once join is
// done, the first-run tray starts the client in its place and ends: one
// icon, never two, never none. Without a first-run tray the same join
// starts nothing (TestInviteJoinFetch).
func TestFirstRunTrayGivesWayToJoin(t *testing.T) {
	d := dbustest.StartDesktop(t)
	et := newEnrolTest(t, false)
	inv := et.invite(t)
	started := filepath.Join(t.TempDir(), "started")
	c := startFirstRun(t, d, detachedLogEnv+"="+started) // HOME and XDG_CONFIG_HOME from newEnrolTest
	d.WaitItem(t).WaitToolTip(t, `"ipsync: not set up …"`, func(s string) bool { return strings.HasPrefix(s, "ipsync: not set up") })
	code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile)
	if code != exitOK {
		t.Fatalf("join = %d\n%s%s", code, out, errOut)
	}
	if len(et.started) != 0 {
		t.Errorf("a terminal join started %q itself; the first-run tray should", et.started)
	}
	if err := c.wait(t); err != nil {
		t.Fatalf("the first-run tray after join: %v, want it to end with status 0", err)
	}
	if got, _ := os.ReadFile(started); string(got) != `["client"]`+"\n" {
		t.Errorf("the first-run tray started %q, want one client", got)
	}
}

// TestSecondFirstRunEnds: a second "not set up" tray ends at once, saying
// the first is showing.
func TestSecondFirstRunEnds(t *testing.T) {
	d := dbustest.StartDesktop(t)
	home, cfgHome := t.TempDir(), t.TempDir()
	startFirstRun(t, d, "HOME="+home, "XDG_CONFIG_HOME="+cfgHome)
	d.WaitItem(t)
	second := startFirstRun(t, d, "HOME="+home, "XDG_CONFIG_HOME="+cfgHome)
	if err := second.wait(t); err != nil || !strings.Contains(second.stderr.String(), "already showing") {
		t.Errorf("second first-run tray: %v %q, want status 0 and \"already showing\"", err, second.stderr.String())
	}
}
