// Package tray shows ipsync's state in the system tray (notification area)
// and in desktop notifications, for both roles: the client, which watches the
// mailbox for the server's address, and the server, which publishes it.
//
// The tray only displays what it is given: the fetcher and the publisher
// describe themselves as a health.Status, main passes it to Tray.SetStatus,
// and the tray sends the user's menu choices back through Actions.
// Everything the tray decides — icon, tooltip, menu labels, which
// notification to show — is computed by a pure function of the Status and
// the time (see model.go and notify.go), so it is tested without a display. The system tray itself is
// fyne.io/systray; notifications use github.com/gen2brain/beeep.
package tray

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"ipsync/autostart"
	"ipsync/health"
)

// Role says which side of ipsync the tray belongs to.
type Role int

const (
	// RoleClient watches the mailbox and shows the server's address.
	RoleClient Role = iota
	// RoleServer publishes the server's public address.
	RoleServer
)

// String returns "client" or "server".
func (r Role) String() string {
	if r == RoleServer {
		return "server"
	}
	return "client"
}

// Actions are the user's menu choices, sent back to the caller. A nil field
// is ignored. They are called on the tray's event goroutine, one at a time:
// they must return promptly (signal a channel, start a goroutine), as the
// menu does not react while one runs.
type Actions struct {
	// FetchNow (client) asks the fetcher to check the mailbox now.
	FetchNow func()
	// PublishNow (server) asks the publisher to check and send now.
	PublishNow func()
	// SetPaused (server) pauses (true) or resumes (false) publishing;
	// keeping the choice across restarts is the publisher's job.
	SetPaused func(paused bool)
	// SignIn (both roles) runs the OAuth2 browser sign-in; the menu shows
	// "Sign in…" only while the Status says SignInNeeded. Each click calls
	// it: it should start the flow in its own goroutine, ignore a click
	// while a flow runs, and report the outcome with the next Status. nil
	// leaves the item disabled; the notification still names the command.
	SignIn func()
	// Quit is called when the user chooses Quit, just before Run returns.
	Quit func()
	// Join (client, Options.NotSetUp) is called for "Join with an
	// invitation…".
	Join func()
	// OpenGuide (client, Options.NotSetUp) is called for "Open the set-up
	// guide".
	OpenGuide func()
}

// Notifier shows a desktop notification. icon is a PNG image.
type Notifier interface {
	Notify(title, message string, icon []byte) error
}

// Autostart reads and changes whether ipsync starts at login.
// *autostart.Entry implements it.
type Autostart interface {
	Enabled() (bool, error)
	SetEnabled(on bool) error
}

var _ Autostart = (*autostart.Entry)(nil)

// Options configure a Tray. The zero value of each field means its default.
type Options struct {
	// Role selects the client or server menu.
	Role Role
	// Name is the server's name shown until a Status names it;
	// "" = "ipsync".
	Name string
	// ConfigPath is the configuration file opened by "Open config" and
	// passed with --config to the program started at login; "" disables
	// "Open config" and starts at login without --config.
	ConfigPath string
	// NoNotify turns desktop notifications off (address changes, stale,
	// recovered, errors). Failures of menu actions are still reported.
	NoNotify bool
	// NotSetUp (client) shows the first-run state: no config yet, so
	// instead of an address the menu offers Actions.Join and
	// Actions.OpenGuide. Statuses are ignored.
	NotSetUp bool
	// Actions receive the user's menu choices.
	Actions Actions
	// Notifier shows notifications; nil = beeep (DBus on Linux, toasts on
	// Windows, Notification Center on macOS).
	Notifier Notifier
	// Autostart backs the "Start at login" checkbox; nil = the operating
	// system's entry named "ipsync-<role>" running this executable with
	// "<role> [--config ConfigPath]". If that cannot be set up the item is
	// disabled.
	Autostart Autostart
	// Clipboard copies text; nil = github.com/atotto/clipboard (xclip,
	// xsel or wl-copy on Linux).
	Clipboard func(text string) error
	// OpenFile opens a file in the user's default application; nil =
	// xdg-open (Linux), open (macOS), or rundll32 url.dll,FileProtocolHandler
	// (Windows).
	OpenFile func(path string) error
	// Now returns the current time; nil = time.Now.
	Now func() time.Time
	// RefreshEvery is how often ages ("3 min ago") are refreshed;
	// 0 = 30 seconds.
	RefreshEvery time.Duration
	// Logger receives diagnostics; nil = discard.
	Logger *slog.Logger
}

// ErrUnavailable is returned by Run when no system tray can be shown (see
// Available).
var ErrUnavailable = errors.New("tray: no system tray available")

// Tray is the tray icon, menu and notifications of one role. Create it with
// New; SetStatus may be called from any goroutine at any time, before or
// during Run.
type Tray struct {
	opts     Options
	log      *slog.Logger
	notifier Notifier
	auto     Autostart // nil when start at login is unavailable

	mu      sync.Mutex
	status  health.Status
	changed chan struct{} // one pending "status changed" signal
	notes   chan<- notice // while Run runs: the notification queue

	running atomic.Bool
}

// New returns a Tray for opts. It does no I/O except locating the running
// executable for the default Autostart.
func New(opts Options) *Tray {
	t := &Tray{opts: opts, changed: make(chan struct{}, 1)}
	if t.opts.Name == "" {
		t.opts.Name = "ipsync"
	}
	if t.opts.Now == nil {
		t.opts.Now = time.Now
	}
	if t.opts.RefreshEvery <= 0 {
		t.opts.RefreshEvery = 30 * time.Second
	}
	t.log = opts.Logger
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.notifier = opts.Notifier
	if t.notifier == nil {
		t.notifier = newBeeep()
	}
	if t.opts.Clipboard == nil {
		t.opts.Clipboard = writeClipboard
	}
	if t.opts.OpenFile == nil {
		t.opts.OpenFile = Open
	}
	if t.opts.ConfigPath != "" {
		if abs, err := filepath.Abs(t.opts.ConfigPath); err == nil {
			t.opts.ConfigPath = abs
		}
	}
	t.auto = opts.Autostart
	if t.auto == nil {
		role := t.opts.Role.String()
		args := []string{role}
		if t.opts.ConfigPath != "" {
			args = append(args, "--config", t.opts.ConfigPath)
		}
		entry, err := autostart.New(autostart.Options{
			Name:        "ipsync-" + role,
			DisplayName: "ipsync " + role,
			Comment:     "Keeps the server's public address up to date",
			Args:        args,
		})
		if err != nil {
			t.log.Warn("start at login is unavailable", "err", err)
		} else {
			t.auto = entry
		}
	}
	return t
}

// SetStatus replaces the status shown. It never blocks: when several
// statuses arrive faster than the tray redraws, only the newest is shown
// (and notifications compare it with the last one shown).
func (t *Tray) SetStatus(s health.Status) {
	t.mu.Lock()
	t.status = s
	t.mu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Tell shows a desktop notification on the program's behalf, not for a
// status change: why a menu action could not be done, say. It never
// blocks; a notice told while Run is not running is only logged.
func (t *Tray) Tell(title, body string) {
	t.mu.Lock()
	notes := t.notes
	t.mu.Unlock()
	n := notice{kind: "action", title: title, body: body, icon: t.opts.Role.String() + "-error"}
	if notes != nil {
		select {
		case notes <- n:
			return
		default:
		}
	}
	t.log.Warn("desktop notification not shown", "title", title, "body", body)
}

func (t *Tray) latest() health.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

// Run shows the tray icon and blocks until the user chooses Quit or ctx is
// done; it returns nil then. It must be called from the main goroutine
// (macOS requires it) and at most once per process (fyne.io/systray keeps
// global state). It returns an error wrapping ErrUnavailable at once when
// there is no session bus on Linux, or on macOS in a build without cgo.
func (t *Tray) Run(ctx context.Context) error {
	if err := checkRunnable(ctx); err != nil {
		return err
	}
	return t.run(ctx, newSystrayUI("ipsync-"+t.opts.Role.String()))
}

// run drives u until ctx is done or the user quits.
func (t *Tray) run(ctx context.Context, u ui) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("tray: Run called more than once")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	notes := make(chan notice, 16)
	notifyDone := make(chan struct{})
	go func() {
		defer close(notifyDone)
		t.notifyLoop(ctx, notes)
	}()
	t.mu.Lock()
	t.notes = notes
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.notes = nil
		t.mu.Unlock()
	}()
	// Quit only once the tray is ready: on Windows, systray.Quit before
	// systray.Run has made its window posts to no window and is lost, and
	// the message loop would then run forever.
	ready := make(chan struct{})
	runReturned := make(chan struct{})
	quitDone := make(chan struct{})
	var (
		mu       sync.Mutex
		started  bool
		stopped  bool
		loopDone = make(chan struct{})
	)
	go func() {
		defer close(quitDone)
		<-ctx.Done()
		select {
		case <-ready:
			// No redraw may reach the tray after Quit: on Linux, Quit
			// closes the bus connection and a SetIcon after it panics.
			mu.Lock()
			wait := started
			mu.Unlock()
			if wait {
				<-loopDone
			}
			u.quit()
		case <-runReturned:
		}
	}()

	u.run(func() {
		mu.Lock()
		defer mu.Unlock()
		defer close(ready)
		if stopped {
			return
		}
		started = true
		c := t.newController(u, notes, cancel)
		go func() {
			defer close(loopDone)
			c.loop(ctx)
		}()
	})
	close(runReturned)
	cancel()
	mu.Lock()
	stopped = true
	wasStarted := started
	mu.Unlock()
	if wasStarted {
		<-loopDone
	}
	<-quitDone
	select {
	case <-notifyDone:
	case <-time.After(2 * time.Second):
		// A notification daemon that does not answer must not keep the
		// program from exiting.
		t.log.Warn("desktop notification still pending at exit")
	}
	return nil
}
