package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/term"

	"ipsync/dialog"
	"ipsync/tray"
)

// guideURL is the web address of the set-up guide (docs/deploy.md), set
// with -ldflags "-X main.guideURL=…" by a release that publishes its docs;
// "" = use the copy installed beside the program only.
var guideURL = ""

// firstRunPoll is how often the first-run tray looks for a config that a
// join (from its menu, a double-click or a terminal) has written.
var firstRunPoll = time.Second

// firstRunClient shows the tray in its "not set up" state when the client
// has no config yet: its menu offers "Join with an invitation…" and the
// set-up guide. It returns when the user quits, or once a config is there
// and no join is still at work on it: it then starts the client (which ends
// at once if join started one already) so the real icon takes its place,
// however the join was run. Without a desktop it returns the config error
// with the join hint.
func firstRunClient(ctx context.Context, e *env, log *slog.Logger, headless bool, cfgErr error) error {
	hint := withCode(exitUsage, fmt.Errorf("%w\nthis PC is not set up yet: run `ipsync join FILE` with the invitation (.ipsync file) from your administrator", cfgErr))
	if headless {
		return hint
	}
	if ok, why := tray.Available(ctx); !ok {
		log.Info(why)
		return hint
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	path, err := e.configFile()
	if err != nil {
		return err
	}
	release, err := holdLock(ctx, path, "first-run", 50*time.Millisecond)
	switch {
	case errors.Is(err, errAlreadyRunning):
		log.Info("the set-up tray is already showing; this one ends")
		fmt.Fprintln(e.stderr, "ipsync: the set-up tray (\"not set up\") is already showing; this one ends")
		return nil
	case err != nil:
		log.Warn("cannot make sure only one set-up tray shows", "err", err)
	default:
		defer release()
	}
	go func() {
		if waitForJoined(ctx, path, firstRunPoll) {
			// A join from the desktop started the client already.
			if !lockHeld(ctx, path, "client") {
				if err := startTrayDetached(e); err != nil {
					log.Warn("cannot start the client after the join", "err", err)
				}
			}
			cancel()
		}
	}()
	var t *tray.Tray
	t = tray.New(tray.Options{
		Role:     tray.RoleClient,
		NotSetUp: true,
		Logger:   log.With("part", "tray"),
		Actions: tray.Actions{
			// Actions must return promptly: the work goes on beside the menu.
			Join: func() {
				go func() {
					// A join that worked wrote the config: waitForJoined
					// sees it and hands over to the client.
					joinFromTray(ctx, log, t.Tell)
				}()
			},
			OpenGuide: func() { go openGuide(ctx, log) },
		},
	})
	log.Info("no config yet: showing the tray's set-up menu", "err", cfgErr)
	if err := t.Run(ctx); err != nil && ctx.Err() == nil {
		return hint
	}
	return nil
}

// waitForJoined reports, once a file is at path and no join holds its
// "joining" lock, that the PC is set up; false when ctx ends first.
func waitForJoined(ctx context.Context, path string, every time.Duration) bool {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil && !lockHeld(ctx, path, "joining") {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// joinFromTray asks for the invitation file and runs `ipsync join FILE`
// as a separate process from the desktop, so it asks for the passphrase in
// a dialog, reports in a dialog and starts the new tray.
func joinFromTray(ctx context.Context, log *slog.Logger, tell func(title, body string)) {
	path, err := dialog.OpenFile(ctx, "ipsync: choose the invitation (.ipsync file)", "*.ipsync", downloadsDir())
	switch {
	case errors.Is(err, dialog.ErrCanceled):
		return
	case errors.Is(err, dialog.ErrUnavailable):
		// No dialog program: a notification is all there is to say it with.
		log.Warn("cannot show the file chooser", "err", err)
		tell("ipsync: cannot show a file chooser", "Install zenity and start ipsync again; or run `ipsync join FILE` in a terminal, or double-click the invitation file.")
		return
	case err != nil:
		log.Warn("cannot show the file chooser", "err", err)
		_ = dialog.Error(ctx, "ipsync", "Cannot show a file chooser ("+err.Error()+"). Run `ipsync join FILE` in a terminal, or double-click the invitation file.")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		log.Warn("cannot find the program to run join", "err", err)
		return
	}
	// Not bound to ctx: this tray ends once the config is written, and the
	// join must go on to its check, login entry, tray and message.
	cmd := exec.Command(exe, "join", path)
	if err := cmd.Run(); err != nil {
		log.Warn("join failed", "file", path, "err", err)
	}
}

// downloadsDir is where a saved mail attachment usually is: the Downloads
// folder in the user's home when there is one, else the home folder. On
// Windows it is "" (the chooser's own start, the folder last used): started
// in a folder, Wine's chooser ignored Return in its file name field, and a
// start that cannot be tested is not taken.
func downloadsDir() string {
	if runtime.GOOS == "windows" {
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	if fi, err := os.Stat(filepath.Join(home, "Downloads")); err == nil && fi.IsDir() {
		return filepath.Join(home, "Downloads")
	}
	return home
}

// openGuide opens the set-up guide: the copy of docs/deploy.md installed
// with the program (the archives' docs/, the .deb's /usr/share/doc/ipsync,
// the .msi's docs\), else guideURL, else it says where to find it.
func openGuide(ctx context.Context, log *slog.Logger) {
	if p := localGuide(); p != "" {
		err := tray.Open(p)
		if err == nil {
			return
		}
		log.Warn("cannot open the set-up guide", "path", p, "err", err)
	}
	if guideURL != "" {
		if err := tray.Open(guideURL); err == nil {
			return
		}
	}
	_ = dialog.Info(ctx, "ipsync: set-up guide", "Ask your administrator for an invitation: a file ending in .ipsync and its passphrase. Then choose \"Join with an invitation…\" in the ipsync menu, or double-click the file. The full guide is docs/deploy.md in the ipsync release.")
}

// localGuide returns the path of an installed deploy.md, or "".
func localGuide() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	dir := filepath.Dir(exe)
	for _, p := range []string{
		filepath.Join(dir, "docs", "deploy.md"),
		filepath.Join(dir, "..", "share", "doc", "ipsync", "deploy.md"),
	} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// firstRunServer runs `ipsync init` when `ipsync server` finds no config
// and a person is at a terminal; init ends by saying how to start the
// server. It returns handled=false when there is no terminal (a service, a
// script), so the caller reports the missing config as usual.
func firstRunServer(ctx context.Context, e *env, _ error) (handled bool, err error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) || !term.IsTerminal(int(os.Stderr.Fd())) {
		return false, nil
	}
	fmt.Fprintf(e.stderr, "ipsync: no server config yet: starting `ipsync init` to set this machine up.\n\n")
	var args []string
	if e.configPath != "" {
		args = []string{"--config", e.configPath}
	}
	return true, runInit(ctx, e, args)
}
