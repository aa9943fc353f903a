package tray

import (
	"strings"
	"testing"

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
