package tray

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"ipsync/health"
)

var (
	now   = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	addrA = netip.MustParseAddr("203.0.113.9")
	addrB = netip.MustParseAddr("198.51.100.7")
	addr6 = netip.MustParseAddr("2001:db8::1")
)

func minutesAgo(m int) time.Time { return now.Add(-time.Duration(m) * time.Minute) }

// want is the part of a model a test checks; empty strings are not checked.
type want struct {
	icon    string
	tooltip string
	address string // itemAddress label
	status  string // itemStatus label
	errLine string // itemError label; "" = must be hidden
	action  string // Fetch now / Publish now label
	actOK   bool   // action enabled
	copyOK  bool   // Copy enabled
}

func TestViewClient(t *testing.T) {
	t.Parallel()
	e := env{role: RoleClient, name: "office", hasConfig: true, autostartOK: true}
	current := health.Status{State: health.Current, IPv4: addrA, IssuedAt: minutesAgo(3), LastCheck: minutesAgo(1), Mode: "IDLE (push)"}
	tests := []struct {
		name string
		s    health.Status
		want want
	}{
		{"unknown without address", health.Status{}, want{
			icon:    "client-unknown",
			tooltip: "office: no address yet — waiting for the first message",
			address: "office: no address yet",
			status:  "Not checked yet",
			action:  "Fetch now", actOK: true,
		}},
		{"unknown with last known address", health.Status{IPv4: addrA, IssuedAt: now.Add(-2 * time.Hour)}, want{
			icon:    "client-unknown",
			tooltip: "office: 203.0.113.9 · last known, updated 2 h ago",
			address: "office: 203.0.113.9",
			status:  "Not checked yet · message 2 h old",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"current", current, want{
			icon:    "client-current",
			tooltip: "office: 203.0.113.9 · updated 3 min ago",
			address: "office: 203.0.113.9",
			status:  "Checked 1 min ago · message 3 min old · IDLE (push)",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"current dual stack just issued", health.Status{State: health.Current, IPv4: addrA, IPv6: addr6, IssuedAt: now.Add(-10 * time.Second), LastCheck: now, Mode: "polling every 5m"}, want{
			icon:    "client-current",
			tooltip: "office: 203.0.113.9 / 2001:db8::1 · updated just now",
			address: "office: 203.0.113.9 / 2001:db8::1",
			status:  "Checked just now · message under a minute old · polling every 5m",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"current IPv6 only", health.Status{State: health.Current, IPv6: addr6, IssuedAt: now.Add(-50 * time.Hour)}, want{
			icon:    "client-current",
			tooltip: "office: 2001:db8::1 · updated 2 days ago",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"stale", health.Status{State: health.Stale, IPv4: addrA, IssuedAt: now.Add(-3 * time.Hour), LastCheck: minutesAgo(2)}, want{
			icon:    "client-stale",
			tooltip: "office: 203.0.113.9 · stale, updated 3 h ago",
			status:  "Checked 2 min ago · message 3 h old",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"unreachable", health.Status{State: health.Unreachable, IPv4: addrA, IssuedAt: minutesAgo(10), Err: "203.0.113.9:22 does not answer"}, want{
			icon:    "client-unreachable",
			tooltip: "office: 203.0.113.9 · unreachable, updated 10 min ago",
			errLine: "203.0.113.9:22 does not answer",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"error without address", health.Status{State: health.Error, Err: "mail login failed", LastCheck: minutesAgo(1)}, want{
			icon:    "client-error",
			tooltip: "office: mail login failed",
			address: "office: no address yet",
			errLine: "Error: mail login failed",
			action:  "Fetch now", actOK: true,
		}},
		{"error with address", health.Status{State: health.Error, IPv4: addrA, IssuedAt: minutesAgo(30), Err: "mail server unreachable"}, want{
			icon:    "client-error",
			tooltip: "office: 203.0.113.9 · updated 30 min ago — mail server unreachable",
			errLine: "Error: mail server unreachable",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"error without message", health.Status{State: health.Error}, want{
			icon:    "client-error",
			tooltip: "office: cannot read the mailbox",
			action:  "Fetch now", actOK: true,
		}},
		{"working", health.Status{State: health.Working, IPv4: addrA, IssuedAt: minutesAgo(5)}, want{
			icon:    "client-working",
			tooltip: "office: 203.0.113.9 · updated 5 min ago · checking…",
			action:  "Fetching…", actOK: false, copyOK: true,
		}},
		{"working without address", health.Status{State: health.Working}, want{
			icon:    "client-working",
			tooltip: "office: checking the mailbox…",
			action:  "Fetching…", actOK: false,
		}},
		{"status names the server", health.Status{State: health.Current, Name: "lab", IPv4: addrA}, want{
			icon:    "client-current",
			tooltip: "lab: 203.0.113.9",
			address: "lab: 203.0.113.9",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		// With a diagnosis (the mailbox holds messages this client cannot
		// accept), the address is only the last known one: never
		// presented as current, its age given, the reason shown.
		{"last known only, current", health.Status{State: health.Current, IPv4: addrA, IssuedAt: now.Add(-2 * time.Hour), LastCheck: minutesAgo(1), Mode: "IDLE (push)",
			LastKnownOnly: true, Err: "3 messages signed by another key", ErrKind: "problem"}, want{
			icon:    "client-stale",
			tooltip: "office: 203.0.113.9 · last known, 2 h old — 3 messages signed by another key",
			address: "office: 203.0.113.9 (last known)",
			status:  "Checked 1 min ago · last known, 2 h old · IDLE (push)",
			errLine: "3 messages signed by another key",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"last known only, stale", health.Status{State: health.Stale, IPv4: addrA, IPv6: addr6, IssuedAt: now.Add(-26 * time.Hour), LastCheck: minutesAgo(3),
			LastKnownOnly: true, Err: "1 message dated 11 min in the future (is this PC's clock right?)"}, want{
			icon:    "client-stale",
			tooltip: "office: 203.0.113.9 / 2001:db8::1 · last known, 26 h old — 1 message dated 11 min in the future (is this PC's clock right?)",
			address: "office: 203.0.113.9 / 2001:db8::1 (last known)",
			status:  "Checked 3 min ago · last known, 26 h old",
			errLine: "1 message dated 11 min in the future (is this PC's clock right?)",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"last known only, checking", health.Status{State: health.Working, IPv4: addrA, IssuedAt: minutesAgo(90), LastKnownOnly: true, Err: "messages are from office, this client is office-pc"}, want{
			icon:    "client-working",
			tooltip: "office: 203.0.113.9 · last known, 1 h old · checking… — messages are from office, this client is office-pc",
			status:  "Not checked yet · last known, 1 h old",
			errLine: "messages are from office, this client is office-pc",
			action:  "Fetching…", actOK: false, copyOK: true,
		}},
		{"last known only, long reason cut to fit", health.Status{State: health.Current, IPv4: addrA, IssuedAt: minutesAgo(5), LastKnownOnly: true, Err: "12 messages signed by another key (key id 3f2a0b1c; this client holds 9c01d2e3) since the last valid one, 40 min ago"}, want{
			icon:    "client-stale",
			tooltip: "office: 203.0.113.9 · last known, 5 min old — 12 messages signed by another key (key id 3f2a0b1c; this client holds 9c01d2e3) …",
			errLine: "12 messages signed by another key (key id 3f2a0b1c; this client holds 9c01d2e3) since the last vali…",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
		{"last known only without an address", health.Status{State: health.Unknown, LastKnownOnly: true, Err: "3 messages signed by another key"}, want{
			icon:    "client-unknown",
			tooltip: "office: no address yet — waiting for the first message",
			address: "office: no address yet",
			errLine: "3 messages signed by another key",
			action:  "Fetch now", actOK: true,
		}},
		{"future issue time", health.Status{State: health.Current, IPv4: addrA, IssuedAt: now.Add(time.Hour)}, want{
			tooltip: "office: 203.0.113.9 · updated just now",
			action:  "Fetch now", actOK: true, copyOK: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkModel(t, view(e, tt.s, now), itemFetch, tt.want)
		})
	}
}

func TestViewServer(t *testing.T) {
	t.Parallel()
	e := env{role: RoleServer, name: "office", hasConfig: true, autostartOK: true}
	tests := []struct {
		name string
		s    health.Status
		want want
	}{
		{"unknown", health.Status{}, want{
			icon:    "server-unknown",
			tooltip: "office: finding the public address…",
			address: "office: public address not known yet",
			status:  "Not checked yet · nothing sent yet",
			action:  "Publish now", actOK: true,
		}},
		{"current", health.Status{State: health.Current, IPv4: addrA, LastCheck: minutesAgo(2), LastSent: minutesAgo(14), Seq: 42, NextHeartbeat: now.Add(46 * time.Minute)}, want{
			icon:    "server-current",
			tooltip: "office: 203.0.113.9 · published 14 min ago",
			address: "office: 203.0.113.9",
			status:  "Checked 2 min ago · sent #42 14 min ago",
			action:  "Publish now", actOK: true, copyOK: true,
		}},
		{"current not yet sent", health.Status{State: health.Current, IPv4: addrA, IPv6: addr6, LastCheck: now}, want{
			icon:    "server-current",
			tooltip: "office: 203.0.113.9 / 2001:db8::1 · not published yet",
			status:  "Checked just now · nothing sent yet",
			action:  "Publish now", actOK: true, copyOK: true,
		}},
		{"stale", health.Status{State: health.Stale, IPv4: addrB, LastSent: now.Add(-2 * time.Hour), Seq: 7}, want{
			icon:    "server-stale",
			tooltip: "office: 198.51.100.7 · not delivered yet, last sent 2 h ago",
			status:  "Not checked yet · sent #7 2 h ago",
			action:  "Publish now", actOK: true, copyOK: true,
		}},
		{"unreachable", health.Status{State: health.Unreachable, Err: "only 1 of 2 sources answered"}, want{
			icon:    "server-unreachable",
			tooltip: "office: public address unknown — only 1 of 2 sources answered",
			errLine: "only 1 of 2 sources answered",
			action:  "Publish now", actOK: true,
		}},
		{"unreachable with address", health.Status{State: health.Unreachable, IPv4: addrA}, want{
			icon:    "server-unreachable",
			tooltip: "office: 203.0.113.9 · address check failing",
			action:  "Publish now", actOK: true, copyOK: true,
		}},
		{"error", health.Status{State: health.Error, IPv4: addrA, LastSent: minutesAgo(61), Err: "SMTP login failed"}, want{
			icon:    "server-error",
			tooltip: "office: 203.0.113.9 · published 1 h ago — SMTP login failed",
			errLine: "Error: SMTP login failed",
			action:  "Publish now", actOK: true, copyOK: true,
		}},
		{"error without address", health.Status{State: health.Error, Err: "SMTP login failed"}, want{
			icon:    "server-error",
			tooltip: "office: SMTP login failed",
			errLine: "Error: SMTP login failed",
			action:  "Publish now", actOK: true,
		}},
		{"working", health.Status{State: health.Working, IPv4: addrA}, want{
			icon:    "server-working",
			tooltip: "office: 203.0.113.9 · publishing…",
			action:  "Publishing…", actOK: false, copyOK: true,
		}},
		{"paused", health.Status{State: health.Current, IPv4: addrA, Paused: true, NextHeartbeat: now.Add(time.Hour)}, want{
			icon:    "server-paused",
			tooltip: "office: publishing paused · 203.0.113.9",
			action:  "Publish now", actOK: false, copyOK: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkModel(t, view(e, tt.s, now), itemPublish, tt.want)
		})
	}
}

func checkModel(t *testing.T, m model, action itemID, w want) {
	t.Helper()
	if w.icon != "" && m.Icon != w.icon {
		t.Errorf("view().Icon = %q, want %q", m.Icon, w.icon)
	}
	if w.tooltip != "" && m.Tooltip != w.tooltip {
		t.Errorf("view().Tooltip = %q, want %q", m.Tooltip, w.tooltip)
	}
	if got := m.find(itemAddress).Label; w.address != "" && got != w.address {
		t.Errorf("address label = %q, want %q", got, w.address)
	}
	if got := m.find(itemStatus).Label; w.status != "" && got != w.status {
		t.Errorf("status label = %q, want %q", got, w.status)
	}
	errItem := m.find(itemError)
	if w.errLine == "" && !errItem.Hidden {
		t.Errorf("error item shown with %q, want hidden", errItem.Label)
	}
	if w.errLine != "" && (errItem.Hidden || errItem.Label != w.errLine) {
		t.Errorf("error item = %q (hidden %v), want %q shown", errItem.Label, errItem.Hidden, w.errLine)
	}
	act := m.find(action)
	if act.Label != w.action || act.Enabled != w.actOK {
		t.Errorf("action item = %q enabled %v, want %q enabled %v", act.Label, act.Enabled, w.action, w.actOK)
	}
	if got := m.find(itemCopy).Enabled; got != w.copyOK {
		t.Errorf("copy enabled = %v, want %v", got, w.copyOK)
	}
	for _, it := range m.Items {
		switch it.ID {
		case itemAddress, itemPrevious, itemStatus, itemHeartbeat, itemError:
			if it.Enabled {
				t.Errorf("informative item %q is enabled, want disabled", it.Label)
			}
		}
	}
	if n := len([]rune(m.Tooltip)); n > maxTooltip {
		t.Errorf("tooltip is %d runes, want at most %d", n, maxTooltip)
	}
}

// TestViewMenu checks the fixed menu of each role: order, labels, check
// boxes, and the items that depend on the environment.
func TestViewMenu(t *testing.T) {
	t.Parallel()
	labels := func(m model) string {
		var parts []string
		for _, it := range m.Items {
			switch {
			case it.ID == itemSeparator:
				parts = append(parts, "--")
			case it.Hidden:
			default:
				l := it.Label
				if it.Checkbox {
					l = map[bool]string{true: "[x] ", false: "[ ] "}[it.Checked] + l
				}
				if !it.Enabled {
					l = "(" + l + ")"
				}
				parts = append(parts, l)
			}
		}
		return strings.Join(parts, " | ")
	}
	tests := []struct {
		name string
		e    env
		s    health.Status
		want string
	}{
		{"client", env{role: RoleClient, name: "office", hasConfig: true, autostartOK: true, autostartOn: true},
			health.Status{State: health.Current, IPv4: addrA, Previous: addrB, LastCheck: now},
			"(office: 203.0.113.9) | (Previous: 198.51.100.7) | (Checked just now) | -- | Copy address | Fetch now | -- | Open config | [x] Start at login | -- | Quit"},
		{"client dual stack no config no autostart", env{role: RoleClient, name: "office"},
			health.Status{State: health.Current, IPv4: addrA, IPv6: addr6},
			"(office: 203.0.113.9 / 2001:db8::1) | (Not checked yet) | -- | Copy IPv4 address | Copy IPv6 address | Fetch now | -- | (Open config) | ([ ] Start at login) | -- | Quit"},
		{"server", env{role: RoleServer, name: "office", hasConfig: true, autostartOK: true},
			health.Status{State: health.Current, IPv4: addrA, LastCheck: now, LastSent: now, Seq: 3, NextHeartbeat: now.Add(59*time.Minute + 30*time.Second)},
			"(office: 203.0.113.9) | (Checked just now · sent #3 just now) | (Next heartbeat in 59 min) | -- | Copy address | Publish now | [ ] Pause publishing | -- | Open config | [ ] Start at login | -- | Quit"},
		{"server paused with error", env{role: RoleServer, name: "office", hasConfig: true, autostartOK: true},
			health.Status{State: health.Error, IPv4: addrA, Paused: true, NextHeartbeat: now, Err: "SMTP login failed"},
			"(office: 203.0.113.9) | (Not checked yet · nothing sent yet) | (Error: SMTP login failed) | -- | Copy address | (Publish now) | [x] Pause publishing | -- | Open config | [ ] Start at login | -- | Quit"},
		{"client sign-in needed", env{role: RoleClient, name: "office", hasConfig: true, canSignIn: true},
			health.Status{State: health.Error, IPv4: addrA, SignInNeeded: true},
			"(office: 203.0.113.9) | (Not checked yet) | (Error: sign-in needed) | -- | Sign in… | Copy address | Fetch now | -- | Open config | ([ ] Start at login) | -- | Quit"},
		{"server sign-in needed without the action", env{role: RoleServer, name: "office", hasConfig: true},
			health.Status{State: health.Error, SignInNeeded: true, Err: "the provider refused the refresh token"},
			"(office: public address not known yet) | (Not checked yet · nothing sent yet) | (Error: the provider refused the refresh token) | -- | (Sign in…) | (Copy address) | Publish now | [ ] Pause publishing | -- | Open config | ([ ] Start at login) | -- | Quit"},
		{"sign-in item hidden when not needed", env{role: RoleClient, name: "office", canSignIn: true},
			health.Status{State: health.Error, IPv4: addrA, Err: "cannot connect"},
			"(office: 203.0.113.9) | (Not checked yet) | (Error: cannot connect) | -- | Copy address | Fetch now | -- | (Open config) | ([ ] Start at login) | -- | Quit"},
		{"server heartbeat due", env{role: RoleServer, name: "office"},
			health.Status{State: health.Current, IPv4: addrA, NextHeartbeat: now.Add(-time.Minute)},
			"(office: 203.0.113.9) | (Not checked yet · nothing sent yet) | (Next heartbeat due now) | -- | Copy address | Publish now | [ ] Pause publishing | -- | (Open config) | ([ ] Start at login) | -- | Quit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := labels(view(tt.e, tt.s, now)); got != tt.want {
				t.Errorf("view() menu =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}

// TestViewStable checks that every status gives the same item IDs in the
// same order, which the controller relies on to update items in place.
func TestViewStable(t *testing.T) {
	t.Parallel()
	for _, role := range []Role{RoleClient, RoleServer} {
		e := env{role: role, name: "office"}
		ref := view(e, health.Status{}, now)
		for st := health.Unknown; st <= health.Working; st++ {
			for _, s := range []health.Status{
				{State: st},
				{State: st, IPv4: addrA, IPv6: addr6, Previous: addrB, Err: "x", Paused: true, NextHeartbeat: now},
				{State: st, SignInNeeded: true},
			} {
				m := view(e, s, now)
				if len(m.Items) != len(ref.Items) {
					t.Fatalf("%v %v: %d items, want %d", role, st, len(m.Items), len(ref.Items))
				}
				for i := range m.Items {
					if m.Items[i].ID != ref.Items[i].ID || m.Items[i].Checkbox != ref.Items[i].Checkbox {
						t.Errorf("%v %v: item %d = %v, want %v", role, st, i, m.Items[i].ID, ref.Items[i].ID)
					}
				}
			}
		}
	}
}

func TestTooltipTruncated(t *testing.T) {
	t.Parallel()
	e := env{role: RoleClient, name: "office"}
	s := health.Status{State: health.Error, IPv4: addrA, IPv6: netip.MustParseAddr("2001:db8:1234:5678:9abc:def0:1234:5678"), Err: strings.Repeat("very long error ", 20)}
	m := view(e, s, now)
	if n := len([]rune(m.Tooltip)); n != maxTooltip {
		t.Errorf("len(view().Tooltip) = %d runes, want %d", n, maxTooltip)
	}
	if !strings.HasSuffix(m.Tooltip, "…") {
		t.Errorf("view().Tooltip = %q, want it to end with …", m.Tooltip)
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Hour, "just now"},
		{0, "just now"},
		{59 * time.Second, "just now"},
		{time.Minute, "1 min ago"},
		{3*time.Minute + 59*time.Second, "3 min ago"},
		{59 * time.Minute, "59 min ago"},
		{time.Hour, "1 h ago"},
		{47 * time.Hour, "47 h ago"},
		{48 * time.Hour, "2 days ago"},
		{400 * time.Hour, "16 days ago"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			t.Parallel()
			if got := ago(tt.d); got != tt.want {
				t.Errorf("ago(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    health.State
		want string
	}{
		{health.Unknown, "unknown"}, {health.Current, "current"}, {health.Stale, "stale"}, {health.Unreachable, "unreachable"},
		{health.Error, "error"}, {health.Working, "working"}, {health.State(42), "State(42)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", int(tt.s), got, tt.want)
		}
	}
	if got := RoleServer.String(); got != "server" {
		t.Errorf("RoleServer.String() = %q, want server", got)
	}
}
