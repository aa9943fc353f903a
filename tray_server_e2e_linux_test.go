package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipsync/internal/dbustest"
)

// TestServerTrayOverDBus runs the real `ipsync server` with its tray on a
// private session bus. Its only address source is a loopback stand-in that
// answers with a documentation address, which production validation
// rejects: the tray shows the last published address and that the address
// check fails. "Pause publishing" is clicked over dbusmenu, shows in the
// tooltip and is kept in the state file; clicking it again resumes.
func TestServerTrayOverDBus(t *testing.T) {
	d := dbustest.StartDesktop(t)
	e := newE2E(t)
	publishIP(t, e, "8.8.4.4")

	echo := startEcho(t, "203.0.113.9")
	appendFile(t, e.serverCfg, "publisher:\n  sources: ["+echo.HTTPSURL()+", "+echo.DNSURL()+"]\n  agree: 1\n  ipv6: off\n")

	c := startTrayRole(t, d.Addr, "server", e.serverCfg)
	item := d.WaitItem(t)
	item.WaitToolTip(t, `"office: 8.8.4.4 · … address check failing …"`, func(tip string) bool {
		return strings.HasPrefix(tip, "office: 8.8.4.4") && strings.Contains(tip, "address check failing")
	})
	item.WaitEntry(t, "Publish now", "enabled", func(e dbustest.MenuEntry) bool {
		return e.Props["enabled"].Value() != false
	})

	item.Click(t, "Pause publishing")
	item.WaitToolTip(t, `"office: publishing paused …"`, func(tip string) bool {
		return strings.HasPrefix(tip, "office: publishing paused")
	})
	item.WaitEntry(t, "Publish now", "disabled while paused", func(e dbustest.MenuEntry) bool {
		return e.Props["enabled"].Value() == false
	})
	if !waitServerPaused(t, e, true) {
		t.Error("state file does not record the pause")
	}

	item.Click(t, "Pause publishing")
	item.WaitToolTip(t, "a tooltip that is not paused", func(tip string) bool {
		return strings.HasPrefix(tip, "office: 8.8.4.4")
	})
	if waitServerPaused(t, e, false) {
		t.Error("state file still records the pause after resuming")
	}

	item.ClickExit(t, "Quit")
	if err := c.wait(t); err != nil {
		t.Fatalf("ipsync server after Quit: %v, want exit status 0", err)
	}
}

// waitServerPaused returns the pause switch of the server's state file once
// it is want, or as it is after dbustest.Timeout. The publisher saves the
// switch in the background (SetPaused must not block the tray), so the
// file may lag the tooltip by a save; a child process gives no event to
// wait for, so the file is read every 10ms.
func waitServerPaused(t *testing.T, e *e2e, want bool) bool {
	t.Helper()
	deadline := time.NewTimer(dbustest.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got := serverPaused(t, e)
		if got == want {
			return got
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return got
		}
	}
}

// serverPaused reads the pause switch from the server's state file.
func serverPaused(t *testing.T, e *e2e) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(e.serverCfg), "state-server", "server-office.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Paused bool `json:"paused"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("state file: %v\n%s", err, data)
	}
	return st.Paused
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
