package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ipsync/internal/xvfbtest"
)

// cliResult is what runCLI returned.
type cliResult struct {
	code        int
	out, errOut string
}

// desktopJoin runs `ipsync join FILE` in the background as started from
// the desktop (no --passphrase-file), in this process, with the real
// zenity on a private Xvfb display that the test answers with the
// keyboard. It returns the test setup, the display, the title of the
// passphrase dialog and join's result, later.
func desktopJoin(t *testing.T) (*enrolTest, *xvfbtest.Display, string, <-chan cliResult) {
	t.Helper()
	xvfbtest.Require(t)          // before the setup, which takes a while
	et := newEnrolTest(t, false) // also a temporary HOME and no session bus
	inv := et.invite(t)
	startedFromDesktop = func() bool { return true } // restored by newEnrolTest
	res := make(chan cliResult, 1)
	done := make(chan struct{})
	// Registered before the display's cleanup, so it runs after it: with
	// Xvfb gone, a dialog still open fails at once and join returns before
	// newEnrolTest puts the seams back.
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(xvfbtest.Timeout):
			t.Errorf("join did not return within %v after the display was closed", xvfbtest.Timeout)
		}
	})
	d := xvfbtest.Start(t)
	go func() {
		defer close(done)
		code, out, errOut := runCLI(t, "join", inv)
		res <- cliResult{code, out, errOut}
	}()
	return et, d, "ipsync: join " + filepath.Base(inv), res
}

// awaitJoin waits for join's result.
func awaitJoin(t *testing.T, res <-chan cliResult) cliResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(time.Minute):
		t.Fatal("join did not return within a minute")
	}
	return cliResult{}
}

// shownWith fails t unless w's process, the dialog program, was started
// with want among its arguments (the dialog's text is not readable from
// the X server).
func shownWith(t *testing.T, w xvfbtest.Window, want ...string) {
	t.Helper()
	if w.PID <= 0 {
		t.Fatalf("window %s has no process id", w.ID)
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(w.PID) + "/cmdline")
	if err != nil {
		t.Fatalf("arguments of the dialog's process: %v", err)
	}
	args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return
		}
	}
	t.Errorf("the dialog was started with %q, want %q among them", args, want)
}

// TestJoinDesktopDialogs: double-clicked, join asks for the passphrase in
// a dialog; after a wrong one the dialog comes again saying so, the right
// one joins, and a message says the PC is set up while the tray starts.
func TestJoinDesktopDialogs(t *testing.T) {
	et, d, title, res := desktopJoin(t)

	first := d.WaitWindow(t, title)
	shownWith(t, first, "--text", "Passphrase of office-pc3.ipsync")
	shownWith(t, first, "--hide-text")
	d.Focus(t, first)
	d.Type(t, "wrong horse battery")
	d.Key(t, "Return")

	again := d.WaitWindow(t, title, first)
	shownWith(t, again, "--text", "Wrong passphrase. Try again")
	d.WaitGone(t, first)
	d.Focus(t, again)
	d.Type(t, "correct horse battery")
	d.Key(t, "Return")

	info := d.WaitWindow(t, "ipsync")
	shownWith(t, info, "--info")
	shownWith(t, info, "--text", "This PC is set up. The ipsync icon in the tray shows the server's address.")
	d.Focus(t, info)
	d.Key(t, "Return")

	r := awaitJoin(t, res)
	if r.code != exitOK {
		t.Fatalf("join = %d\n%s%s", r.code, r.out, r.errOut)
	}
	for _, want := range []string{"wrote " + filepath.Join(et.cfgDir, "config.yaml"), "PASS imap 127.0.0.1", "started the tray", `joined "office"`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("join output lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out+r.errOut, "horse") {
		t.Errorf("join printed a passphrase:\n%s%s", r.out, r.errOut)
	}
	if _, err := os.Stat(filepath.Join(et.cfgDir, "config.yaml")); err != nil {
		t.Errorf("no config written: %v", err)
	}
	if len(et.started) != 1 || !slices.Equal(et.started[0][1:], []string{"client"}) {
		t.Errorf("join from the desktop started %q, want one `client`", et.started)
	}
	d.WaitGone(t, info)
}

// TestJoinDesktopCancel: Escape on the passphrase dialog ends join as a
// usage error that writes nothing and shows no error dialog.
func TestJoinDesktopCancel(t *testing.T) {
	et, d, title, res := desktopJoin(t)
	w := d.WaitWindow(t, title)
	d.Focus(t, w)
	d.Type(t, "correct horse")
	d.Key(t, "Escape")

	r := awaitJoin(t, res)
	if r.code != exitUsage || !strings.Contains(r.errOut, "canceled: nothing was written") {
		t.Errorf("join canceled = %d %q, want %d and %q", r.code, r.errOut, exitUsage, "canceled: nothing was written")
	}
	if strings.Contains(r.out+r.errOut, "horse") {
		t.Errorf("join printed the typed text:\n%s%s", r.out, r.errOut)
	}
	if _, err := os.Stat(et.cfgDir); err == nil {
		t.Errorf("join wrote into %s after a cancel:\n%s", et.cfgDir, r.out)
	}
	if _, err := os.Stat(filepath.Join(et.home, ".config", "autostart")); err == nil {
		t.Error("join turned on start at login after a cancel")
	}
	if len(et.started) != 0 {
		t.Errorf("join started %q after a cancel", et.started)
	}
	d.WaitGone(t, w)
}
