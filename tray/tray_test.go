package tray

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/health"
)

// fakeUI records what the controller shows. Clicks are sent with click.
type fakeUI struct {
	mu       sync.Mutex
	icon     string
	tooltip  string
	icons    int // setIcon calls
	items    []*fakeItem
	seps     int
	quitOnce sync.Once
	quitCh   chan struct{}
	openedCh chan struct{}
	gate     chan struct{} // when set, setIcon waits for it to close
	quitted  bool          // quit was called
	late     int           // setIcon/setTooltip calls after quit
}

func newFakeUI() *fakeUI {
	return &fakeUI{quitCh: make(chan struct{}), openedCh: make(chan struct{})}
}

func (f *fakeUI) run(onReady func()) {
	onReady()
	<-f.quitCh
}

func (f *fakeUI) quit() {
	f.mu.Lock()
	f.quitted = true
	f.mu.Unlock()
	f.quitOnce.Do(func() { close(f.quitCh) })
}

func (f *fakeUI) setIcon(name string) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.icon = name
	f.icons++
	if f.quitted {
		f.late++
	}
}

func (f *fakeUI) setTooltip(text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tooltip = text
	if f.quitted {
		f.late++
	}
}

func (f *fakeUI) addItem(label string, checkbox bool) menuItem {
	f.mu.Lock()
	defer f.mu.Unlock()
	it := &fakeItem{ui: f, label: label, checkbox: checkbox, enabled: true, visible: true, ch: make(chan struct{})}
	f.items = append(f.items, it)
	return it
}

func (f *fakeUI) addSeparator() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seps++
}

func (f *fakeUI) opened() <-chan struct{} { return f.openedCh }

// shown returns the icon and tooltip.
func (f *fakeUI) shown() (icon, tooltip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.icon, f.tooltip
}

// find returns the item whose label starts with prefix.
func (f *fakeUI) find(t *testing.T, prefix string) *fakeItem {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var labels []string
	for _, it := range f.items {
		if strings.HasPrefix(it.label, prefix) {
			return it
		}
		labels = append(labels, it.label)
	}
	t.Fatalf("no menu item %q in %q", prefix, labels)
	return nil
}

type fakeItem struct {
	ui                                  *fakeUI
	label                               string
	checkbox, enabled, checked, visible bool
	ch                                  chan struct{}
}

func (i *fakeItem) setLabel(s string)        { i.ui.mu.Lock(); i.label = s; i.ui.mu.Unlock() }
func (i *fakeItem) setEnabled(on bool)       { i.ui.mu.Lock(); i.enabled = on; i.ui.mu.Unlock() }
func (i *fakeItem) setChecked(on bool)       { i.ui.mu.Lock(); i.checked = on; i.ui.mu.Unlock() }
func (i *fakeItem) setVisible(on bool)       { i.ui.mu.Lock(); i.visible = on; i.ui.mu.Unlock() }
func (i *fakeItem) clicked() <-chan struct{} { return i.ch }

// state returns label, enabled, checked, visible.
func (i *fakeItem) state() (string, bool, bool, bool) {
	i.ui.mu.Lock()
	defer i.ui.mu.Unlock()
	return i.label, i.enabled, i.checked, i.visible
}

// fakeNotifier records notifications.
type fakeNotifier struct {
	mu    sync.Mutex
	shown []string
	err   error
}

func (n *fakeNotifier) Notify(title, message string, icon []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(icon) == 0 {
		return errors.New("no icon")
	}
	n.shown = append(n.shown, title+" | "+message)
	return n.err
}

func (n *fakeNotifier) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.shown...)
}

// fakeAutostart is an in-memory login item.
type fakeAutostart struct {
	mu     sync.Mutex
	on     bool
	setErr error
}

func (a *fakeAutostart) Enabled() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.on, nil
}

func (a *fakeAutostart) SetEnabled(on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.setErr != nil {
		return a.setErr
	}
	a.on = on
	return nil
}

// recorder collects actions.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.got = append(r.got, s); r.mu.Unlock() }
func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *recorder) actions() Actions {
	return Actions{
		FetchNow:   func() { r.add("fetch") },
		PublishNow: func() { r.add("publish") },
		SetPaused:  func(p bool) { r.add(fmt.Sprintf("paused=%v", p)) },
		Quit:       func() { r.add("quit") },
		SignIn:     func() { r.add("signin") },
	}
}

// harness runs a Tray on a fakeUI inside a synctest bubble.
type harness struct {
	t      *testing.T
	tray   *Tray
	ui     *fakeUI
	notes  *fakeNotifier
	auto   *fakeAutostart
	rec    *recorder
	copied []string
	opened []string
	cancel context.CancelFunc
	done   chan error
}

func startHarness(t *testing.T, opts Options, initial health.Status) *harness {
	h := &harness{t: t, ui: newFakeUI(), notes: &fakeNotifier{}, auto: &fakeAutostart{}, rec: &recorder{}, done: make(chan error, 1)}
	if opts.Name == "" {
		opts.Name = "office"
	}
	opts.Notifier = h.notes
	if opts.Autostart == nil {
		opts.Autostart = h.auto
	}
	opts.Actions = h.rec.actions()
	if opts.Clipboard == nil {
		opts.Clipboard = func(s string) error { h.copied = append(h.copied, s); return nil }
	}
	if opts.OpenFile == nil {
		opts.OpenFile = func(p string) error { h.opened = append(h.opened, p); return nil }
	}
	h.tray = New(opts)
	h.tray.SetStatus(initial)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.tray.run(ctx, h.ui) }()
	synctest.Wait()
	return h
}

func (h *harness) click(prefix string) {
	h.t.Helper()
	h.ui.find(h.t, prefix).ch <- struct{}{}
	synctest.Wait()
}

func (h *harness) set(s health.Status) {
	h.tray.SetStatus(s)
	synctest.Wait()
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("run() = %v, want nil", err)
	}
}

func TestTrayClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := startHarness(t, Options{Role: RoleClient, ConfigPath: "/home/u/.config/ipsync/config.yaml"},
			health.Status{State: health.Current, IPv4: addrA, IssuedAt: start, LastCheck: start, Mode: "IDLE (push)"})
		defer h.stop()

		if icon, tip := h.ui.shown(); icon != "client-current" || tip != "office: 203.0.113.9 · updated just now" {
			t.Errorf("initial icon, tooltip = %q, %q; want client-current, %q", icon, tip, "office: 203.0.113.9 · updated just now")
		}
		if got := h.ui.seps; got != 3 {
			t.Errorf("separators = %d, want 3", got)
		}
		status := h.ui.find(t, "Checked")

		// Ages refresh on the ticker.
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		if _, tip := h.ui.shown(); tip != "office: 203.0.113.9 · updated 3 min ago" {
			t.Errorf("tooltip after 3 min = %q, want %q", tip, "office: 203.0.113.9 · updated 3 min ago")
		}
		if label, _, _, _ := status.state(); label != "Checked 3 min ago · message 3 min old · IDLE (push)" {
			t.Errorf("status line after 3 min = %q", label)
		}

		h.click("Fetch now")
		h.set(health.Status{State: health.Working, IPv4: addrA, IssuedAt: start})
		fetch := h.ui.find(t, "Fetching")
		if _, enabled, _, _ := fetch.state(); enabled {
			t.Errorf("Fetching… item enabled while working, want disabled")
		}
		if icon, _ := h.ui.shown(); icon != "client-working" {
			t.Errorf("icon while working = %q, want client-working", icon)
		}
		now := time.Now()
		h.set(health.Status{State: health.Current, IPv4: addrB, Previous: addrA, IssuedAt: now, LastCheck: now})
		if label, enabled, _, _ := fetch.state(); label != "Fetch now" || !enabled {
			t.Errorf("fetch item = %q enabled %v, want Fetch now enabled", label, enabled)
		}
		if _, tip := h.ui.shown(); tip != "office: 198.51.100.7 · updated just now" {
			t.Errorf("tooltip after change = %q", tip)
		}
		prev := h.ui.find(t, "Previous")
		if label, _, _, visible := prev.state(); label != "Previous: 203.0.113.9" || !visible {
			t.Errorf("previous item = %q visible %v, want Previous: 203.0.113.9 visible", label, visible)
		}

		h.click("Copy address")
		h.click("Open config")
		if got, want := h.rec.all(), []string{"fetch"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("actions = %q, want %q", got, want)
		}
		if got := strings.Join(h.copied, ","); got != "198.51.100.7" {
			t.Errorf("copied %q, want 198.51.100.7", got)
		}
		if got := strings.Join(h.opened, ","); got != "/home/u/.config/ipsync/config.yaml" {
			t.Errorf("opened %q, want the config path", got)
		}
		if got, want := h.notes.all(), []string{"office has a new address | 203.0.113.9 → 198.51.100.7"}; strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("notifications = %q, want %q", got, want)
		}
	})
}

func TestTrayAutostart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{}, health.Status{})
		defer h.stop()
		item := h.ui.find(t, "Start at login")
		check := func(want bool) {
			t.Helper()
			if _, enabled, checked, _ := item.state(); !enabled || checked != want {
				t.Errorf("Start at login enabled %v checked %v, want enabled, checked %v", enabled, checked, want)
			}
		}
		check(false)
		h.click("Start at login")
		check(true)
		if on, _ := h.auto.Enabled(); !on {
			t.Errorf("autostart after click = off, want on")
		}
		// Changed behind the tray's back: the menu shows it when opened.
		h.auto.SetEnabled(false)
		h.ui.openedCh <- struct{}{}
		synctest.Wait()
		check(false)

		h.auto.setErr = errors.New("permission denied")
		h.click("Start at login")
		check(false)
		if got := h.notes.all(); len(got) != 1 || !strings.Contains(got[0], "permission denied") {
			t.Errorf("notifications = %q, want one about the failure", got)
		}
	})
}

// brokenAutostart cannot be read.
type brokenAutostart struct{}

func (brokenAutostart) Enabled() (bool, error) { return false, errors.New("no home directory") }
func (brokenAutostart) SetEnabled(bool) error  { return errors.New("no home directory") }

func TestTrayAutostartUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{Autostart: brokenAutostart{}}, health.Status{})
		defer h.stop()
		if _, enabled, checked, _ := h.ui.find(t, "Start at login").state(); enabled || checked {
			t.Errorf("Start at login enabled %v checked %v, want disabled and unchecked", enabled, checked)
		}
		if _, enabled, _, _ := h.ui.find(t, "Open config").state(); enabled {
			t.Errorf("Open config enabled without a config path, want disabled")
		}
	})
}

func TestTrayServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{Role: RoleServer}, health.Status{State: health.Current, IPv4: addrA})
		defer h.stop()
		h.click("Publish now")
		h.click("Pause publishing")
		pause := h.ui.find(t, "Pause publishing")
		if _, _, checked, _ := pause.state(); !checked {
			t.Errorf("Pause publishing unchecked after click, want checked at once")
		}
		if icon, tip := h.ui.shown(); icon != "server-paused" || tip != "office: publishing paused · 203.0.113.9" {
			t.Errorf("icon, tooltip = %q, %q; want server-paused and a paused tooltip", icon, tip)
		}
		if _, enabled, _, _ := h.ui.find(t, "Publish now").state(); enabled {
			t.Errorf("Publish now enabled while paused, want disabled")
		}
		h.set(health.Status{State: health.Current, IPv4: addrA, Paused: true})
		h.click("Pause publishing")
		if _, _, checked, _ := pause.state(); checked {
			t.Errorf("Pause publishing checked after second click, want unchecked")
		}
		if got, want := strings.Join(h.rec.all(), ","), "publish,paused=true,paused=false"; got != want {
			t.Errorf("actions = %q, want %q", got, want)
		}
	})
}

func TestTrayQuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{}, health.Status{})
		h.ui.find(t, "Quit").ch <- struct{}{}
		if err := <-h.done; err != nil {
			t.Errorf("run() after Quit = %v, want nil", err)
		}
		if got := strings.Join(h.rec.all(), ","); got != "quit" {
			t.Errorf("actions = %q, want quit", got)
		}
		h.cancel()
	})
}

func TestTrayRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{}, health.Status{})
		defer h.stop()
		if err := h.tray.run(context.Background(), newFakeUI()); err == nil {
			t.Errorf("second run() = nil, want an error")
		}
	})
}

func TestTrayNotifications(t *testing.T) {
	tests := []struct {
		name     string
		noNotify bool
		want     []string
	}{
		{"enabled", false, []string{
			"office has a new address | 203.0.113.9 → 198.51.100.7",
			"office may be offline | No update since 3 h ago; last known address 198.51.100.7.",
			"office is back | 198.51.100.7 is current again.",
			"office: cannot check for updates | mail login failed",
		}},
		{"disabled", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				h := startHarness(t, Options{NoNotify: tt.noNotify}, health.Status{State: health.Current, IPv4: addrA, IssuedAt: start})
				defer h.stop()
				h.set(health.Status{State: health.Current, IPv4: addrB, IssuedAt: start})
				h.set(health.Status{State: health.Current, IPv4: addrB, IssuedAt: start})
				time.Sleep(3 * time.Hour)
				h.set(health.Status{State: health.Stale, IPv4: addrB, IssuedAt: start})
				h.set(health.Status{State: health.Stale, IPv4: addrB, IssuedAt: start})
				h.set(health.Status{State: health.Current, IPv4: addrB, IssuedAt: time.Now()})
				h.set(health.Status{State: health.Error, IPv4: addrB, Err: "mail login failed"})
				h.set(health.Status{State: health.Error, IPv4: addrB, Err: "mail login failed"})
				if got := h.notes.all(); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("notifications =\n  %q\nwant\n  %q", got, tt.want)
				}
			})
		})
	}
}

// TestTrayStartupBaseline checks that the status present when the tray
// starts (for example the last address from before a reboot) is not
// announced.
func TestTrayStartupBaseline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{}, health.Status{State: health.Unknown, IPv4: addrA})
		defer h.stop()
		h.set(health.Status{State: health.Current, IPv4: addrA})
		if got := h.notes.all(); len(got) != 0 {
			t.Errorf("notifications = %q, want none", got)
		}
	})
}

func TestTrayCopyFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{
			NoNotify:  true,
			Clipboard: func(string) error { return errors.New("no clipboard utility (xclip, xsel, wl-copy) found") },
		}, health.Status{State: health.Current, IPv4: addrA, IPv6: addr6})
		defer h.stop()
		h.click("Copy IPv6 address")
		got := h.notes.all()
		if len(got) != 1 || !strings.Contains(got[0], "2001:db8::1") || !strings.Contains(got[0], "xclip") {
			t.Errorf("notifications = %q, want one naming the address and the cause", got)
		}
	})
}

// TestTraySignIn: "Sign in…" appears only while a sign-in is needed, calls
// Actions.SignIn, and one notification names the command.
func TestTraySignIn(t *testing.T) {
	for _, role := range []Role{RoleClient, RoleServer} {
		t.Run(role.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startHarness(t, Options{Role: role, ConfigPath: "/etc/ipsync/config.yaml"}, health.Status{State: health.Current, IPv4: addrA})
				defer h.stop()
				item := h.ui.find(t, "Sign in")
				if _, _, _, visible := item.state(); visible {
					t.Error("Sign in… visible while no sign-in is needed")
				}

				h.set(health.Status{State: health.Error, IPv4: addrA, SignInNeeded: true, Err: "sign-in needed: the provider refused the refresh token"})
				if label, enabled, _, visible := item.state(); label != "Sign in…" || !enabled || !visible {
					t.Errorf("sign-in item = %q enabled %v visible %v; want Sign in… enabled and visible", label, enabled, visible)
				}
				if icon, tip := h.ui.shown(); icon != role.String()+"-error" || !strings.Contains(tip, "sign-in needed") {
					t.Errorf("icon, tooltip = %q, %q; want the error icon and the reason", icon, tip)
				}
				h.click("Sign in")
				h.set(health.Status{State: health.Error, IPv4: addrA, SignInNeeded: true, Err: "sign-in needed"})
				if got := strings.Join(h.rec.all(), ","); got != "signin" {
					t.Errorf("actions = %q, want signin", got)
				}
				notes := h.notes.all()
				if len(notes) != 1 || !strings.Contains(notes[0], "sign-in needed") || !strings.HasSuffix(notes[0], "run: ipsync login --config /etc/ipsync/config.yaml") {
					t.Errorf("notifications = %q, want one naming the command", notes)
				}

				h.set(health.Status{State: health.Current, IPv4: addrA})
				if _, _, _, visible := item.state(); visible {
					t.Error("Sign in… still visible after the sign-in")
				}
			})
		})
	}
}

// TestNoRedrawAfterQuit: a stop while the tray is redrawing quits the tray
// only once the redraw is over: on Linux, Quit closes the bus connection and
// a SetIcon after it panics ("dbus: connection closed by user").
func TestNoRedrawAfterQuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Options{NoNotify: true}, health.Status{State: health.Current, IPv4: addrA})
		gate := make(chan struct{})
		h.ui.mu.Lock()
		h.ui.gate = gate
		h.ui.mu.Unlock()
		h.tray.SetStatus(health.Status{State: health.Stale, IPv4: addrA})
		synctest.Wait() // the redraw waits in setIcon
		h.cancel()
		synctest.Wait()
		h.ui.mu.Lock()
		quitted := h.ui.quitted
		h.ui.mu.Unlock()
		if quitted {
			t.Error("the tray quit while a redraw was under way")
		}
		close(gate)
		if err := <-h.done; err != nil {
			t.Errorf("run() = %v", err)
		}
		h.ui.mu.Lock()
		defer h.ui.mu.Unlock()
		if h.ui.late != 0 || !h.ui.quitted {
			t.Errorf("%d drawing calls after quit (quit called: %v), want none and a quit", h.ui.late, h.ui.quitted)
		}
	})
}
