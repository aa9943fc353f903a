package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"ipsync/codec"
	"ipsync/config"
)

const initSynopsis = `ipsync init [--config F] [--force]
       ipsync init --non-interactive --provider P --name NAME --address A
                   --password-file F [--username U] [--smtp-host H …] [options]

Sets up the server role: picks the mail provider (Gmail, Google Workspace,
Outlook/Microsoft 365, Fastmail, iCloud, Yahoo, or another), makes a new
server key, stores the mailbox password and the key in the OS keyring (or
in files of mode 0600 beside the config, with --secret-store file or when
there is no keyring), writes the server config (default path below; never
over an existing one without --force), runs ` + "`ipsync check`" + ` and prints the
` + "`ipsync invite`" + ` command that enrols each staff PC.

Without --non-interactive it asks its questions on the terminal (and
` + "`ipsync server`" + ` runs it when there is no config yet). With it, every answer
is a flag: for scripts. Providers: gmail, google-workspace, outlook,
fastmail, icloud, yahoo, other (needs --smtp-host and --imap-host).`

// initAnswers are the settings init asks for.
type initAnswers struct {
	provider, name, address, username, password string
	smtp                                        config.Server
	imap                                        config.IMAP
	caFile, stateDir                            string
	sources                                     []string
}

// initFlags are init's flags that are not answers.
type initFlags struct {
	nonInteractive, force, noCheck bool
	store, passFile                string
}

func runInit(ctx context.Context, e *env, args []string) error {
	a, f, err := parseInit(e, args)
	if err != nil {
		return err
	}
	path, err := e.configFile()
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil && !f.force {
		return usageErr("%s already holds a config; check it with `ipsync check`, or run init again with --force to replace it", path)
	}
	if f.nonInteractive {
		err = a.fromFlags(f.passFile)
	} else {
		err = a.fromTerminal(e, path)
	}
	if err != nil {
		return err
	}
	if err := a.complete(); err != nil {
		return err
	}
	if f.store == "keyring" && !keyringUsable() {
		return usageErr("--secret-store keyring: there is no OS keyring here (no session bus); use --secret-store file")
	}
	log := e.logger(false)
	if err := writeInitConfig(e, a, f, path, log); err != nil {
		return err
	}
	var checkErr error
	if !f.noCheck {
		checkErr = initCheck(ctx, e, path, log)
		if exitCode(checkErr) == exitUsage {
			return checkErr // the written config does not load: no next steps
		}
	}
	printInitNext(e)
	return checkErr
}

// parseInit reads init's command line: the answers given as flags and
// init's own flags.
func parseInit(e *env, args []string) (*initAnswers, initFlags, error) {
	fs := e.newFlags("init", initSynopsis, flagConfig)
	var f initFlags
	fs.BoolVar(&f.nonInteractive, "non-interactive", false, "take every answer from flags; never ask")
	fs.BoolVar(&f.force, "force", false, "replace an existing config")
	fs.BoolVar(&f.noCheck, "no-check", false, "do not try the connections at the end")
	fs.StringVar(&f.store, "secret-store", "auto", "where to keep the password and key: `STORE` auto (keyring when there is one), keyring or file")
	a := &initAnswers{}
	fs.StringVar(&a.provider, "provider", "", "mail `PROVIDER`: gmail, google-workspace, outlook, fastmail, icloud, yahoo or other")
	fs.StringVar(&a.name, "name", "", "the server's `NAME`, e.g. office (letters, digits, '.', '-', '_')")
	fs.StringVar(&a.address, "address", "", "the mailbox `ADDRESS` the server mails to and from")
	fs.StringVar(&a.username, "username", "", "login `NAME` (default: --address)")
	fs.StringVar(&f.passFile, "password-file", "", "read the mailbox (app) password from `FILE`")
	fs.StringVar(&a.smtp.Host, "smtp-host", "", "SMTP `HOST` (default: the provider's)")
	fs.IntVar(&a.smtp.Port, "smtp-port", 0, "SMTP `PORT` (default: the provider's, or the usual one for --smtp-tls)")
	fs.StringVar(&a.smtp.TLS, "smtp-tls", "", "SMTP `TLS`: implicit, starttls or none")
	fs.StringVar(&a.imap.Host, "imap-host", "", "IMAP `HOST` (default: the provider's)")
	fs.IntVar(&a.imap.Port, "imap-port", 0, "IMAP `PORT`")
	fs.StringVar(&a.imap.TLS, "imap-tls", "", "IMAP `TLS`: implicit, starttls or none")
	fs.StringVar(&a.caFile, "ca-file", "", "PEM `FILE` of extra CA certificates to trust (mail.ca_file)")
	fs.StringVar(&a.stateDir, "state-dir", "", "state_dir `DIR`, e.g. /var/lib/ipsync for the system service")
	fs.Func("source", "an address source `URL` or preset (publisher.sources; repeat; default: the built-in list)", func(s string) error {
		a.sources = append(a.sources, s)
		return nil
	})
	if err := e.parse(fs, args); err != nil {
		return nil, f, err
	}
	if fs.NArg() > 0 {
		return nil, f, usageErr("init takes no arguments, got %q", fs.Args())
	}
	if f.store != "auto" && f.store != "keyring" && f.store != "file" {
		return nil, f, usageErr("--secret-store %q: use auto, keyring or file", f.store)
	}
	return a, f, nil
}

// fromFlags checks that --non-interactive was given every answer it needs
// (naming all that are missing at once) and reads the password file.
func (a *initAnswers) fromFlags(passFile string) error {
	var missing []string
	for _, m := range []struct {
		set  bool
		flag string
	}{
		{a.provider != "", "--provider (gmail, google-workspace, outlook, fastmail, icloud, yahoo or other)"},
		{a.name != "", "--name (the server's name, e.g. office)"},
		{a.address != "", "--address (the mailbox)"},
		{passFile != "", "--password-file FILE (the mailbox's app password)"},
	} {
		if !m.set {
			missing = append(missing, m.flag)
		}
	}
	if len(missing) > 0 {
		return usageErr("init --non-interactive needs %s", strings.Join(missing, ", "))
	}
	p, err := os.ReadFile(passFile)
	if err != nil {
		return usageErr("--password-file: %v", err)
	}
	a.password = strings.TrimSpace(string(p))
	if a.password == "" {
		return usageErr("--password-file %s is empty", passFile)
	}
	return nil
}

// fromTerminal asks the questions flags did not answer.
func (a *initAnswers) fromTerminal(e *env, path string) error {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return usageErr("init asks its questions on a terminal; for scripts use `ipsync init --non-interactive` with flags (see --help)")
	}
	return askInit(&terminalAsker{in: bufio.NewReader(os.Stdin), out: e.stderr}, a, path)
}

// writeInitConfig makes the server key, stores it and the password, and
// writes the config at path; on any failure it takes the secrets back.
func writeInitConfig(e *env, a *initAnswers, f initFlags, path string, log *slog.Logger) error {
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		return fmt.Errorf("generate the server key: %w", err)
	}
	st := &secretStore{dir: filepath.Dir(path), files: f.store == "file", log: log}
	keyRef, err := st.put(a.name+" server key", "server.key", sk.Text())
	if err != nil {
		return err
	}
	pwRef, err := st.put(a.username, "password", a.password)
	if err != nil {
		st.undo()
		return err
	}
	if f.store == "keyring" && !st.useKeyring {
		st.undo()
		return usageErr("--secret-store keyring: the OS keyring refused the secrets (see the log with --verbose); use --secret-store file")
	}
	data, err := a.serverConfig(keyRef, pwRef).Marshal(fmt.Sprintf("ipsync server config, written by `ipsync init` on %s (%s).\nEvery key and its default: config.example.yaml. Check it with `ipsync check`.", time.Now().Format("2006-01-02"), a.provider))
	if err == nil {
		_, err = config.Parse(path, data)
		if err != nil {
			err = usageErr("the answers do not make a valid config:\n%v", err)
		}
	}
	if err == nil {
		err = config.WriteFile(path, data, f.force)
	}
	if err != nil {
		st.undo()
		return withCode(exitUsage, err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (server key id %s; password and key in %s)\n", path, sk.ID(), st.where())
	if p, ok := config.PresetByKey(a.provider); ok && p.Note != "" {
		fmt.Fprintf(e.stdout, "note on %s: %s\n", p.Name, p.Note)
	}
	return nil
}

// serverConfig is the config the answers make, with the secrets' references.
func (a *initAnswers) serverConfig(keyRef, pwRef config.Secret) *config.Config {
	cfg := &config.Config{
		Role:     config.RoleServer,
		Name:     a.name,
		StateDir: a.stateDir,
		Mail: config.Mail{
			Address: a.address, Password: pwRef, CAFile: a.caFile, SMTP: a.smtp, IMAP: a.imap,
		},
		Codec:     config.Codec{Format: string(codec.FormatSealed), Key: keyRef},
		Publisher: config.Publisher{Sources: a.sources},
	}
	if a.username != a.address {
		cfg.Mail.Username = a.username
	}
	if len(a.sources) == 1 {
		cfg.Publisher.Agree = 1
	}
	return cfg
}

// initCheck runs the server's check on the written config, printing a
// line per item; it fails (exit 3) when one does.
func initCheck(ctx context.Context, e *env, path string, log *slog.Logger) error {
	failed, err := checkWritten(ctx, e.stdout, path, config.RoleServer, log)
	if err != nil {
		return err
	}
	if failed > 0 {
		return withCode(exitNetwork, errors.New("the server is set up, but the check failed (see above); fix it and run `ipsync check`"))
	}
	return nil
}

// printInitNext says what to do after init.
func printInitNext(e *env) {
	cfgFlag := ""
	if e.configPath != "" {
		cfgFlag = " --config " + e.configPath
	}
	fmt.Fprintf(e.stdout, `
Next:
  start the server:        ipsync server%s   (or the system service: docs/deploy.md)
  enrol each staff PC:     ipsync invite%s --out office-pc1.ipsync
                           then on the PC: ipsync join office-pc1.ipsync (or double-click it)
`, cfgFlag, cfgFlag)
}

// complete fills the provider's servers and checks the answers.
func (a *initAnswers) complete() error {
	if a.provider == "" {
		return usageErr("init needs --provider: gmail, google-workspace, outlook, fastmail, icloud, yahoo or other")
	}
	p, ok := config.PresetByKey(a.provider)
	if !ok {
		return usageErr("--provider %q: use gmail, google-workspace, outlook, fastmail, icloud, yahoo or other", a.provider)
	}
	if a.smtp.Host == "" && a.smtp.Port == 0 && a.smtp.TLS == "" {
		a.smtp = p.SMTP
	} else if a.smtp.Host == "" {
		a.smtp.Host = p.SMTP.Host
	}
	if a.imap.Host == "" && a.imap.Port == 0 && a.imap.TLS == "" {
		a.imap = p.IMAP
	} else if a.imap.Host == "" {
		a.imap.Host = p.IMAP.Host
	}
	switch {
	case a.name == "":
		return usageErr("init needs --name, the server's name, e.g. --name office")
	case a.address == "":
		return usageErr("init needs --address, the mailbox, e.g. --address ipsync.office@gmail.com")
	case a.smtp.Host == "" || a.imap.Host == "":
		return usageErr("--provider other needs --smtp-host and --imap-host")
	}
	if a.username == "" {
		a.username = a.address
	}
	return nil
}

// asker asks one question at a time.
type asker interface {
	// line asks for a line of text; def is the answer to an empty line.
	line(prompt, def string) (string, error)
	// secret asks for text that is not shown.
	secret(prompt string) (string, error)
	// say shows text.
	say(text string)
}

// askInit asks the interactive questions of init.
func askInit(q asker, a *initAnswers, path string) error {
	q.say("ipsync init: set up this machine as the server, writing " + path + "\n\nMail provider:")
	for i, p := range config.Presets {
		q.say(fmt.Sprintf("  %d. %s", i+1, p.Name))
	}
	for a.provider == "" {
		ans, err := q.line("Choose 1-"+strconv.Itoa(len(config.Presets)), "1")
		if err != nil {
			return err
		}
		if n, err := strconv.Atoi(ans); err == nil && n >= 1 && n <= len(config.Presets) {
			a.provider = config.Presets[n-1].Key
		} else if _, ok := config.PresetByKey(ans); ok {
			a.provider = ans
		}
	}
	p, _ := config.PresetByKey(a.provider)
	if p.Note != "" {
		q.say(p.Name + ": " + p.Note)
	}
	var err error
	if a.provider == "other" {
		if a.smtp.Host, err = q.line("SMTP server (host)", ""); err != nil {
			return err
		}
		if a.imap.Host, err = q.line("IMAP server (host)", ""); err != nil {
			return err
		}
	}
	for a.address == "" || !strings.Contains(a.address, "@") {
		if a.address, err = q.line("Mailbox address the server mails to and from", ""); err != nil {
			return err
		}
	}
	if a.username, err = q.line("Login name", a.address); err != nil {
		return err
	}
	for a.password == "" {
		if a.password, err = q.secret("Password (an app password for " + p.Name + ")"); err != nil {
			return err
		}
	}
	host, _ := os.Hostname()
	def := "office"
	if host != "" {
		def = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
				return r
			}
			return -1
		}, host)
	}
	if a.name, err = q.line("Name of this server, shown on the PCs", def); err != nil {
		return err
	}
	return nil
}

// terminalAsker asks on the terminal.
type terminalAsker struct {
	in  *bufio.Reader
	out io.Writer
}

func (t *terminalAsker) say(text string) { fmt.Fprintln(t.out, text) }

func (t *terminalAsker) line(prompt, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(t.out, "%s [%s]: ", prompt, def)
	} else {
		fmt.Fprintf(t.out, "%s: ", prompt)
	}
	s, err := t.in.ReadString('\n')
	if err != nil && (s == "" || !errors.Is(err, io.EOF)) {
		return "", usageErr("init: no answer (%v): nothing was written", err)
	}
	if s = strings.TrimSpace(s); s == "" {
		return def, nil
	}
	return s, nil
}

func (t *terminalAsker) secret(prompt string) (string, error) {
	fmt.Fprintf(t.out, "%s: ", prompt)
	p, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(t.out)
	if err != nil {
		return "", usageErr("init: read the password: %v", err)
	}
	return strings.TrimSpace(string(p)), nil
}
