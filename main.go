// Command ipsync keeps staff PCs told of a server's changing public IP
// address, through a mailbox everyone already has.
//
// The same binary plays both roles: on the server it finds the public
// address and mails it, sealed and signed, over SMTP (`ipsync server`); on
// each staff PC it watches the mailbox over IMAP and shows the address in a
// tray icon (`ipsync client`). Run `ipsync help` for the verbs; README.md and
// docs/ explain set-up and the protocol.
//
// main only wires things together: flags, config, the concrete pieces from
// the other packages, signal handling and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"ipsync/config"
	"ipsync/mailconn"
)

// Exit codes, as listed in `ipsync help` and README.md ("CLI reference").
// A verb classifies its errors with exitError; realMain gives an error
// without a class exitUsage for a refused password, exitNetwork when
// mailconn.IsNetwork says the network or a mail server failed, and
// exitInternal otherwise.
const (
	exitOK       = 0 // success
	exitNoResult = 1 // ran, but there was no valid result (e.g. no valid message)
	exitUsage    = 2 // bad command line or configuration
	exitNetwork  = 3 // a mail server or the network failed
	exitInternal = 4 // this computer failed (disk full, no randomness) or a bug in ipsync
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries an exit code with an error for the user.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code, err}
}

const mainUsage = `ipsync keeps staff PCs told of a server's changing public IP address,
through a mailbox everyone already has.

Usage:
  ipsync server  [--config F] [--headless]   run the server role: find the public
                                             address and mail it on change and hourly
  ipsync client  [--config F] [--headless]   run the client role: watch the mailbox,
                                             show the address in the tray, notify on change
  ipsync publish --once [--ip ADDR]          send one message now, then exit
  ipsync fetch --once [--json]               print the newest valid address, then exit
  ipsync keygen                              make a server key and its client key
  ipsync legacy encode|decode                the original tool's format (migration only)
  ipsync check [--config F]                  validate the config, try every connection
  ipsync login [--config F] [--device]       sign in to Microsoft 365 / Google (OAuth2,
                                             mail.auth: oauth2) and keep the token
  ipsync init [--non-interactive …]          set up the server: provider, keys, password
  ipsync invite --out FILE                   (server) write an invitation for a staff PC
  ipsync join FILE                           (PC) set this PC up from an invitation
  ipsync demo                                both roles against a built-in loopback mail
                                             server; no account needed
  ipsync version                             print the version

Every verb takes --help and --verbose (debug logs). The verbs that read or
write a config file (server, client, publish, fetch, check, login, init,
invite, join) take --config FILE (default: %s).

Exit codes: 0 ok, 1 no valid result, 2 usage or config error (a refused
mail password too), 3 mail or network error, 4 a failure of this computer
(disk full, no randomness) or a bug in ipsync; join adds 5 wrong
passphrase, 6 damaged file or not an invitation, 7 invitation for another
role.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs one verb and returns the process exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args, stdout, stderr)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "ipsync: "+strings.ReplaceAll(err.Error(), "\n", "\nipsync: "))
	return exitCode(err)
}

// exitCode is the exit code of a verb's error: its exitError's code, else
// exitUsage for a refused user name or password (the fix is in the config,
// and retrying cannot help), else exitNetwork for a failure of the network
// or a mail server, else exitInternal.
func exitCode(err error) int {
	var ee *exitError
	var me *mailconn.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &me) && me.Problem == mailconn.ProblemAuth:
		return exitUsage
	case mailconn.IsNetwork(err):
		return exitNetwork
	}
	return exitInternal
}

type verb struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

// env is what every verb gets: where to write, and flags shared by all.
type env struct {
	stdout, stderr io.Writer
	verbose        bool
	configPath     string
	headless       bool
	verb           string
	// rand is the random source for new keys; nil means crypto/rand.
	rand io.Reader
}

func verbs() []verb {
	return []verb{
		{"server", "run the server role", runServer},
		{"client", "run the client role", runClient},
		{"publish", "send one message now", runPublish},
		{"fetch", "print the newest valid address", runFetch},
		{"keygen", "make keys", runKeygen},
		{"legacy", "legacy format tools", runLegacy},
		{"check", "check the configuration and connections", runCheck},
		{"login", "sign in to the mail provider (OAuth2)", runLogin},
		{"invite", "write an invitation for a staff PC", runInvite},
		{"join", "set this PC up from an invitation", runJoin},
		{"init", "set up the server interactively", runInit},
		{"demo", "run the loopback demo", runDemo},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return (&env{stdout: stdout, stderr: stderr}).run(ctx, args)
}

// run runs the verb args[0] with the rest of args.
func (e *env) run(ctx context.Context, args []string) error {
	stdout := e.stdout
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args[0] = "version"
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		def, _ := defaultConfigPath()
		fmt.Fprintf(stdout, mainUsage, def)
		if len(args) == 0 {
			return usageErr("no verb given")
		}
		return nil
	}
	for _, v := range verbs() {
		if v.name == args[0] {
			e.verb = v.name
			return v.run(ctx, e, args[1:])
		}
	}
	return usageErr("unknown verb %q; run `ipsync help` for the list", args[0])
}

// sharedFlags are the flags that several verbs take, kept in env.
type sharedFlags int

const (
	flagConfig   sharedFlags = 1 << iota // --config FILE (env.configPath)
	flagHeadless                         // --headless (env.headless), for the verbs that show a tray
)

// newFlags returns a FlagSet for a verb with --verbose and the shared
// flags. Its usage text is the verb's synopsis followed by the flags.
func (e *env) newFlags(name, synopsis string, shared sharedFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("ipsync "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n", synopsis)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		printFlags(fs)
	}
	fs.BoolVar(&e.verbose, "verbose", false, "log debug detail")
	if shared&flagConfig != 0 {
		def, _ := defaultConfigPath()
		fs.StringVar(&e.configPath, "config", "", "read the config from `FILE` (default "+def+")")
	}
	if shared&flagHeadless != 0 {
		fs.BoolVar(&e.headless, "headless", false, "no tray icon: log only")
	}
	return fs
}

// printFlags lists fs's flags as "--name value" (the flag package accepts
// one dash or two; the synopses use two).
func printFlags(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(fs.Output(), line)
	})
}

// parse parses args; --help prints the usage to stdout and returns
// flag.ErrHelp, any other problem is a usage error.
func (e *env) parse(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		hint := ""
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
			// "-5538.8…" is an argument that looks like a flag.
			if name = strings.TrimLeft(name, "-"); name != "" && (name[0] >= '0' && name[0] <= '9' || name[0] == '.') {
				hint = "; an argument that starts with '-' goes after --"
			}
		}
		return usageErr("%s: %v%s (see `ipsync %s --help`)", e.verb, err, hint, e.verb)
	}
	return nil
}

// parseNoArgs is parse for a verb that takes flags only.
func (e *env) parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("%s takes no arguments, got %q (see `ipsync %s --help`)", e.verb, fs.Args(), e.verb)
	}
	return nil
}

// startOpts says what a verb that runs a role needs from start.
type startOpts struct {
	// role is the role whose settings the config must hold.
	role config.Role
	// longRunning logs at Info (and on Windows also to a file) instead of
	// Warn; see logger.
	longRunning bool
	// checkFlags, if not nil, checks the verb's flags after parsing and
	// before the config is read, so that a bad command line is reported
	// as such whatever the config.
	checkFlags func() error
}

func (e *env) start(fs *flag.FlagSet, args []string, o startOpts) (*slog.Logger, *config.Config, error) {
	if err := e.parseNoArgs(fs, args); err != nil {
		return nil, nil, err
	}
	if o.checkFlags != nil {
		if err := o.checkFlags(); err != nil {
			return nil, nil, err
		}
	}
	log := e.logger(o.longRunning)
	cfg, err := e.loadConfig(o.role, log)
	if err != nil {
		// The logger comes back too: a verb may go on without a config
		// (first run).
		return log, nil, err
	}
	return log, cfg, nil
}

// parseInterspersed is parse for verbs whose flags may also follow their
// arguments ("legacy encode 1.2.3.4 --factor 2"); everything after "--" is
// an argument. It returns the arguments.
func (e *env) parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := e.parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		used := len(args) - len(rest)
		switch {
		case len(rest) == 0:
			return pos, nil
		case used > 0 && args[used-1] == "--":
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// logger returns the process logger: text to stderr, Info (or Debug with
// --verbose) for long-running roles, Warn for one-shot verbs so that their
// output is only the result. On Windows, where a tray program has no
// console, long-running roles also log to a file (see logFile).
func (e *env) logger(longRunning bool) *slog.Logger {
	level := slog.LevelWarn
	if longRunning {
		level = slog.LevelInfo
	}
	if e.verbose {
		level = slog.LevelDebug
	}
	w := e.stderr
	if longRunning && runtime.GOOS == "windows" {
		if f, path, err := logFile(e.verb); err == nil {
			w = io.MultiWriter(e.stderr, f)
			fmt.Fprintf(e.stderr, "ipsync: logging to %s\n", path)
		} else {
			fmt.Fprintf(e.stderr, "ipsync: cannot open the log file (%v); logging to stderr only\n", err)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// logFile opens <user cache dir>/ipsync/<verb>.log for appending; the file
// stays open for the life of the process.
func logFile(verb string) (io.Writer, string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return nil, "", err
	}
	dir = filepath.Join(dir, "ipsync")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, verb+".log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", err
	}
	return f, path, nil
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := e.newFlags("version", "ipsync version", 0)
	if err := e.parseNoArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "ipsync", version)
	return nil
}
