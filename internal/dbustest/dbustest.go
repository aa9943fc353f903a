// Package dbustest plays the desktop side of a Linux tray application in
// tests, over a private DBus session bus: it starts its own
// `dbus-daemon --session` (never an inherited bus), owns
// org.kde.StatusNotifierWatcher (the tray host) and
// org.freedesktop.Notifications (the notification daemon), reads a
// StatusNotifierItem's properties and clicks its com.canonical.dbusmenu
// entries the way a panel does.
//
// The application under test runs in a child process with
// DBUS_SESSION_BUS_ADDRESS set to Desktop.Addr. Every wait in this package
// ends after Timeout with a test failure. Functions taking a testing.TB must
// be called from the test's goroutine (they may call t.Fatal).
//
// Tests using it call RequireDaemon (through StartBus or StartDesktop): they
// are skipped where dbus-daemon is not installed, except when the
// environment variable CI is set, where that is a failure.
package dbustest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Timeout bounds every wait on the bus in this package.
const Timeout = 20 * time.Second

// DBus names of the StatusNotifierItem protocol.
const (
	// WatcherName is the well-known name (and interface) of the tray host
	// registry an item registers with.
	WatcherName = "org.kde.StatusNotifierWatcher"
	// ItemInterface is the interface of a tray item's properties.
	ItemInterface = "org.kde.StatusNotifierItem"
	// ItemPath is the object path of a tray item.
	ItemPath = dbus.ObjectPath("/StatusNotifierItem")
	// MenuInterface is the interface of a tray item's menu.
	MenuInterface = "com.canonical.dbusmenu"
)

// RequireDaemon skips t when dbus-daemon is not installed, unless the
// environment variable CI is set: then the test fails, as it must run there.
func RequireDaemon(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if ci := os.Getenv("CI"); ci != "" {
			t.Fatalf("dbus-daemon not found but CI=%q: install the Debian/Ubuntu package dbus (or dbus-daemon)", ci)
		}
		// Visible without -v too (go test shows a package's output when it
		// runs in the current directory or fails).
		fmt.Fprintf(os.Stderr, "SKIP %s: dbus-daemon is not installed (apt-get install dbus)\n", t.Name())
		t.Skip("dbus-daemon not installed (apt-get install dbus); skipping the real DBus test. Set CI=true to make this a failure.")
	}
}

// StartBus starts a private session bus (`dbus-daemon --session`) listening
// on a socket in a temporary directory, and returns its address. It calls
// RequireDaemon first. The daemon is killed when t ends.
func StartBus(t testing.TB) string {
	t.Helper()
	RequireDaemon(t)
	sock := filepath.Join(t.TempDir(), "bus")
	cmd := exec.Command("dbus-daemon", "--session", "--print-address", "--nofork", "--address=unix:path="+sock)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("dbus-daemon stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	timeout := time.NewTimer(Timeout)
	defer timeout.Stop()
	select {
	case addr := <-line:
		if addr == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return addr
	case <-timeout.C:
		t.Fatal("timed out waiting for dbus-daemon to print its address")
	}
	return ""
}

// Connect opens a connection to the bus at addr, closed when t ends.
func Connect(t testing.TB, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to the private bus %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ownName exports v at path under iface and takes the well-known name.
func ownName(t testing.TB, conn *dbus.Conn, v any, path dbus.ObjectPath, iface, name string) {
	t.Helper()
	if err := conn.Export(v, path, iface); err != nil {
		t.Fatalf("export %s: %v", iface, err)
	}
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name %s: reply %v, err %v", name, reply, err)
	}
}

// watcher is the part of org.kde.StatusNotifierWatcher a tray item calls.
// Its exported methods are DBus methods.
type watcher struct {
	registered chan string // unique bus name of each item
}

func (w *watcher) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	select {
	case w.registered <- string(sender):
	default:
	}
	return nil
}

func (w *watcher) RegisterStatusNotifierHost(service string) *dbus.Error { return nil }

// Desktop is a private session bus with a tray host and a notification
// daemon on it. Create it with StartDesktop.
type Desktop struct {
	// Addr is the bus address, for the child's DBUS_SESSION_BUS_ADDRESS.
	Addr string
	// Conn is the desktop's own connection, which owns WatcherName and
	// the notification daemon's name.
	Conn *dbus.Conn
	// Notifications records the Notify calls made on the bus.
	Notifications *Notifications

	registered chan string       // bus names of registered items
	signals    chan *dbus.Signal // NewToolTip and dbusmenu signals
}

// StartDesktop starts a private bus (see StartBus), takes WatcherName and
// NotificationsName on it and subscribes to the signals that tell a host to
// re-read an item: NewToolTip, and every dbusmenu signal. Everything stops
// when t ends.
func StartDesktop(t testing.TB) *Desktop {
	t.Helper()
	d := &Desktop{Addr: StartBus(t), registered: make(chan string, 4)}
	d.Conn = Connect(t, d.Addr)
	ownName(t, d.Conn, &watcher{registered: d.registered}, "/StatusNotifierWatcher", WatcherName, WatcherName)
	d.Notifications = newNotifications()
	ownName(t, d.Conn, &notifyServer{n: d.Notifications}, NotificationsPath, NotificationsName, NotificationsName)
	if err := d.Conn.AddMatchSignal(
		dbus.WithMatchInterface(ItemInterface),
		dbus.WithMatchMember("NewToolTip"),
	); err != nil {
		t.Fatalf("subscribe to NewToolTip: %v", err)
	}
	if err := d.Conn.AddMatchSignal(dbus.WithMatchInterface(MenuInterface)); err != nil {
		t.Fatalf("subscribe to dbusmenu signals: %v", err)
	}
	// godbus never blocks on a full channel (it delivers from extra
	// goroutines), so the size only saves goroutines.
	d.signals = make(chan *dbus.Signal, 64)
	d.Conn.Signal(d.signals)
	return d
}

// WaitItem waits for a StatusNotifierItem to register with the watcher and
// for its menu to be built, and returns the item. (fyne.io/systray answers
// GetLayout only once the application's onReady has built the menu.)
func (d *Desktop) WaitItem(t testing.TB) *Item {
	t.Helper()
	var name string
	timeout := time.NewTimer(Timeout)
	defer timeout.Stop()
	select {
	case name = <-d.registered:
	case <-timeout.C:
		t.Fatal("timed out waiting for a StatusNotifierItem to register with " + WatcherName)
	}
	it := &Item{Object: d.Conn.Object(name, ItemPath), signals: d.signals}
	menuPath, ok := it.Property(t, "Menu").Value().(dbus.ObjectPath)
	if !ok {
		t.Fatal("the item's Menu property is not an object path")
	}
	it.Menu = d.Conn.Object(name, menuPath)
	it.Layout(t)
	return it
}

// Item is a registered StatusNotifierItem and its dbusmenu, seen from the
// tray host. Get it from Desktop.WaitItem.
type Item struct {
	// Object is the item at ItemPath on the application's connection.
	Object dbus.BusObject
	// Menu is the item's com.canonical.dbusmenu object.
	Menu dbus.BusObject

	signals <-chan *dbus.Signal
}

// Property returns the item's ItemInterface property name.
func (it *Item) Property(t testing.TB, name string) dbus.Variant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var v dbus.Variant
	if err := it.Object.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, ItemInterface, name).Store(&v); err != nil {
		t.Fatalf("get %s.%s: %v", ItemInterface, name, err)
	}
	return v
}

// Pixmap is one image of an IconPixmap or ToolTip property: W×H pixels in
// ARGB32, network byte order.
type Pixmap struct {
	W, H int32
	Pix  []byte
}

// ToolTip returns the title of the item's ToolTip property, the text a
// panel shows on hover.
func (it *Item) ToolTip(t testing.TB) string {
	t.Helper()
	var tip struct {
		Icon  string
		Image []Pixmap
		Title string
		Text  string
	}
	v := it.Property(t, "ToolTip")
	if err := dbus.Store([]any{v.Value()}, &tip); err != nil {
		t.Fatalf("decode ToolTip %v: %v", v, err)
	}
	return tip.Title
}

// IconPixmap returns the images of the item's IconPixmap property.
func (it *Item) IconPixmap(t testing.TB) []Pixmap {
	t.Helper()
	var icons []Pixmap
	if err := it.Property(t, "IconPixmap").Store(&icons); err != nil {
		t.Fatalf("decode IconPixmap: %v", err)
	}
	return icons
}

// WaitToolTip waits until ok accepts the ToolTip title, re-reading it on
// every NewToolTip or menu signal, and returns it. want describes what ok
// accepts, for the failure message.
func (it *Item) WaitToolTip(t testing.TB, want string, ok func(string) bool) string {
	t.Helper()
	timeout := time.NewTimer(Timeout)
	defer timeout.Stop()
	for {
		got := it.ToolTip(t)
		if ok(got) {
			return got
		}
		select {
		case <-it.signals:
		case <-timeout.C:
			t.Fatalf("ToolTip = %q, want %s (timed out waiting for NewToolTip)", got, want)
		}
	}
}

// MenuEntry is one node of a com.canonical.dbusmenu layout.
type MenuEntry struct {
	// ID is the id Event takes.
	ID int32
	// Props are the entry's properties: "label", "enabled", "visible",
	// "toggle-type", "toggle-state", …; absent ones have their default.
	Props map[string]dbus.Variant
	// Children are the sub-entries, each a variant holding a MenuEntry.
	Children []dbus.Variant
}

// Label returns the "label" property, or "" when there is none.
func (e MenuEntry) Label() string {
	l, _ := e.Props["label"].Value().(string)
	return l
}

// Layout returns every entry of the menu, depth first, root included.
func (it *Item) Layout(t testing.TB) []MenuEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var rev uint32
	var root MenuEntry
	call := it.Menu.CallWithContext(ctx, MenuInterface+".GetLayout", 0, int32(0), int32(-1), []string{})
	if err := call.Store(&rev, &root); err != nil {
		t.Fatalf("GetLayout: %v", err)
	}
	var all []MenuEntry
	var walk func(e MenuEntry)
	walk = func(e MenuEntry) {
		all = append(all, e)
		for _, c := range e.Children {
			var child MenuEntry
			if err := dbus.Store([]any{c.Value()}, &child); err != nil {
				t.Fatalf("decode menu entry %v: %v", c, err)
			}
			walk(child)
		}
	}
	walk(root)
	return all
}

// Entry returns the menu entry labelled label, failing t if there is none.
func (it *Item) Entry(t testing.TB, label string) MenuEntry {
	t.Helper()
	var labels []string
	for _, e := range it.Layout(t) {
		if l := e.Label(); l == label {
			return e
		} else if l != "" {
			labels = append(labels, l)
		}
	}
	t.Fatalf("no menu entry %q in %q", label, labels)
	return MenuEntry{}
}

// WaitLayout waits until ok accepts the menu (every entry, as Layout
// returns it), re-reading it on every dbusmenu or NewToolTip signal, and
// returns it. want describes what ok accepts, for the failure message.
func (it *Item) WaitLayout(t testing.TB, want string, ok func([]MenuEntry) bool) []MenuEntry {
	t.Helper()
	timeout := time.NewTimer(Timeout)
	defer timeout.Stop()
	for {
		entries := it.Layout(t)
		if ok(entries) {
			return entries
		}
		select {
		case <-it.signals:
		case <-timeout.C:
			var labels []string
			for _, e := range entries {
				if l := e.Label(); l != "" {
					labels = append(labels, l)
				}
			}
			t.Fatalf("menu %q, want %s (timed out waiting for a menu signal)", labels, want)
		}
	}
}

// WaitEntry waits until the menu has an entry labelled label that ok
// accepts (see WaitLayout), and returns it.
func (it *Item) WaitEntry(t testing.TB, label, want string, ok func(MenuEntry) bool) MenuEntry {
	t.Helper()
	var found MenuEntry
	it.WaitLayout(t, fmt.Sprintf("an entry %q with %s", label, want), func(entries []MenuEntry) bool {
		for _, e := range entries {
			if e.Label() == label && ok(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// Click clicks the menu entry labelled label: the dbusmenu Event method
// with "clicked", as a panel sends it.
func (it *Item) Click(t testing.TB, label string) {
	t.Helper()
	if err := it.click(t, label); err != nil {
		t.Fatal(err)
	}
}

// ClickExit clicks an entry that ends the application, such as Quit. The
// application may exit before it answers; that NoReply error counts as
// success.
func (it *Item) ClickExit(t testing.TB, label string) {
	t.Helper()
	err := it.click(t, label)
	var derr dbus.Error
	if err == nil || errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.NoReply" {
		return
	}
	t.Fatal(err)
}

func (it *Item) click(t testing.TB, label string) error {
	t.Helper()
	e := it.Entry(t, label)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	call := it.Menu.CallWithContext(ctx, MenuInterface+".Event", 0,
		e.ID, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
	if call.Err != nil {
		return fmt.Errorf("click menu entry %q (id %d): %w", label, e.ID, call.Err)
	}
	return nil
}

// Buffer is an io.Writer that keeps what is written, safe for concurrent
// use: give it to exec.Cmd.Stderr and read it while the child runs. The
// zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// CheckRaces looks for race detector reports in a child's stderr (run it
// with GORACE=exitcode=0 so that reports do not change its exit status).
// Each report containing one of ours (e.g. "ipsync/tray.") fails t; the
// others are logged only. fyne.io/systray v1.12.2 has a race of its own:
// GetLayout reads the menu revision under its menu lock while the refresh it
// schedules 150 ms after the first GetLayout writes it under another lock.
func CheckRaces(t testing.TB, stderr string, ours ...string) {
	t.Helper()
	const start, end = "WARNING: DATA RACE", "=================="
	for rest := stderr; ; {
		i := strings.Index(rest, start)
		if i < 0 {
			return
		}
		report := rest[i:]
		if j := strings.Index(report, end); j >= 0 {
			report = report[:j]
		}
		rest = rest[i+len(start):]
		if mentionsAny(report, ours) {
			t.Errorf("data race in the child:\n%s", report)
		} else {
			t.Logf("data race inside a library, not in %q (ignored):\n%s", ours, report)
		}
	}
}

func mentionsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
