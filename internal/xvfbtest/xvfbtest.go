//go:build linux

// Package xvfbtest gives a test a private X display, a real Xvfb server of
// its own, and plays the person in front of it with xdotool: it waits for
// a window by its title, focuses it, types text and presses keys the way
// the keyboard does (XTEST events, not events sent to one window, which
// GTK ignores). It exists to test ipsync's desktop dialogs with the real
// zenity program; nothing is faked.
//
// Tests call Start, which needs the programs Xvfb, xdotool and zenity.
// Where one is missing the test is skipped with a line on standard error
// as well as in the test log naming the Debian packages to install, and
// with the environment variable CI set (as .ci/run does) the skip is a
// failure instead. There is no window manager: windows are focused with
// XSetInputFocus (xdotool windowfocus).
//
// Every wait and every program run ends after Timeout with a test
// failure. Functions taking a testing.TB call t.Fatal and so must be
// called from the test's goroutine. Start sets DISPLAY with t.Setenv, so
// tests using it cannot be parallel.
package xvfbtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipsync/internal/dbustest"
)

// Timeout bounds every wait and every program run in this package.
const Timeout = 20 * time.Second

// KeyDelay is the pause between two keys typed or pressed, about a fast
// typist's: programs get the keys one by one, not in a burst.
const KeyDelay = 40 * time.Millisecond

// poll is how often a wait for a window looks again.
const poll = 50 * time.Millisecond

// programs are the programs Start needs, with the Debian package of each.
var programs = []struct{ name, pkg string }{
	{"Xvfb", "xvfb"},
	{"xdotool", "xdotool"},
	{"zenity", "zenity"},
}

// Require skips t when Xvfb, xdotool or zenity is not installed, unless
// the environment variable CI is set: then the test fails, as it must run
// there.
func Require(t testing.TB) {
	t.Helper()
	var names, pkgs []string
	for _, p := range programs {
		if _, err := exec.LookPath(p.name); err != nil {
			names = append(names, p.name)
			pkgs = append(pkgs, p.pkg)
		}
	}
	if len(names) == 0 {
		return
	}
	missing := strings.Join(names, ", ")
	install := "apt-get install " + strings.Join(pkgs, " ")
	if ci := os.Getenv("CI"); ci != "" {
		t.Fatalf("%s not found but CI=%q: install the Debian/Ubuntu packages (%s)", missing, ci, install)
	}
	// Visible without -v too (go test shows a package's output when it
	// runs in the current directory or fails).
	fmt.Fprintf(os.Stderr, "SKIP %s: %s not installed (%s)\n", t.Name(), missing, install)
	t.Skipf("%s not installed (%s); skipping the real desktop dialog test. Set CI=true to make this a failure.", missing, install)
}

// Display is a running Xvfb server. Create it with Start.
type Display struct {
	// Name is the display's name, such as ":3", which Start also puts in
	// DISPLAY.
	Name string
}

// Window is a window shown on the display.
type Window struct {
	// ID is the X window id, as xdotool prints it. The X server reuses
	// ids: a window shown later by another process may have the same one.
	ID string
	// PID is the process that shows the window (its _NET_WM_PID), 0 when
	// the program does not say.
	PID int
}

// Start calls Require, starts Xvfb on a free display (-displayfd), with no
// TCP listener, sets DISPLAY to it with t.Setenv and waits until it
// answers. When t ends it stops that Xvfb process, by its PID; if t
// failed, it first saves a screenshot of the display in t.ArtifactDir when
// the test runs with go test -artifacts DIR and ImageMagick's import is
// installed.
func Start(t testing.TB) *Display {
	t.Helper()
	Require(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("pipe for Xvfb -displayfd: %v", err)
	}
	defer r.Close()
	var log dbustest.Buffer // Xvfb's output, read by failure messages
	// The server runs until t ends: then ctx is canceled, Xvfb gets
	// SIGTERM (it removes its lock file and socket) and, if it has not
	// exited a few seconds later, SIGKILL.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "Xvfb", "-displayfd", "3", "-nolisten", "tcp", "-noreset", "-screen", "0", "1280x800x24")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.ExtraFiles = []*os.File{w} // descriptor 3 in Xvfb
	cmd.Stdout, cmd.Stderr = &log, &log
	// Xvfb ends with the test binary, even when that is killed (go test
	// -timeout) and no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	w.Close()
	if err != nil {
		cancel()
		t.Fatalf("start Xvfb: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(Timeout):
			t.Errorf("Xvfb (pid %d) did not exit after SIGKILL", cmd.Process.Pid)
		}
	})

	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	var num string
	select {
	case num = <-line:
	case <-exited:
		t.Fatalf("Xvfb exited before it chose a display:\n%s", log.String())
	case <-timer.C:
		t.Fatalf("Xvfb did not print its display number within %v:\n%s", Timeout, log.String())
	}
	if _, err := strconv.Atoi(num); err != nil {
		t.Fatalf("Xvfb -displayfd printed %q, not a display number:\n%s", num, log.String())
	}
	d := &Display{Name: ":" + num}
	t.Setenv("DISPLAY", d.Name)

	// The server answers once xdotool can open the display.
	deadline := time.Now().Add(Timeout)
	for {
		_, err := d.run("getdisplaygeometry")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("display %s did not answer within %v: %v\n%s", d.Name, Timeout, err, log.String())
		}
		select {
		case <-exited:
			t.Fatalf("Xvfb exited:\n%s", log.String())
		case <-time.After(poll):
		}
	}
	// Registered last, so it runs first: the display is still there.
	t.Cleanup(func() {
		if t.Failed() {
			d.screenshotAtFailure(t)
		}
	})
	return d
}

// PrivateHome keeps the desktop programs a test starts away from the
// user's session: it sets HOME and the XDG base directories to a new
// temporary directory, which it returns (GTK writes recent files there),
// GSETTINGS_BACKEND=keyfile (settings are read from and saved to
// $XDG_CONFIG_HOME/glib-2.0/settings/keyfile, not dconf),
// DBUS_SESSION_BUS_ADDRESS to "" (GLib then neither uses a session bus
// nor launches one) and NO_AT_BRIDGE=1 (no accessibility bus). Tests that
// set up HOME or a private bus themselves need not call it.
func PrivateHome(t testing.TB) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for v, dir := range map[string]string{
		"XDG_CONFIG_HOME": ".config",
		"XDG_DATA_HOME":   ".local/share",
		"XDG_STATE_HOME":  ".local/state",
		"XDG_CACHE_HOME":  ".cache",
	} {
		t.Setenv(v, filepath.Join(home, dir))
	}
	t.Setenv("GSETTINGS_BACKEND", "keyfile")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("NO_AT_BRIDGE", "1")
	return home
}

// screenshotAtFailure saves the display in t.ArtifactDir, which outlives
// the test only with go test -artifacts.
func (d *Display) screenshotAtFailure(t testing.TB) {
	if f := flag.Lookup("test.artifacts"); f == nil || f.Value.String() != "true" {
		t.Logf("for a screenshot of display %s at the failure, run go test with -artifacts DIR (needs ImageMagick's import)", d.Name)
		return
	}
	if _, err := exec.LookPath("import"); err != nil {
		t.Logf("no screenshot of display %s: ImageMagick's import is not installed (apt-get install imagemagick)", d.Name)
		return
	}
	p := filepath.Join(t.ArtifactDir(), "display.png")
	if err := d.Screenshot(p); err != nil {
		t.Logf("screenshot of display %s: %v", d.Name, err)
		return
	}
	t.Logf("screenshot of display %s at the failure: %s", d.Name, p)
}

// WaitWindow waits until a visible window titled exactly title is shown
// that is none of the windows in old (the same id and process), and
// returns it. To see a dialog shown again, pass the window it had before.
func (d *Display) WaitWindow(t testing.TB, title string, old ...Window) Window {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		wins, err := d.find(title)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wins {
			if !contains(old, w) {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new window titled %q on %s within %v (shown: %s)", title, d.Name, Timeout, d.describe())
		}
		time.Sleep(poll) // polling an outside program, bounded by deadline
	}
}

// WaitGone waits until w is no longer shown.
func (d *Display) WaitGone(t testing.TB, w Window) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		wins, err := d.visible()
		if err != nil {
			t.Fatal(err)
		}
		if !contains(wins, w) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("window %s (pid %d) still shown on %s after %v", w.ID, w.PID, d.Name, Timeout)
		}
		time.Sleep(poll) // polling an outside program, bounded by deadline
	}
}

// Focus gives w the keyboard focus and waits until it has it.
func (d *Display) Focus(t testing.TB, w Window) {
	t.Helper()
	if _, err := d.run("windowfocus", "--sync", w.ID); err != nil {
		t.Fatalf("focus window %s: %v", w.ID, err)
	}
}

// Type types text on the keyboard, one key every KeyDelay, into the
// focused window. It does not log text: it may be a secret.
func (d *Display) Type(t testing.TB, text string) {
	t.Helper()
	if _, err := d.run("type", "--delay", strconv.Itoa(int(KeyDelay/time.Millisecond)), "--", text); err != nil {
		t.Fatalf("type %d characters: %v", len([]rune(text)), err)
	}
}

// Key presses and releases the keys, one after the other, named as X
// keysyms ("Return", "Escape", "ctrl+a").
func (d *Display) Key(t testing.TB, keys ...string) {
	t.Helper()
	args := append([]string{"key", "--delay", strconv.Itoa(int(KeyDelay / time.Millisecond))}, keys...)
	if _, err := d.run(args...); err != nil {
		t.Fatalf("press %s: %v", strings.Join(keys, " "), err)
	}
}

// Screenshot writes a PNG of the whole display to path with ImageMagick's
// import, which must be installed (Debian package imagemagick).
func (d *Display) Screenshot(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "import", "-display", d.Name, "-window", "root", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("import -window root: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// find returns the visible windows titled exactly title.
func (d *Display) find(title string) ([]Window, error) {
	ids, err := d.search("^" + regexp.QuoteMeta(title) + "$")
	if err != nil {
		return nil, err
	}
	var wins []Window
	for _, id := range ids {
		// The process first, then the name: a window that closes between
		// the two (its id may be reused at once) is not taken for a new
		// one with the old process.
		w, ok := d.window(id)
		if !ok {
			continue
		}
		// The search is a POSIX regular expression; compare exactly.
		name, err := d.run("getwindowname", id)
		if err != nil || strings.TrimSuffix(name, "\n") != title {
			continue // gone meanwhile, or a near match
		}
		wins = append(wins, w)
	}
	return wins, nil
}

// visible returns every visible window.
func (d *Display) visible() ([]Window, error) {
	ids, err := d.search("")
	if err != nil {
		return nil, err
	}
	wins := make([]Window, 0, len(ids))
	for _, id := range ids {
		if w, ok := d.window(id); ok {
			wins = append(wins, w)
		}
	}
	return wins, nil
}

// search runs xdotool search --onlyvisible --name re and returns the ids.
func (d *Display) search(re string) ([]string, error) {
	out, err := d.run("search", "--onlyvisible", "--name", re)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 && strings.TrimSpace(out) == "" {
		return nil, nil // xdotool search found nothing
	}
	if err != nil {
		return nil, fmt.Errorf("list the windows on %s: %w", d.Name, err)
	}
	return strings.Fields(out), nil
}

// window reads the process of window id (PID 0 when the program does not
// say); ok is false when the window is gone.
func (d *Display) window(id string) (w Window, ok bool) {
	out, err := d.run("getwindowpid", id)
	if err != nil {
		if strings.Contains(err.Error(), "BadWindow") {
			return Window{}, false
		}
		return Window{ID: id}, true // no _NET_WM_PID
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		pid = 0
	}
	return Window{ID: id, PID: pid}, true
}

// describe lists the visible windows for a failure message.
func (d *Display) describe() string {
	wins, err := d.visible()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, w := range wins {
		name, _ := d.run("getwindowname", w.ID)
		if name = strings.TrimSpace(name); name != "" {
			parts = append(parts, fmt.Sprintf("%q (pid %d)", name, w.PID))
		}
	}
	if len(parts) == 0 {
		return "no titled window"
	}
	return strings.Join(parts, ", ")
}

// run runs xdotool on this display and returns its standard output.
func (d *Display) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "xdotool", args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+d.Name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 {
		return string(out), fmt.Errorf("xdotool %s: %w: %s", args[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err != nil {
		return string(out), fmt.Errorf("xdotool %s: %w", args[0], err)
	}
	return string(out), nil
}

func contains(wins []Window, w Window) bool {
	for _, o := range wins {
		if o == w {
			return true
		}
	}
	return false
}
