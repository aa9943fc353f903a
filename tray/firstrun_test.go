package tray

import (
	"strings"
	"testing"
	"testing/synctest"

	"ipsync/health"
)

// TestViewNotSetUp: with no config the client's menu offers only the ways
// to set the PC up, whatever status arrives.
func TestViewNotSetUp(t *testing.T) {
	t.Parallel()
	e := env{role: RoleClient, name: "ipsync", autostartOK: true, notSetUp: true}
	for _, s := range []health.Status{{}, {State: health.Current, IPv4: addrA, IssuedAt: minutesAgo(3)}} {
		m := view(e, s, now)
		if m.Icon != "client-unknown" || !strings.Contains(m.Tooltip, "not set up") {
			t.Errorf("view(not set up, %v) icon, tooltip = %q, %q", s.State, m.Icon, m.Tooltip)
		}
		visible := map[itemID]string{}
		for _, it := range m.Items {
			if !it.Hidden && it.ID != itemSeparator {
				visible[it.ID] = it.Label
			}
		}
		for id, label := range map[itemID]string{
			itemAddress: "ipsync is not set up on this PC",
			itemStatus:  "Ask your administrator for an invitation (.ipsync file)",
			itemJoin:    "Join with an invitation…",
			itemGuide:   "Open the set-up guide",
			itemQuit:    "Quit",
		} {
			if visible[id] != label {
				t.Errorf("view(not set up) item %d = %q, want %q", id, visible[id], label)
			}
		}
		for _, id := range []itemID{itemFetch, itemCopy, itemCopy6, itemOpenConfig, itemError, itemPrevious} {
			if l, ok := visible[id]; ok {
				t.Errorf("view(not set up) shows %q", l)
			}
		}
		if !m.find(itemJoin).Enabled || !m.find(itemGuide).Enabled {
			t.Errorf("Join or guide disabled")
		}
	}
	// A set-up client has the same items, with Join and the guide hidden.
	m := view(env{role: RoleClient, name: "office", hasConfig: true}, health.Status{}, now)
	if !m.find(itemJoin).Hidden || !m.find(itemGuide).Hidden || m.find(itemFetch).Hidden {
		t.Errorf("set-up client menu: join hidden %v, guide hidden %v, fetch hidden %v", m.find(itemJoin).Hidden, m.find(itemGuide).Hidden, m.find(itemFetch).Hidden)
	}
}

// TestTrayTell: Tell shows a notification while the tray runs (the
// first-run menu uses it when no dialog can be shown), even with NoNotify,
// which silences only status changes; before Run it is only logged.
func TestTrayTell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		early := New(Options{Role: RoleClient, Notifier: &fakeNotifier{}})
		early.Tell("ipsync", "not shown: not running") // must not block or panic
		h := startHarness(t, Options{Role: RoleClient, NotSetUp: true, NoNotify: true}, health.Status{})
		h.tray.Tell("ipsync: cannot show a file chooser", "Install zenity, or run `ipsync join FILE` in a terminal.")
		synctest.Wait()
		got := h.notes.all()
		if len(got) != 1 || !strings.Contains(got[0], "cannot show a file chooser | Install zenity") {
			t.Errorf("notifications = %q, want the one told", got)
		}
		h.stop()
		h.tray.Tell("ipsync", "after Run") // only logged
		if got := h.notes.all(); len(got) != 1 {
			t.Errorf("a notice told after Run was shown: %q", got)
		}
	})
}
