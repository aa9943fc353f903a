package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/enrol"
)

const inviteSynopsis = `ipsync invite --out FILE [--config F] [--name NAME] [--passphrase-file F]
              [--mailbox-password include|ask|omit] [--add-recipient ADDRESS] [--force]

Writes an invitation (mode 0600): one file holding everything a staff PC
needs to become a client of this server — the mail server, the mailbox and
its user name, the client key, the fetch settings and the CA certificate of
mail.ca_file — encrypted with a passphrase. It prints a new passphrase, or
uses the one in --passphrase-file. Give the file and the passphrase to the
PC's user by different ways (the file by mail, the passphrase by phone); on
the PC, ` + "`ipsync join FILE`" + ` (or a double-click) does the rest.

--mailbox-password decides whether the mailbox password travels in the
invitation: include (default), ask (join asks the PC's user), or omit (set
up on the PC by other means). With --add-recipient ADDRESS the server also
mails its messages to ADDRESS (added to publisher.to in the server config,
keeping its comments) and the invitation reads that mailbox, signing in as
ADDRESS: one mailbox per PC. Its password is then asked on the PC unless
--mailbox-password omit.`

// inviteWorkFactor is scrypt's work factor for invitations; 0 = age's
// default. Tests lower it.
var inviteWorkFactor = 0

// inviteFlags are invite's command line, checked.
type inviteFlags struct {
	out, name, passFile, mode, addRecipient string
	force                                   bool
}

func runInvite(ctx context.Context, e *env, args []string) error {
	f, err := parseInvite(e, args)
	if err != nil {
		return err
	}
	log := e.logger(false)
	cfg, err := e.loadConfig(config.RoleServer, log)
	if err != nil {
		return err
	}
	if f.name != "" && f.name != cfg.Name {
		return usageErr("--name %q: the config %s is for %q; clients accept only messages naming that server", f.name, cfg.Path, cfg.Name)
	}
	if cfg.Codec.Format != string(codec.FormatSealed) {
		return usageErr("%s: codec.format is %s: invitations carry a client key of the sealed format; switch the server to format: sealed first (docs/deploy.md)", cfg.Path, cfg.Codec.Format)
	}
	pass, printPass, err := invitePassphrase(f.passFile)
	if err != nil {
		return err
	}
	if !f.force {
		if _, err := os.Stat(f.out); err == nil {
			return usageErr("--out %s: the file exists; choose another name or add --force", f.out)
		}
	}
	b, err := inviteBundle(cfg, f, log)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := enrol.Seal(&buf, b, pass, &enrol.Options{WorkFactor: inviteWorkFactor}); err != nil {
		return fmt.Errorf("make the invitation: %w", err)
	}
	if f.addRecipient != "" {
		changed, err := config.AddRecipient(cfg.Path, f.addRecipient)
		if err != nil {
			return usageErr("--add-recipient: %v", err)
		}
		if changed {
			fmt.Fprintf(e.stdout, "added %s to publisher.to in %s; restart the server (e.g. systemctl restart ipsync) so that it mails there too\n", f.addRecipient, cfg.Path)
		} else {
			fmt.Fprintf(e.stdout, "%s is already in publisher.to in %s\n", f.addRecipient, cfg.Path)
		}
	}
	if err := writeInvitation(f.out, buf.Bytes(), f.force); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: an invitation to %q (mailbox %s, password %s)\n", f.out, cfg.Name, b.Mail.Address, map[string]string{
		enrol.PasswordInclude: "included", enrol.PasswordAsk: "asked on the PC", enrol.PasswordOmit: "not included"}[f.mode])
	if printPass {
		fmt.Fprintf(e.stdout, "passphrase: %s\n", pass)
		fmt.Fprintln(e.stdout, "Give the file and the passphrase by different ways; on the PC run `ipsync join "+filepath.Base(f.out)+"` or double-click the file.")
	}
	log.Debug("invitation written", "path", f.out)
	return nil
}

// parseInvite reads and checks invite's command line.
func parseInvite(e *env, args []string) (inviteFlags, error) {
	var f inviteFlags
	fs := e.newFlags("invite", inviteSynopsis, flagConfig)
	fs.StringVar(&f.out, "out", "", "write the invitation to `FILE`, e.g. office-pc3.ipsync (required)")
	fs.StringVar(&f.name, "name", "", "the server `NAME` the invitation is for; must match the config's name: (a check)")
	fs.StringVar(&f.passFile, "passphrase-file", "", "encrypt with the passphrase in `FILE` instead of a new one")
	fs.StringVar(&f.mode, "mailbox-password", "", "`MODE` include, ask or omit (default include; ask with --add-recipient)")
	fs.StringVar(&f.addRecipient, "add-recipient", "", "add `ADDRESS` to publisher.to and make the invitation read that mailbox")
	fs.BoolVar(&f.force, "force", false, "replace an existing --out file")
	if err := e.parse(fs, args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, usageErr("invite takes no arguments, got %q", fs.Args())
	}
	if f.out == "" {
		return f, usageErr("invite needs --out FILE, e.g. --out office-pc3.ipsync")
	}
	switch {
	case f.mode == "" && f.addRecipient != "":
		f.mode = enrol.PasswordAsk
	case f.mode == "":
		f.mode = enrol.PasswordInclude
	case f.mode != enrol.PasswordInclude && f.mode != enrol.PasswordAsk && f.mode != enrol.PasswordOmit:
		return f, usageErr("--mailbox-password %q: use include, ask or omit", f.mode)
	case f.mode == enrol.PasswordInclude && f.addRecipient != "":
		return f, usageErr("--mailbox-password include with --add-recipient would send the server's own mailbox password to %s's PC; use ask or omit", f.addRecipient)
	}
	if a := f.addRecipient; a != "" && (!strings.Contains(a, "@") || strings.ContainsAny(a, " \t<>,")) {
		return f, usageErr("--add-recipient %q is not a mail address", a)
	}
	return f, nil
}

// invitePassphrase is the passphrase from passFile, or a new one to print.
func invitePassphrase(passFile string) (pass string, generated bool, err error) {
	if passFile == "" {
		return enrol.NewPassphrase(), true, nil
	}
	p, err := os.ReadFile(passFile)
	if err != nil {
		return "", false, usageErr("--passphrase-file: %v", err)
	}
	pass = strings.TrimRight(string(p), "\r\n")
	if len(pass) < 10 {
		return "", false, usageErr("--passphrase-file %s: the passphrase is shorter than 10 characters; use a longer one, or leave the flag out for a generated one", passFile)
	}
	return pass, false, nil
}

// inviteBundle is what the invitation carries: the client's share of the
// server config, its CA file's contents, and the mailbox password when
// f.mode says include.
func inviteBundle(cfg *config.Config, f inviteFlags, log *slog.Logger) (enrol.Bundle, error) {
	sec, err := resolveSecrets(cfg, config.RoleServer, log)
	if err != nil {
		return enrol.Bundle{}, err
	}
	var ca []byte
	if file := cfg.CAFile(); file != "" {
		if ca, err = os.ReadFile(file); err != nil {
			return enrol.Bundle{}, usageErr("%s: mail.ca_file: %v", cfg.Path, err)
		}
	}
	b := enrol.FromConfig(cfg, sec.server, ca)
	b.Mail.PasswordMode = f.mode
	if f.addRecipient != "" {
		b.Mail.Address, b.Mail.Username = f.addRecipient, f.addRecipient
	}
	if f.mode == enrol.PasswordInclude {
		if cfg.IsOAuth2() {
			return b, usageErr("--mailbox-password include: %s signs in with OAuth2 (mail.auth: oauth2), which has no password to pass on; use --mailbox-password omit and sign the PC in with `ipsync login`", cfg.Path)
		}
		if b.Mail.Password, err = cfg.Resolve("mail.password", cfg.Mail.Password); err != nil {
			return b, usageErr("%s: %v", cfg.Path, err)
		}
	}
	return b, nil
}

// writeInvitation writes data to path with mode 0600.
func writeInvitation(path string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return usageErr("--out: %v", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return usageErr("--out: %v", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write the invitation: %w", err)
	}
	return nil
}
