package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"ipsync/dialog"
	"ipsync/statefile"
	"ipsync/tray"
)

// guideURL is the web address of the set-up guide (docs/deploy.md), set
// with -ldflags "-X main.guideURL=…" by a release that publishes its docs;
// "" = use the copy installed beside the program only.
var guideURL = ""

// firstRunPoll is how often the first-run tray looks for a config that a
// join started elsewhere (a double-click, a terminal) has written.
var firstRunPoll = time.Second

// firstRunLock names the lock the first-run tray holds beside the config
// it waits for: join sees it held and starts the tray that replaces it.
func firstRunLock(configPath string) string { return configPath + ".first-run" }

// firstRunShowing reports whether a first-run tray is waiting for the
// config at configPath (its lock is held).
func firstRunShowing(ctx context.Context, configPath string) bool {
	// The lock's file stays once made; without it, no tray ever waited
	// (and nothing is created here for a join that may yet fail).
	if _, err := os.Stat(firstRunLock(configPath) + ".lock"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	unlock, err := statefile.Lock(ctx, firstRunLock(configPath))
	if err != nil {
		return errors.Is(err, context.DeadlineExceeded)
	}
	_ = unlock()
	return false
}

// firstRunClient shows the tray in its "not set up" state when the client
// has no config yet: its menu offers "Join with an invitation…" and the
// set-up guide. It returns when the user quits, or once a config is there
// (a join from its menu, a double-click or a terminal wrote it; join starts
// the tray that takes over, seeing this one's lock). Without a desktop it
// returns the config error with the join hint.
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
	unlock, err := statefile.Lock(ctx, firstRunLock(path))
	if err != nil {
		log.Warn("another first-run tray may be showing", "err", err)
	} else {
		defer unlock()
	}
	go func() {
		watchForConfig(ctx, path, firstRunPoll)
		cancel()
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
					if joinFromTray(ctx, log, t.Tell) {
						cancel() // the joined client's tray replaces this one
					}
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

// watchForConfig returns when a file is at path or ctx ends.
func watchForConfig(ctx context.Context, path string, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// joinFromTray asks for the invitation file and runs `ipsync join FILE`
// as a separate process from the desktop, so it asks for the passphrase in
// a dialog, reports in a dialog and starts the new tray. It reports
// whether the join succeeded.
func joinFromTray(ctx context.Context, log *slog.Logger, tell func(title, body string)) bool {
	path, err := dialog.OpenFile(ctx, "ipsync: choose the invitation (.ipsync file)", "*.ipsync", downloadsDir())
	switch {
	case errors.Is(err, dialog.ErrCanceled):
		return false
	case errors.Is(err, dialog.ErrUnavailable):
		// No dialog program: a notification is all there is to say it with.
		log.Warn("cannot show the file chooser", "err", err)
		tell("ipsync: cannot show a file chooser", "Install zenity and start ipsync again; or run `ipsync join FILE` in a terminal, or double-click the invitation file.")
		return false
	case err != nil:
		log.Warn("cannot show the file chooser", "err", err)
		_ = dialog.Error(ctx, "ipsync", "Cannot show a file chooser ("+err.Error()+"). Run `ipsync join FILE` in a terminal, or double-click the invitation file.")
		return false
	}
	exe, err := os.Executable()
	if err != nil {
		log.Warn("cannot find the program to run join", "err", err)
		return false
	}
	cmd := exec.CommandContext(ctx, exe, "join", path)
	if err := cmd.Run(); err != nil {
		log.Warn("join failed", "file", path, "err", err)
		return false
	}
	return true
}

// downloadsDir is where a saved mail attachment usually is: the Downloads
// folder in the user's home when there is one, else the home folder.
func downloadsDir() string {
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
