//go:build !darwin || cgo

package tray

import (
	"runtime"

	"fyne.io/systray"

	"ipsync/icons"
)

// systrayUI is the ui over fyne.io/systray. Its methods are called from one
// goroutine at a time (onReady, then the controller's loop).
type systrayUI struct {
	id string // e.g. "ipsync-client"
}

var _ ui = systrayUI{}

func newSystrayUI(id string) ui { return systrayUI{id: id} }

func (u systrayUI) run(onReady func()) {
	// The title set before Run becomes the StatusNotifierItem's Id and
	// Title on Linux; hosts use the Id to remember the icon's placement.
	// Windows ignores it, and macOS would show it in the menu bar.
	if runtime.GOOS != "darwin" {
		systray.SetTitle(u.id)
	}
	systray.Run(onReady, nil)
}

func (systrayUI) quit() { systray.Quit() }

func (systrayUI) setIcon(name string) { systray.SetIcon(icons.For(name)) }

// setTooltip sets the ToolTip property on Linux. The Title stays the id:
// systray reads it as the item's Id when it first exports the item, which
// may happen after the first tooltip is set.
func (systrayUI) setTooltip(text string) { systray.SetTooltip(text) }

func (systrayUI) addItem(label string, checkbox bool) menuItem {
	if checkbox {
		return systrayItem{systray.AddMenuItemCheckbox(label, "", false)}
	}
	return systrayItem{systray.AddMenuItem(label, "")}
}

func (systrayUI) addSeparator() { systray.AddSeparator() }

func (systrayUI) opened() <-chan struct{} { return systray.TrayOpenedCh }

type systrayItem struct{ m *systray.MenuItem }

func (i systrayItem) setLabel(s string) { i.m.SetTitle(s) }

func (i systrayItem) setEnabled(on bool) {
	if on {
		i.m.Enable()
	} else {
		i.m.Disable()
	}
}

func (i systrayItem) setChecked(on bool) {
	if on {
		i.m.Check()
	} else {
		i.m.Uncheck()
	}
}

func (i systrayItem) setVisible(on bool) {
	if on {
		i.m.Show()
	} else {
		i.m.Hide()
	}
}

func (i systrayItem) clicked() <-chan struct{} { return i.m.ClickedCh }
