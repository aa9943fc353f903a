package tray

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"ipsync/health"
)

// itemID names a menu entry. The menu of a role always has the same items in
// the same order; items that do not apply are hidden or disabled.
type itemID int

const (
	itemSeparator  itemID = iota
	itemAddress           // the address, informative
	itemPrevious          // the address before the last change
	itemStatus            // last check, message age, watch mode / last sent
	itemHeartbeat         // server: next heartbeat
	itemError             // the error message
	itemSignIn            // OAuth2 sign-in, shown only when needed
	itemCopy              // copy the (IPv4) address
	itemCopy6             // copy the IPv6 address when both are known
	itemFetch             // client: fetch now
	itemPublish           // server: publish now
	itemPause             // server: pause publishing (checkbox)
	itemOpenConfig        // open the configuration file
	itemAutostart         // start at login (checkbox)
	itemJoin              // client not set up: join with an invitation
	itemGuide             // client not set up: open the set-up guide
	itemQuit
)

// entry is one menu item as it should look.
type entry struct {
	ID       itemID
	Label    string
	Enabled  bool
	Checkbox bool // drawn with a check box (fixed per item)
	Checked  bool
	Hidden   bool
}

// model is everything the tray shows for one Status at one moment.
type model struct {
	// Icon is the icons package name, e.g. "client-current".
	Icon string
	// Tooltip is the text shown when hovering over the icon.
	Tooltip string
	// Items is the menu, top to bottom, separators included.
	Items []entry
}

// find returns the entry with id, or a zero entry.
func (m model) find(id itemID) entry {
	for _, it := range m.Items {
		if it.ID == id {
			return it
		}
	}
	return entry{}
}

// env is what the model needs besides the Status.
type env struct {
	role        Role
	name        string // Options.Name
	hasConfig   bool   // a config path is known
	autostartOK bool   // the autostart entry can be read and changed
	autostartOn bool
	canSignIn   bool // Actions.SignIn is set
	notSetUp    bool // Options.NotSetUp
}

// maxTooltip is the longest tooltip in runes: Windows keeps 127 UTF-16 units
// (plus a terminating zero) and silently cuts the rest.
const maxTooltip = 127

// view decides what to show for s at time now.
func view(e env, s health.Status, now time.Time) model {
	name := s.Name
	if name == "" {
		name = e.name
	}
	if s.SignInNeeded && s.Err == "" {
		s.Err = "sign-in needed"
	}
	addrs := joinAddrs(s.IPv4, s.IPv6)
	lastKnown := e.role == RoleClient && s.LastKnownOnly && addrs != ""
	icon := e.role.String() + "-" + s.State.Icon()
	if lastKnown && s.State == health.Current {
		// Not the server's newest address: not drawn as current.
		icon = e.role.String() + "-" + health.Stale.Icon()
	}
	if e.role == RoleServer && s.Paused {
		icon = "server-paused"
	}
	var m model
	m.Icon = icon
	if e.role == RoleServer {
		m.Tooltip = serverTooltip(name, addrs, s, now)
	} else {
		m.Tooltip = clientTooltip(name, addrs, s, now)
	}
	m.Tooltip = truncate(m.Tooltip, maxTooltip)

	addrLabel := name + ": " + addrs
	if lastKnown {
		addrLabel += " (last known)"
	}
	if addrs == "" {
		if e.role == RoleServer {
			addrLabel = name + ": public address not known yet"
		} else {
			addrLabel = name + ": no address yet"
		}
	}
	both := s.IPv4.IsValid() && s.IPv6.IsValid()
	copyLabel := "Copy address"
	if both {
		copyLabel = "Copy IPv4 address"
	}
	errLabel := truncate(s.Err, 100)
	if s.State == health.Error && errLabel != "" {
		errLabel = "Error: " + errLabel
	}
	info := []entry{
		{ID: itemAddress, Label: addrLabel},
		{ID: itemPrevious, Label: "Previous: " + s.Previous.String(), Hidden: !s.Previous.IsValid()},
		{ID: itemStatus, Label: statusLine(e.role, s, now)},
	}
	if e.role == RoleServer {
		info = append(info, entry{ID: itemHeartbeat, Label: heartbeatLine(s, now),
			Hidden: s.NextHeartbeat.IsZero() || s.Paused})
	}
	info = append(info,
		entry{ID: itemError, Label: errLabel, Hidden: s.Err == ""},
		entry{ID: itemSeparator},
		entry{ID: itemSignIn, Label: "Sign in…", Enabled: e.canSignIn, Hidden: !s.SignInNeeded},
		entry{ID: itemCopy, Label: copyLabel, Enabled: addrs != ""},
		entry{ID: itemCopy6, Label: "Copy IPv6 address", Enabled: both, Hidden: !both},
	)
	m.Items = info
	working := s.State == health.Working
	if e.role == RoleServer {
		publish := entry{ID: itemPublish, Label: "Publish now", Enabled: !working && !s.Paused}
		if working {
			publish.Label = "Publishing…"
		}
		m.Items = append(m.Items, publish,
			entry{ID: itemPause, Label: "Pause publishing", Enabled: true, Checkbox: true, Checked: s.Paused})
	} else {
		fetch := entry{ID: itemFetch, Label: "Fetch now", Enabled: !working}
		if working {
			fetch.Label = "Fetching…"
		}
		m.Items = append(m.Items, fetch,
			entry{ID: itemJoin, Label: "Join with an invitation…", Enabled: true, Hidden: !e.notSetUp},
			entry{ID: itemGuide, Label: "Open the set-up guide", Enabled: true, Hidden: !e.notSetUp})
	}
	m.Items = append(m.Items,
		entry{ID: itemSeparator},
		entry{ID: itemOpenConfig, Label: "Open config", Enabled: e.hasConfig},
		entry{ID: itemAutostart, Label: "Start at login", Enabled: e.autostartOK, Checkbox: true,
			Checked: e.autostartOK && e.autostartOn},
		entry{ID: itemSeparator},
		entry{ID: itemQuit, Label: "Quit", Enabled: true},
	)
	if e.notSetUp {
		notSetUpView(&m)
	}
	return m
}

// notSetUpView turns the client's model into the first-run one: no
// address, only the ways to set the PC up.
func notSetUpView(m *model) {
	m.Icon = "client-unknown"
	m.Tooltip = "ipsync: not set up — open this menu and choose Join with an invitation…"
	for i := range m.Items {
		it := &m.Items[i]
		switch it.ID {
		case itemAddress:
			it.Label = "ipsync is not set up on this PC"
		case itemStatus:
			it.Label = "Ask your administrator for an invitation (.ipsync file)"
		case itemPrevious, itemError, itemCopy, itemCopy6, itemFetch, itemOpenConfig:
			it.Hidden = true
		}
	}
}

func clientTooltip(name, addrs string, s health.Status, now time.Time) string {
	head := name + ": "
	if addrs == "" {
		switch s.State {
		case health.Error:
			return head + orDefault(s.Err, "cannot read the mailbox")
		case health.Working:
			return head + "checking the mailbox…"
		case health.Stale, health.Unreachable:
			return head + "no address received"
		default:
			return head + "no address yet — waiting for the first message"
		}
	}
	t := head + addrs
	if s.LastKnownOnly {
		// The mailbox holds messages for this client that it cannot
		// accept: the address is only the last one it accepted, and Err
		// says why.
		t = join(t, lastKnownAge(s, now))
		if s.State == health.Working {
			t = join(t, "checking…")
		}
		return t + prefixed(" — ", s.Err)
	}
	updated := ""
	if !s.IssuedAt.IsZero() {
		updated = "updated " + ago(now.Sub(s.IssuedAt))
	}
	switch s.State {
	case health.Current:
		return join(t, updated)
	case health.Stale:
		return join(t, join("stale", updated, ", "))
	case health.Unreachable:
		return join(t, join("unreachable", updated, ", "))
	case health.Error:
		return join(t, updated) + " — " + orDefault(s.Err, "cannot read the mailbox")
	case health.Working:
		return join(join(t, updated), "checking…")
	default: // Unknown: last known from before a restart
		return join(t, join("last known", updated, ", "))
	}
}

func serverTooltip(name, addrs string, s health.Status, now time.Time) string {
	head := name + ": "
	if s.Paused {
		return join(head+"publishing paused", addrs)
	}
	if addrs == "" {
		switch s.State {
		case health.Error:
			return head + orDefault(s.Err, "cannot publish")
		case health.Unreachable:
			return head + "public address unknown" + prefixed(" — ", s.Err)
		default:
			return head + "finding the public address…"
		}
	}
	sent := "not published yet"
	if !s.LastSent.IsZero() {
		sent = "published " + ago(now.Sub(s.LastSent))
	}
	t := head + addrs
	switch s.State {
	case health.Stale:
		last := ""
		if !s.LastSent.IsZero() {
			last = "last sent " + ago(now.Sub(s.LastSent))
		}
		return join(t, join("not delivered yet", last, ", "))
	case health.Unreachable:
		return join(t, "address check failing") + prefixed(" — ", s.Err)
	case health.Error:
		return join(t, sent) + " — " + orDefault(s.Err, "cannot send mail")
	case health.Working:
		return join(t, "publishing…")
	default:
		return join(t, sent)
	}
}

// statusLine is the disabled menu line under the address.
func statusLine(role Role, s health.Status, now time.Time) string {
	var parts []string
	if s.LastCheck.IsZero() {
		parts = append(parts, "Not checked yet")
	} else {
		parts = append(parts, "Checked "+ago(now.Sub(s.LastCheck)))
	}
	if role == RoleServer {
		switch {
		case s.LastSent.IsZero():
			parts = append(parts, "nothing sent yet")
		case s.Seq > 0:
			parts = append(parts, fmt.Sprintf("sent #%d %s", s.Seq, ago(now.Sub(s.LastSent))))
		default:
			parts = append(parts, "sent "+ago(now.Sub(s.LastSent)))
		}
		return strings.Join(parts, " · ")
	}
	switch {
	case s.LastKnownOnly && (s.IPv4.IsValid() || s.IPv6.IsValid()):
		parts = append(parts, lastKnownAge(s, now))
	case !s.IssuedAt.IsZero():
		parts = append(parts, "message "+age(now.Sub(s.IssuedAt))+" old")
	}
	if s.Mode != "" {
		parts = append(parts, s.Mode)
	}
	return strings.Join(parts, " · ")
}

// lastKnownAge is "last known, 2 h old": how a client presents an address
// that is not the server's newest (Status.LastKnownOnly).
func lastKnownAge(s health.Status, now time.Time) string {
	if s.IssuedAt.IsZero() {
		return "last known"
	}
	return "last known, " + age(max(now.Sub(s.IssuedAt), 0)) + " old"
}

func heartbeatLine(s health.Status, now time.Time) string {
	d := s.NextHeartbeat.Sub(now)
	if d < time.Minute {
		return "Next heartbeat due now"
	}
	return "Next heartbeat in " + age(d)
}

// ago describes a past duration: "just now", "3 min ago", "2 h ago",
// "4 days ago". Negative durations (clock skew) count as just now.
func ago(d time.Duration) string {
	if d < time.Minute {
		return "just now"
	}
	return age(d) + " ago"
}

// age is a rounded-down duration: "under a minute", "3 min", "2 h",
// "4 days".
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
}

// joinAddrs writes the known addresses as "v4 / v6", or "" if none.
func joinAddrs(v4, v6 netip.Addr) string {
	var parts []string
	for _, a := range []netip.Addr{v4, v6} {
		if a.IsValid() {
			parts = append(parts, a.String())
		}
	}
	return strings.Join(parts, " / ")
}

// join appends b to a with sep (" · " when not given), skipping empties.
func join(a, b string, sep ...string) string {
	s := " · "
	if len(sep) > 0 {
		s = sep[0]
	}
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + s + b
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// truncate cuts s to at most n runes, ending with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
