package tray

import (
	"context"
	"time"

	"ipsync/health"
)

// ui is the little of a system tray library the tray needs. The real one
// wraps fyne.io/systray; tests use a fake.
type ui interface {
	// run calls onReady once the tray can be built, then blocks until
	// quit is called.
	run(onReady func())
	// quit ends run. It may be called more than once, and after run ended.
	quit()
	// setIcon shows the icons package image called name.
	setIcon(name string)
	setTooltip(text string)
	// addItem appends a menu entry.
	addItem(label string, checkbox bool) menuItem
	addSeparator()
	// opened receives when the user opens the menu, where the library
	// reports it; nil otherwise.
	opened() <-chan struct{}
}

// menuItem is one menu entry of a ui.
type menuItem interface {
	setLabel(string)
	setEnabled(bool)
	setChecked(bool)
	setVisible(bool)
	// clicked receives once per click.
	clicked() <-chan struct{}
}

// controller owns the menu; all its fields are used only by the event
// goroutine.
type controller struct {
	t     *Tray
	u     ui
	notes chan<- notice
	stop  func() // ends Run

	env     env
	status  health.Status
	tr      tracker
	shown   model
	entries []menuItem // parallel to shown.Items; nil for separators
}

// newController builds the menu for the current status. It runs inside the
// ui's onReady callback.
func (t *Tray) newController(u ui, notes chan<- notice, stop func()) *controller {
	c := &controller{
		t:     t,
		u:     u,
		notes: notes,
		stop:  stop,
		env: env{
			role:      t.opts.Role,
			name:      t.opts.Name,
			hasConfig: t.opts.ConfigPath != "",
			canSignIn: t.opts.Actions.SignIn != nil,
			notSetUp:  t.opts.NotSetUp && t.opts.Role == RoleClient,
		},
		tr: tracker{loginCmd: loginCommand(t.opts.ConfigPath)},
	}
	c.readAutostart()
	c.status = t.latest()
	// The first status is the baseline for notifications, not news.
	c.tr.next(c.env.role, c.env.name, c.status, t.opts.Now(), true)
	m := view(c.env, c.status, t.opts.Now())
	u.setIcon(m.Icon)
	u.setTooltip(m.Tooltip)
	c.entries = make([]menuItem, len(m.Items))
	for i, it := range m.Items {
		if it.ID == itemSeparator {
			u.addSeparator()
			continue
		}
		e := u.addItem(it.Label, it.Checkbox)
		if it.Checked {
			e.setChecked(true)
		}
		if !it.Enabled {
			e.setEnabled(false)
		}
		if it.Hidden {
			e.setVisible(false)
		}
		c.entries[i] = e
	}
	c.shown = m
	return c
}

// loop handles status changes, clicks and the refresh ticker until ctx is
// done.
// startupResend is how long after start the tray sends its icon, tooltip
// and menu again (see loop).
const startupResend = time.Second

func (c *controller) loop(ctx context.Context) {
	tick := time.NewTicker(c.t.opts.RefreshEvery)
	defer tick.Stop()
	// fyne.io/systray runs onReady while it is still exporting the item's
	// properties, and a tooltip or icon set in that window is kept in
	// memory but never reaches the bus. Send everything again once the
	// export is surely done instead of waiting for the first refresh.
	settle := time.NewTimer(startupResend)
	defer settle.Stop()
	clicks := make(chan itemID)
	for i, e := range c.entries {
		if e == nil {
			continue
		}
		id := c.shown.Items[i].ID
		ch := e.clicked()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-ch:
					if !ok {
						return
					}
					select {
					case clicks <- id:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	opened := c.u.opened()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.t.changed:
			c.status = c.t.latest()
			now := c.t.opts.Now()
			for _, n := range c.tr.next(c.env.role, c.env.name, c.status, now, c.t.opts.NoNotify) {
				c.notify(n)
			}
			c.redraw(false)
		case <-tick.C:
			// Ages change with time; the icon and tooltip are sent again
			// too, in case the tray host missed an update.
			c.redraw(true)
		case <-settle.C:
			c.redraw(true)
		case <-opened:
			c.readAutostart()
			c.redraw(false)
		case id := <-clicks:
			c.click(id)
		}
	}
}

// redraw applies the model of the current status, changing only what
// differs unless force is set (which resends the icon and tooltip).
func (c *controller) redraw(force bool) {
	m := view(c.env, c.status, c.t.opts.Now())
	if force || m.Icon != c.shown.Icon {
		c.u.setIcon(m.Icon)
	}
	if force || m.Tooltip != c.shown.Tooltip {
		c.u.setTooltip(m.Tooltip)
	}
	for i, it := range m.Items {
		e, old := c.entries[i], c.shown.Items[i]
		if e == nil {
			continue
		}
		if it.Label != old.Label {
			e.setLabel(it.Label)
		}
		if it.Enabled != old.Enabled {
			e.setEnabled(it.Enabled)
		}
		if it.Checked != old.Checked {
			e.setChecked(it.Checked)
		}
		if it.Hidden != old.Hidden {
			e.setVisible(!it.Hidden)
		}
	}
	c.shown = m
}

// click performs the menu choice id.
func (c *controller) click(id itemID) {
	a := c.t.opts.Actions
	log := c.t.log
	switch id {
	case itemCopy, itemCopy6:
		addr := c.status.IPv4
		if id == itemCopy6 || !addr.IsValid() {
			addr = c.status.IPv6
		}
		if !addr.IsValid() {
			return
		}
		if err := c.t.opts.Clipboard(addr.String()); err != nil {
			log.Warn("copy to clipboard failed", "err", err)
			c.notify(notice{kind: "action", title: "Could not copy the address",
				body: addr.String() + " — " + err.Error(), icon: c.env.role.String() + "-error"})
			return
		}
		log.Info("address copied to clipboard", "addr", addr)
	case itemSignIn:
		if a.SignIn != nil {
			a.SignIn()
		}
	case itemFetch:
		if a.FetchNow != nil {
			a.FetchNow()
		}
	case itemPublish:
		if a.PublishNow != nil {
			a.PublishNow()
		}
	case itemPause:
		paused := !c.status.Paused
		if a.SetPaused != nil {
			a.SetPaused(paused)
		}
		// Show the choice at once; the publisher's next status confirms it.
		c.status.Paused = paused
		c.redraw(false)
	case itemOpenConfig:
		path := c.t.opts.ConfigPath
		if path == "" {
			return
		}
		if err := c.t.opts.OpenFile(path); err != nil {
			log.Warn("open config failed", "path", path, "err", err)
			c.notify(notice{kind: "action", title: "Could not open the configuration",
				body: path + " — " + err.Error(), icon: c.env.role.String() + "-error"})
		}
	case itemAutostart:
		c.toggleAutostart()
		c.redraw(false)
	case itemJoin:
		if a.Join != nil {
			a.Join()
		}
	case itemGuide:
		if a.OpenGuide != nil {
			a.OpenGuide()
		}
	case itemQuit:
		log.Info("quit from the menu")
		if a.Quit != nil {
			a.Quit()
		}
		c.stop()
	}
}

// readAutostart refreshes the checkbox state from the system.
func (c *controller) readAutostart() {
	auto := c.t.auto
	if auto == nil {
		c.env.autostartOK, c.env.autostartOn = false, false
		return
	}
	on, err := auto.Enabled()
	if err != nil {
		c.t.log.Warn("cannot read the start at login setting", "err", err)
		c.env.autostartOK, c.env.autostartOn = false, false
		return
	}
	c.env.autostartOK, c.env.autostartOn = true, on
}

func (c *controller) toggleAutostart() {
	c.readAutostart()
	if !c.env.autostartOK {
		return
	}
	want := !c.env.autostartOn
	if err := c.t.auto.SetEnabled(want); err != nil {
		c.t.log.Warn("cannot change the start at login setting", "want", want, "err", err)
		c.notify(notice{kind: "action", title: "Could not change Start at login",
			body: err.Error(), icon: c.env.role.String() + "-error"})
	}
	c.readAutostart()
}

// notify queues n without blocking; if the queue is full the notification
// is dropped (and logged).
func (c *controller) notify(n notice) {
	select {
	case c.notes <- n:
	default:
		c.t.log.Warn("desktop notification dropped: too many pending", "kind", n.kind)
	}
}
