package tray

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ipsync/health"
	"ipsync/internal/dbustest"
)

// These tests run the real tray (fyne.io/systray and beeep) in a child
// process against a private dbus-daemon, with the test playing the desktop:
// it owns org.kde.StatusNotifierWatcher (the tray host) and
// org.freedesktop.Notifications (the notification daemon).
//
// The child is this test binary started again with childEnv set; TestMain
// sends it to runChild. It reads one JSON Status per line on stdin (the
// first before the tray starts), writes one line per user action on stdout,
// and quits at the end of stdin.

const childEnv = "IPSYNC_TRAY_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild runs the tray on the main goroutine, as main does.
func runChild() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stdin := bufio.NewScanner(os.Stdin)
	var out sync.Mutex
	say := func(format string, a ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	readStatus := func() (health.Status, bool) {
		if !stdin.Scan() {
			return health.Status{}, false
		}
		var s health.Status
		if err := json.Unmarshal(stdin.Bytes(), &s); err != nil {
			log.Error("bad status line", "err", err)
			return health.Status{}, false
		}
		return s, true
	}
	first, ok := readStatus()
	if !ok {
		return 2
	}
	t := New(Options{
		Role:       RoleClient,
		Name:       "office",
		ConfigPath: os.Getenv("IPSYNC_TEST_CONFIG"),
		Actions: Actions{
			FetchNow: func() { say("action fetch") },
			Quit:     func() { say("action quit") },
		},
		Clipboard: func(s string) error { say("copied %s", s); return nil },
		OpenFile:  func(p string) error { say("opened %s", p); return nil },
		Logger:    log,
	})
	t.SetStatus(first)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for {
			s, ok := readStatus()
			if !ok {
				return
			}
			t.SetStatus(s)
		}
	}()
	if err := t.Run(ctx); err != nil {
		log.Error("tray run failed", "err", err)
		return 1
	}
	say("exit")
	return 0
}

// child is the tray process.
type child struct {
	t          *testing.T
	stdin      io.WriteCloser
	lines      chan string
	cmd        *exec.Cmd
	configHome string // the child's XDG_CONFIG_HOME
}

func startChild(t *testing.T, busAddr string, first health.Status) *child {
	t.Helper()
	configHome := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"DBUS_SESSION_BUS_ADDRESS="+busAddr,
		"XDG_CONFIG_HOME="+configHome,
		"IPSYNC_TEST_CONFIG=/etc/ipsync/config.yaml",
		// Under -race, race reports must not change the exit status:
		// dbustest.CheckRaces sorts them (see there).
		"GORACE=exitcode=0",
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr dbustest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the tray child: %v", err)
	}
	c := &child{t: t, stdin: stdin, lines: make(chan string, 16), cmd: cmd, configHome: configHome}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("tray child exit: %v", err)
			}
		case <-time.After(dbustest.Timeout):
			_ = cmd.Process.Kill()
			t.Errorf("tray child did not exit when its stdin closed")
			<-done
		}
		dbustest.CheckRaces(t, stderr.String(), "ipsync/tray.")
		if t.Failed() {
			t.Logf("tray child stderr:\n%s", stderr.String())
		}
	})
	c.send(first)
	return c
}

func (c *child) send(s health.Status) {
	c.t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("send status to the tray child: %v", err)
	}
}

// expect waits for the child to print want.
func (c *child) expect(want string) {
	c.t.Helper()
	timeout := time.After(dbustest.Timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("tray child ended before printing %q", want)
			}
			if line == want {
				return
			}
			c.t.Logf("tray child: %s", line)
		case <-timeout:
			c.t.Fatalf("timed out waiting for the tray child to print %q", want)
		}
	}
}

// waitToolTip waits until the item's ToolTip is want.
func waitToolTip(t *testing.T, item *dbustest.Item, want string) {
	t.Helper()
	item.WaitToolTip(t, fmt.Sprintf("%q", want), func(got string) bool { return got == want })
}

func TestSystrayOverDBus(t *testing.T) {
	d := dbustest.StartDesktop(t)
	issued := time.Now().Add(-3 * time.Minute)
	c := startChild(t, d.Addr, health.Status{State: health.Current, IPv4: addrA, IssuedAt: issued, LastCheck: time.Now(), Mode: "IDLE (push)"})
	item := d.WaitItem(t)

	waitToolTip(t, item, "office: 203.0.113.9 · updated 3 min ago")

	for _, prop := range []string{"Id", "Title"} {
		if got := item.Property(t, prop).Value(); got != "ipsync-client" {
			t.Errorf("%s = %v, want ipsync-client", prop, got)
		}
	}
	icons := item.IconPixmap(t)
	if len(icons) != 1 || icons[0].W != 64 || icons[0].H != 64 || len(icons[0].Pix) != 64*64*4 {
		t.Fatalf("IconPixmap = %d images, want one 64×64 ARGB image", len(icons))
	}
	if mid := icons[0].Pix[(32*64+32)*4]; mid != 0xff {
		t.Errorf("IconPixmap centre alpha = %d, want opaque", mid)
	}

	item.Click(t, "Fetch now")
	c.expect("action fetch")
	item.Click(t, "Copy address")
	c.expect("copied 203.0.113.9")
	item.Click(t, "Open config")
	c.expect("opened /etc/ipsync/config.yaml")

	c.send(health.Status{State: health.Current, IPv4: addrB, Previous: addrA, IssuedAt: time.Now(), LastCheck: time.Now()})
	waitToolTip(t, item, "office: 198.51.100.7 · updated just now")
	if got := item.Entry(t, "Previous: 203.0.113.9").Props["visible"].Value(); got != true {
		t.Errorf("Previous entry visible = %v, want true", got)
	}

	// Start at login writes the XDG entry and checks the box.
	if got := item.Entry(t, "Start at login").Props["toggle-state"].Value(); got != int32(0) {
		t.Errorf("Start at login toggle-state = %v, want 0", got)
	}
	item.Click(t, "Start at login")
	item.WaitEntry(t, "Start at login", "toggle-state 1 (checked)", func(e dbustest.MenuEntry) bool {
		return e.Props["toggle-state"].Value() == int32(1)
	})
	desktopFile := filepath.Join(c.configHome, "autostart", "ipsync-client.desktop")
	if b, err := os.ReadFile(desktopFile); err != nil || !strings.Contains(string(b), " client --config /etc/ipsync/config.yaml\n") {
		t.Errorf("autostart entry %s = %q, %v; want one running client --config /etc/ipsync/config.yaml", desktopFile, b, err)
	}

	item.ClickExit(t, "Quit")
	c.expect("action quit")
	c.expect("exit")
}

func TestNotifyOverDBus(t *testing.T) {
	d := dbustest.StartDesktop(t)
	c := startChild(t, d.Addr, health.Status{State: health.Current, IPv4: addrA, IssuedAt: time.Now()})
	d.WaitItem(t)

	c.send(health.Status{State: health.Current, IPv4: addrB, IssuedAt: time.Now()})
	got := d.Notifications.Next(t)
	if got.Summary != "office has a new address" || got.Body != "203.0.113.9 → 198.51.100.7" {
		t.Errorf("Notify(summary %q, body %q), want %q, %q", got.Summary, got.Body, "office has a new address", "203.0.113.9 → 198.51.100.7")
	}
	if got.App != "ipsync" {
		t.Errorf("Notify app_name = %q, want ipsync", got.App)
	}
	if _, ok := got.Hints["image-data"]; !ok {
		t.Errorf("Notify hints = %v, want image-data (the icon)", got.Hints)
	}

	// The same address again, then an error as a marker: notifications
	// are sent in order, so anything between the two is a duplicate.
	c.send(health.Status{State: health.Current, IPv4: addrB, IssuedAt: time.Now()})
	c.send(health.Status{State: health.Error, IPv4: addrB, Err: "marker"})
	if got := d.Notifications.Next(t); got.Body != "marker" {
		t.Errorf("after the change, Notify(%q, %q), want only the marker error", got.Summary, got.Body)
	}
}

func TestAvailable(t *testing.T) {
	addr := dbustest.StartBus(t)
	desktop := dbustest.StartDesktop(t) // a bus with a tray host
	// A dbus-launch that leaves a mark, to prove Available never starts one.
	bin := t.TempDir()
	mark := filepath.Join(bin, "launched")
	script := "#!/bin/sh\ntouch " + mark + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "dbus-launch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	runUserBus := fmt.Sprintf("/run/user/%d/bus", os.Getuid())

	tests := []struct {
		name, display, wayland, bus string
		ok                          bool
		why                         string
	}{
		{"no display", "", "", addr, false, "no display (DISPLAY/WAYLAND_DISPLAY unset): running headless"},
		{"x11, bus, no tray host", ":0", "", addr, true, "no system tray host on this desktop yet"},
		{"x11 and tray host", ":0", "", desktop.Addr, true, ""},
		{"wayland and tray host", "", "wayland-0", desktop.Addr, true, ""},
		{"no bus address", ":0", "", "", false, "no DBus session bus"},
		{"dead bus", ":0", "", "unix:path=" + filepath.Join(t.TempDir(), "nobus"), false, "no DBus session bus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(runUserBus); err == nil && tt.bus == "" {
				t.Skipf("%s exists: without DBUS_SESSION_BUS_ADDRESS that bus is found", runUserBus)
			}
			t.Setenv("DISPLAY", tt.display)
			t.Setenv("WAYLAND_DISPLAY", tt.wayland)
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", tt.bus)
			ok, why := Available(context.Background())
			if ok != tt.ok || !strings.HasPrefix(why, tt.why) || (tt.why == "" && why != "") {
				t.Errorf("Available() = %v, %q; want %v, %q…", ok, why, tt.ok, tt.why)
			}
			if tt.ok == false && tt.why != "" && !strings.HasSuffix(why, "running headless") {
				t.Errorf("Available() reason %q does not say it runs headless", why)
			}
		})
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("Available() ran dbus-launch")
	}
}
