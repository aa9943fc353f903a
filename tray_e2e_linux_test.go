package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"ipsync/internal/dbustest"
)

// TestClientTrayOverDBus runs the real `ipsync client` (this test binary,
// sent to realMain by TestMain) against the loopback mail server, with the
// test playing the desktop on a private session bus: the tray host
// (org.kde.StatusNotifierWatcher) and the notification daemon
// (org.freedesktop.Notifications). The client polls once an hour and never
// IDLEs, so the only way it can see the second address is the user
// clicking "Fetch now".
func TestClientTrayOverDBus(t *testing.T) {
	d := dbustest.StartDesktop(t)
	e := newE2E(t)
	publishIP(t, e, "8.8.4.4")
	appendFile(t, e.clientCfg, "fetcher:\n  idle: off\n  poll_every: 1h\n")

	c := startTrayRole(t, d.Addr, "client", e.clientCfg)
	item := d.WaitItem(t)

	// The first fetch happens at start.
	tipA := item.WaitToolTip(t, `"office: 8.8.4.4 · updated …" (fetched)`, fetched("8.8.4.4"))
	if !strings.HasPrefix(tipA, "office: 8.8.4.4 · updated ") {
		t.Errorf("ToolTip = %q, want office: 8.8.4.4 · updated …", tipA)
	}
	icons := item.IconPixmap(t)
	if len(icons) == 0 || icons[0].W <= 0 || icons[0].H <= 0 || len(icons[0].Pix) != int(icons[0].W*icons[0].H)*4 {
		t.Fatalf("IconPixmap = %d images, want a non-empty ARGB image", len(icons))
	}
	// The tooltip is drawn before the menu labels: wait for the fetch to
	// be over in the menu too, and check the watch mode it reports.
	item.WaitLayout(t, `"Fetch now" enabled and a status line saying "polling every 1h"`, func(m []dbustest.MenuEntry) bool {
		return hasEntry(m, func(l string) bool { return l == "Fetch now" }) &&
			hasEntry(m, func(l string) bool { return strings.HasSuffix(l, " · polling every 1h") })
	})

	publishIP(t, e, "8.8.8.8")
	// No push (IDLE is off) and the next poll is an hour away: the client
	// cannot have seen 8.8.8.8.
	if got := item.ToolTip(t); !strings.HasPrefix(got, "office: 8.8.4.4 ") {
		t.Errorf("ToolTip before Fetch now = %q, want it still on 8.8.4.4", got)
	}
	// The first address is the baseline, not news (tray.tracker): no
	// notification so far.
	if got := d.Notifications.All(); len(got) != 0 {
		t.Errorf("Notify calls before the change = %+v, want none", got)
	}

	item.Click(t, "Fetch now")
	item.WaitToolTip(t, `"office: 8.8.8.8 · updated …" (fetched)`, fetched("8.8.8.8"))
	item.WaitEntry(t, "Previous: 8.8.4.4", "visible", func(e dbustest.MenuEntry) bool {
		return e.Props["visible"].Value() != false
	})

	n := d.Notifications.Next(t)
	if n.Summary != "office has a new address" || n.Body != "8.8.4.4 → 8.8.8.8" {
		t.Errorf("Notify(summary %q, body %q), want %q, %q", n.Summary, n.Body, "office has a new address", "8.8.4.4 → 8.8.8.8")
	}
	if n.App != "ipsync" {
		t.Errorf("Notify app_name = %q, want ipsync", n.App)
	}

	item.ClickExit(t, "Quit")
	if err := c.wait(t); err != nil {
		t.Fatalf("ipsync client after Quit: %v, want exit status 0", err)
	}
	// The client has exited, so every Notify it made has been answered
	// (beeep waits for the reply) and recorded.
	if got := d.Notifications.All(); len(got) != 1 {
		t.Errorf("%d Notify calls in all, want exactly 1 (the change):", len(got))
		for _, n := range got {
			t.Logf("  Notify(summary %q, body %q)", n.Summary, n.Body)
		}
	}
}

// fetched accepts the client tooltip of a current address addr: not
// "checking…" any more.
func fetched(addr string) func(string) bool {
	return func(tip string) bool {
		return strings.HasPrefix(tip, "office: "+addr+" · updated ") && !strings.HasSuffix(tip, "checking…")
	}
}

func hasEntry(m []dbustest.MenuEntry, ok func(label string) bool) bool {
	for _, e := range m {
		if ok(e.Label()) {
			return true
		}
	}
	return false
}

func publishIP(t *testing.T, e *e2e, ip string) {
	t.Helper()
	if code, out, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", ip); code != exitOK {
		t.Fatalf("publish --ip %s = %d, stdout %q, stderr %q", ip, code, out, errOut)
	}
}

// trayClient is a running `ipsync client` child process.
type trayClient struct {
	stderr dbustest.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, set before done is closed
}

// startTrayRole starts `ipsync ROLE --config cfg` with a display and the
// private session bus at busAddr. When t ends, a child still running is
// killed, race reports in its stderr are checked, and its stderr is logged
// if t failed.
func startTrayRole(t *testing.T, busAddr, role, cfg string) *trayClient {
	t.Helper()
	c := &trayClient{done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		childEnvFor(role, "--config", cfg),
		// tray.Available wants a display; on Linux the tray itself is
		// only DBus, so no X server is needed.
		"DISPLAY=:99",
		"WAYLAND_DISPLAY=",
		"DBUS_SESSION_BUS_ADDRESS="+busAddr,
		"XDG_CONFIG_HOME="+t.TempDir(),
		// Under -race, race reports must not change the exit status:
		// dbustest.CheckRaces sorts them.
		"GORACE=exitcode=0",
	)
	cmd.Stderr = &c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ipsync %s: %v", role, err)
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
		// Frames of package main show as "main.", the others as "ipsync/…".
		dbustest.CheckRaces(t, c.stderr.String(), "ipsync/", "\n  main.")
		if t.Failed() {
			t.Logf("ipsync %s stderr:\n%s", role, c.stderr.String())
		}
	})
	return c
}

// wait waits up to dbustest.Timeout for the client to exit and returns
// cmd.Wait's result.
func (c *trayClient) wait(t *testing.T) error {
	t.Helper()
	timeout := time.NewTimer(dbustest.Timeout)
	defer timeout.Stop()
	select {
	case <-c.done:
		return c.err
	case <-timeout.C:
		return errors.New("did not exit within " + dbustest.Timeout.String())
	}
}

// TestSecondClientEnds: with a client tray running on a config, a second
// `ipsync client` on the same config (the Start menu clicked while the tray
// runs from login) says so and ends with status 0 instead of showing a
// second icon; the first goes on.
func TestSecondClientEnds(t *testing.T) {
	d := dbustest.StartDesktop(t)
	e := newE2E(t)
	publishIP(t, e, "8.8.4.4")
	c := startTrayRole(t, d.Addr, "client", e.clientCfg)
	d.WaitItem(t).WaitToolTip(t, `"office: 8.8.4.4 · updated …" (fetched)`, fetched("8.8.4.4"))

	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCLI(t, "client", "--headless", "--config", e.clientCfg)
		done <- result{code, out, errOut}
	}()
	select {
	case r := <-done:
		if r.code != exitOK || !strings.Contains(r.errOut, "already running with "+e.clientCfg) {
			t.Errorf("second client = %d %q, want 0 and \"already running\"", r.code, r.errOut)
		}
	case <-time.After(dbustest.Timeout):
		t.Fatal("a second client on the same config is still running")
	}
	select {
	case <-c.done:
		t.Fatalf("the first client ended: %v", c.err)
	default:
	}
}
