package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"ipsync/autostart"
	"ipsync/config"
	"ipsync/dialog"
	"ipsync/enrol"
)

const joinSynopsis = `ipsync join FILE [--passphrase-file F] [--force] [--start] [--config F]

Sets this PC up as a client from an invitation made by ` + "`ipsync invite`" + ` on
the server. It asks for the invitation's passphrase (on the terminal, or in
a dialog when started from the desktop, e.g. by double-clicking the file),
stores the secrets in the OS keyring (or in files of mode 0600 beside the
config when there is no keyring), writes the config (default path below;
never over an existing one without --force), checks the mailbox, and turns
on start at login. Started from the desktop, or with --start, it then
starts the tray; from a terminal or with --passphrase-file (scripts) it
returns when done. A "not set up" tray showing meanwhile gives way to the
client once join is done.

Exit codes: 0 joined, 2 bad command line or a config is already there,
3 joined but the mailbox check failed, 4 this computer failed, 5 wrong
passphrase, 6 the file is damaged or not an invitation, 7 the invitation is
for another role.`

// Exit codes of join beyond the common ones; scripts tell the user's
// mistakes apart by them.
const (
	exitWrongPassphrase = 5
	exitBadInvitation   = 6
	exitOtherRole       = 7
)

// joinTries is how many passphrases a person may type before join gives up.
const joinTries = 3

// Seams for tests: whether join was started from the desktop rather than
// a terminal, and how the tray is started in the background.
var (
	startedFromDesktop = defaultStartedFromDesktop
	startDetached      = startDetachedProcess
)

// defaultStartedFromDesktop is true when neither standard input nor
// standard error is a terminal: a double-clicked file or a menu item. (On
// Windows, console_windows.go attaches a console only when started from
// one.)
func defaultStartedFromDesktop() bool {
	return !term.IsTerminal(int(os.Stdin.Fd())) && !term.IsTerminal(int(os.Stderr.Fd()))
}

func runJoin(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("join", joinSynopsis, flagConfig)
	passFile := fs.String("passphrase-file", "", "read the passphrase from `FILE` instead of asking")
	force := fs.Bool("force", false, "replace an existing config")
	start := fs.Bool("start", false, "start the tray when done, even from a terminal")
	pos, err := e.parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("join takes one invitation FILE (made by `ipsync invite` on the server), got %d arguments", len(pos))
	}
	// A passphrase file means a script (a deployment tool): no dialogs, and
	// no tray unless --start.
	desktop := *passFile == "" && startedFromDesktop()
	// While this runs, a first-run tray waiting for the config leaves it
	// alone; it starts the client when join is done.
	// It lets go before its last message, so the new icon is alone.
	doneJoining := func() {}
	if path, perr := e.configFile(); perr == nil {
		if release, lerr := holdLock(ctx, path, "joining", 5*time.Second); lerr == nil {
			doneJoining = release
			defer release()
		} else {
			e.logger(false).Warn("cannot tell a waiting set-up tray that a join is at work", "err", lerr)
		}
	}
	err = e.join(ctx, pos[0], *passFile, *force, desktop)
	var ee *exitError
	switch {
	case err == nil:
		if desktop || *start {
			if serr := startTrayDetached(e); serr != nil {
				err = serr
			}
		}
		doneJoining()
		if desktop && err == nil {
			_ = dialog.Info(ctx, "ipsync", "This PC is set up. The ipsync icon in the tray shows the server's address.")
		}
	case errors.As(err, &ee) && ee.code == exitNetwork && desktop:
		// Joined, but the check failed: the tray shows what goes on.
		_ = startTrayDetached(e)
		doneJoining()
	}
	if err != nil && desktop && !errors.Is(err, dialog.ErrCanceled) {
		_ = dialog.Error(ctx, "ipsync: joining failed", err.Error())
	}
	if errors.Is(err, dialog.ErrCanceled) {
		return usageErr("canceled: nothing was written")
	}
	return err
}

// join does the work of runJoin up to and including the check.
func (e *env) join(ctx context.Context, file, passFile string, force, desktop bool) error {
	path, err := e.configFile()
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil && !force {
		return usageErr("%s already holds a config; this PC is set up already. To replace it, run again with --force (or move the file away)", path)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return usageErr("read the invitation: %v", err)
	}
	b, err := e.openInvitation(ctx, file, data, passFile, desktop)
	if err != nil {
		return err
	}
	mailPassword, err := e.mailboxPassword(ctx, b, desktop)
	if err != nil {
		return err
	}
	log := e.logger(false)
	if err := e.writeJoined(b, file, path, mailPassword, force, log); err != nil {
		return err
	}
	if err := enableAutostart(path, e.configPath != ""); err != nil {
		fmt.Fprintf(e.stdout, "start at login could not be turned on (%v); turn it on from the tray menu\n", err)
	} else {
		fmt.Fprintln(e.stdout, "start at login: on")
	}
	failed, err := checkWritten(ctx, e.stdout, path, config.RoleClient, log)
	if err != nil {
		return err
	}
	if failed > 0 {
		return withCode(exitNetwork, fmt.Errorf("this PC is set up, but the mailbox check failed (see above); fix it and run `ipsync check`"))
	}
	fmt.Fprintf(e.stdout, "joined %q: this PC now reads the server's address from %s\n", b.Name, b.Mail.Address)
	return nil
}

// mailboxPassword is the mailbox password the invitation carries or, when
// it was made with --mailbox-password ask, the one the user types; "" when
// it was made with omit.
func (e *env) mailboxPassword(ctx context.Context, b enrol.Bundle, desktop bool) (string, error) {
	switch b.Mail.PasswordMode {
	case enrol.PasswordInclude:
		return b.Mail.Password, nil
	case enrol.PasswordAsk:
		p, err := e.askSecret(ctx, desktop, "ipsync: mailbox password", "Password of "+b.Mail.Username,
			"this invitation asks for the mailbox password: run join from a terminal or the desktop, or ask for an invitation made with --mailbox-password include or omit")
		if err != nil {
			return "", err
		}
		if p == "" {
			return "", usageErr("no mailbox password given: nothing was written")
		}
		return p, nil
	}
	return "", nil
}

// writeJoined stores the invitation's secrets (keyring or 0600 files) and
// CA certificate and writes the client config at path; on any failure it
// takes the secrets back, so nothing is left.
func (e *env) writeJoined(b enrol.Bundle, file, path, mailPassword string, force bool, log *slog.Logger) error {
	st := &secretStore{dir: filepath.Dir(path), log: log}
	key, err := st.put(b.Name+" client key", b.Name+".client.key", b.ClientKey)
	if err != nil {
		return err
	}
	password := st.ref(b.Mail.Username, b.Name+".password")
	if mailPassword != "" {
		if password, err = st.put(b.Mail.Username, b.Name+".password", mailPassword); err != nil {
			st.undo()
			return err
		}
	}
	caFile := ""
	if b.CAPEM != "" {
		caFile = b.Name + "-ca.pem"
	}
	cfg, err := b.ClientConfig(path, password, key, caFile)
	if err != nil {
		st.undo()
		return withCode(exitBadInvitation, err)
	}
	if caFile != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			st.undo()
			return usageErr("create %s: %v", filepath.Dir(path), err)
		}
		if err := st.writeFile(filepath.Join(filepath.Dir(path), caFile), []byte(b.CAPEM)); err != nil {
			st.undo()
			return usageErr("write the CA certificate: %v", err)
		}
	}
	out, err := cfg.Marshal(fmt.Sprintf("ipsync client config, written by `ipsync join %s` on %s.\nSecrets are references (keyring: or file:); see config.example.yaml for every key.", filepath.Base(file), time.Now().Format("2006-01-02")))
	if err == nil {
		err = config.WriteFile(path, out, force)
	}
	if err != nil {
		st.undo()
		if errors.Is(err, config.ErrExists) {
			return usageErr("%v; run again with --force to replace it", err)
		}
		return usageErr("%v", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (secrets in %s)\n", path, st.where())
	if b.Mail.PasswordMode == enrol.PasswordOmit {
		fmt.Fprintf(e.stdout, "the invitation carries no mailbox password: store it as %s before the client can sign in\n", password)
	}
	return nil
}

// openInvitation decrypts data with the passphrase from passFile, or asks
// for it (up to joinTries times when a person types it).
func (e *env) openInvitation(ctx context.Context, file string, data []byte, passFile string, desktop bool) (enrol.Bundle, error) {
	tries := joinTries
	if passFile != "" {
		tries = 1
	}
	for i := 1; ; i++ {
		var pass string
		if passFile != "" {
			p, err := os.ReadFile(passFile)
			if err != nil {
				return enrol.Bundle{}, usageErr("--passphrase-file: %v", err)
			}
			pass = strings.TrimRight(string(p), "\r\n")
		} else {
			// Short: the Windows dialog shows one line of about 40 characters.
			prompt := "Passphrase of " + filepath.Base(file)
			if i > 1 {
				prompt = "Wrong passphrase. Try again"
			}
			p, err := e.askSecret(ctx, desktop, "ipsync: join "+filepath.Base(file), prompt, "pass --passphrase-file FILE")
			if err != nil {
				return enrol.Bundle{}, err
			}
			pass = strings.TrimSpace(p)
		}
		b, err := enrol.Open(bytes.NewReader(data), pass, string(config.RoleClient))
		var re *enrol.RoleError
		switch {
		case err == nil:
			return b, nil
		case errors.Is(err, enrol.ErrWrongPassphrase):
			if i < tries {
				continue
			}
			return b, &exitError{exitWrongPassphrase, fmt.Errorf("%s: %w; nothing was written. Ask the administrator for the passphrase printed by `ipsync invite` (it is case-sensitive)", file, err)}
		case errors.Is(err, enrol.ErrDamaged):
			return b, &exitError{exitBadInvitation, fmt.Errorf("%s: %w; nothing was written. Ask for the file again (send it as an attachment, not pasted into a message)", file, err)}
		case errors.As(err, &re):
			return b, &exitError{exitOtherRole, fmt.Errorf("%s: %w; nothing was written. On a staff PC use an invitation made by `ipsync invite`", file, err)}
		case errors.Is(err, enrol.ErrNotInvitation):
			return b, &exitError{exitBadInvitation, fmt.Errorf("%s: %w; nothing was written. Use the .ipsync file written by `ipsync invite --out`", file, err)}
		default:
			return b, usageErr("%s: %v", file, err)
		}
	}
}

// askSecret asks on the terminal when there is one, else in a dialog;
// with neither, it fails saying fix (what the user can do instead).
func (e *env) askSecret(ctx context.Context, desktop bool, title, prompt, fix string) (string, error) {
	if fd := int(os.Stdin.Fd()); !desktop && term.IsTerminal(fd) {
		fmt.Fprint(e.stderr, prompt+": ")
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", usageErr("read from the terminal: %v", err)
		}
		return string(p), nil
	}
	if !dialog.Available() {
		return "", usageErr("no terminal to ask on and no dialog program (install zenity): %s", fix)
	}
	p, err := dialog.Password(ctx, title, prompt)
	if err != nil {
		if errors.Is(err, dialog.ErrCanceled) {
			return "", err
		}
		return "", usageErr("ask for the passphrase: %v", err)
	}
	return p, nil
}

// enableAutostart turns on the client's start at login, with --config when
// the config is not at the default path.
func enableAutostart(path string, explicit bool) error {
	args := []string{"client"}
	if explicit {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		args = append(args, "--config", path)
	}
	entry, err := autostart.New(autostart.Options{
		Name:        "ipsync-client",
		DisplayName: "ipsync client",
		Comment:     "Keeps the server's public address up to date",
		Args:        args,
	})
	if err != nil {
		return err
	}
	return entry.SetEnabled(true)
}

// startTrayDetached starts `ipsync client` in the background, detached
// from this process, so that the tray keeps running after join returns.
func startTrayDetached(e *env) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start the tray: %w", err)
	}
	args := []string{"client"}
	if e.configPath != "" {
		args = append(args, "--config", e.configPath)
	}
	if path, err := e.configFile(); err == nil && lockHeld(context.Background(), path, "client") {
		fmt.Fprintln(e.stdout, "ipsync is already running with the config as it was: quit it from its menu and start it again to use the new one")
		return nil
	}
	if err := startDetached(exe, args); err != nil {
		return fmt.Errorf("start the tray (start it from the menu, or run `ipsync client`): %w", err)
	}
	fmt.Fprintln(e.stdout, "started the tray")
	return nil
}

// startDetachedProcess starts exe with args in a new session (Unix) or
// without a console (Windows), with no standard streams, and does not wait.
func startDetachedProcess(exe string, args []string) error {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), startedByIpsync+"=1")
	cmd.SysProcAttr = detachedAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}
