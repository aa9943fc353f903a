package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/dialog"
	"ipsync/fetcher"
	"ipsync/mailconn"
	"ipsync/statefile"
	"ipsync/tray"
)

const clientSynopsis = `ipsync client [--config F] [--headless] [--verbose]

Runs the client role: watches the mailbox (IMAP IDLE where offered, polling
otherwise), verifies and opens the newest message and shows the server's
address. With a desktop it shows a tray icon and notifications; with
--headless, or without a display, it logs instead. Stops on SIGINT/SIGTERM.
One client runs per config: a second start on the same config (the Start
menu while the tray runs) says so and ends with status 0.`

const fetchSynopsis = `ipsync fetch --once [--config F] [--json]

Reads the mailbox once and prints the newest valid address, e.g.
  office 203.0.113.7 2001:db8::7 (seq 42, issued 3m ago)
With --json: {"name", "ipv4", "ipv6", "sequence", "issued_at", "age_seconds",
"format", "heartbeat_seconds", "problem"} (null or left out when unknown).
When the mailbox holds messages this client cannot accept (another key,
another name, dated in the future) and its address is overdue, it says why
(the "problem"), prints the cached address only as "last known, N h old"
and exits 1. Exit 0 with a current address, 1 when there is no valid one,
2 for a config error (a refused password included), 3 for a mail or
network error, 4 when this computer failed.`

// newFetcher builds the fetcher of cfg.
// newFetcher builds the fetcher of cfg, signing in with sec.auth.
func newFetcher(cfg *config.Config, sec secrets, log *slog.Logger) (*fetcher.Fetcher, error) {
	_, imap, err := endpoints(cfg)
	if err != nil {
		return nil, err
	}
	statePath, err := cfg.StatePath("client-" + cfg.Name + ".json")
	if err != nil {
		return nil, usageErr("%s: state_dir: %v", cfg.Path, err)
	}
	if err := statefile.Check(statePath); err != nil {
		return nil, usageErr("%s: state_dir: %v", cfg.Path, err)
	}
	f, err := fetcher.New(fetcher.Options{
		IMAP:           imap,
		Auth:           sec.auth,
		Mailbox:        cfg.Mail.IMAP.Mailbox,
		Name:           cfg.Name,
		Subject:        cfg.Publisher.Subject,
		Format:         codec.Format(cfg.Codec.Format),
		Keys:           sec.clients,
		Legacy:         legacyCodec(cfg),
		Idle:           fetcher.IdleMode(cfg.Fetcher.Idle),
		IdleRefresh:    cfg.Fetcher.IdleRefresh.D(),
		PollEvery:      cfg.Fetcher.PollEvery.D(),
		StaleAfter:     cfg.Fetcher.StaleAfter.D(),
		ProbePort:      cfg.Fetcher.Probe.Port,
		OnChange:       cfg.Fetcher.OnChange,
		HookEnvExclude: cfg.SecretEnvNames(),
		StatePath:      statePath,
		Logger:         log.With("role", "client"),
	})
	if err != nil {
		return nil, usageErr("%s: %v", cfg.Path, err)
	}
	return f, nil
}

func runClient(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("client", clientSynopsis, flagConfig|flagHeadless)
	log, cfg, err := e.start(fs, args, startOpts{role: config.RoleClient, longRunning: true})
	if config.IsNotFound(err) && e.configPath == "" {
		return firstRunClient(ctx, e, log, e.headless, err)
	}
	if err != nil {
		return err
	}
	// Read and forget: the mark is for this process, not for what it
	// starts (hooks, a browser, a later client).
	byIpsync := os.Getenv(startedByIpsync) != ""
	os.Unsetenv(startedByIpsync)
	release, err := holdLock(ctx, cfg.Path, "client", instanceWait)
	switch {
	case errors.Is(err, errAlreadyRunning):
		log.Info("ipsync client is already running with this config; this one ends", "config", cfg.Path)
		if byIpsync {
			return nil // started by join or the first-run tray: the running one is the one wanted
		}
		fmt.Fprintf(e.stderr, "ipsync client is already running with %s; this one ends\n", cfg.Path)
		if !e.headless && startedFromDesktop() && dialog.Available() {
			// The Start menu clicked while the client runs: say why
			// nothing new shows.
			_ = dialog.Info(ctx, "ipsync", "ipsync is already running on this PC: see its icon in the tray (or, without one, the ipsync-client service).")
		}
		return nil
	case err != nil && ctx.Err() != nil:
		return nil // stopped while waiting: an ordinary stop
	case err != nil:
		log.Warn("cannot make sure only one client runs with this config", "err", err)
		release = func() {}
	}
	defer release()
	sec, err := resolveSecrets(cfg, config.RoleClient, log)
	if err != nil {
		return err
	}
	f, err := newFetcher(cfg, sec, log)
	if err != nil {
		return err
	}
	actions := tray.Actions{FetchNow: f.FetchNow}
	if cfg.IsOAuth2() {
		// After a sign-in, read the mailbox at once: that ends the
		// "sign-in needed" status.
		actions.SignIn = traySignIn(ctx, cfg, log, func(err error) {
			if err == nil {
				f.FetchNow()
			}
		})
	}
	ui := startUI(ctx, e, log, tray.Options{
		Role:       tray.RoleClient,
		Name:       cfg.Name,
		ConfigPath: cfg.Path,
		NoNotify:   !cfg.NotifyEnabled(),
		Actions:    actions,
	})
	return ui.run(ctx, func(ctx context.Context) error {
		// Let go of the client lock as soon as the client is told to stop
		// (Quit, a signal), not after it has logged out: a client started
		// right after a Quit must not find this one "already running".
		stop := context.AfterFunc(ctx, release)
		defer stop()
		return f.Run(ctx, clientConsumer(ui, log.With("role", "client"), cfg.Fetcher.PollEvery.D()))
	})
}

// clientConsumer turns fetcher updates into log lines and tray statuses.
func clientConsumer(ui *ui, log *slog.Logger, pollEvery time.Duration) fetcher.Consumer {
	var last fetcher.Update
	first := true
	return fetcher.ConsumerFunc(func(u fetcher.Update) {
		logClientUpdate(log, first, last, u)
		last, first = u, false
		ui.set(u.Health(pollEvery))
	})
}

func logClientUpdate(log *slog.Logger, first bool, last, u fetcher.Update) {
	p := u.Payload
	switch {
	case u.Changed && u.Previous.Seq == 0 && !u.Previous.IPv4.IsValid() && !u.Previous.IPv6.IsValid():
		log.Info("server address received", "name", p.Name, "ipv4", addrOrNone(p.IPv4), "ipv6", addrOrNone(p.IPv6), "seq", p.Seq)
	case u.Changed:
		log.Info("server address changed", "name", p.Name, "ipv4", addrOrNone(p.IPv4), "ipv6", addrOrNone(p.IPv6),
			"previous_ipv4", addrOrNone(u.Previous.IPv4), "previous_ipv6", addrOrNone(u.Previous.IPv6), "seq", p.Seq)
	case first && (p.IPv4.IsValid() || p.IPv6.IsValid()):
		log.Info("last known server address", "name", p.Name, "ipv4", addrOrNone(p.IPv4), "ipv6", addrOrNone(p.IPv6),
			"issued", p.IssuedAt.Format(time.RFC3339), "age", time.Since(p.IssuedAt).Round(time.Second))
	}
	if first || u.State != last.State {
		attrs := []any{"state", u.State.String()}
		if u.Err != nil {
			attrs = append(attrs, "err", u.Err)
		}
		if u.State == fetcher.Error || u.State == fetcher.AuthRefused || u.State == fetcher.Unreachable || u.State == fetcher.Stale {
			log.Warn("client state", attrs...)
		} else {
			log.Info("client state", attrs...)
		}
	}
	if u.Mode != "" && u.Mode != last.Mode {
		log.Info("watching the mailbox", "mode", u.Mode)
	}
}

func addrOrNone(a interface{ IsValid() bool }) any {
	if !a.IsValid() {
		return "-"
	}
	return a
}

func runFetch(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("fetch", fetchSynopsis, flagConfig)
	once := fs.Bool("once", false, "read the mailbox once and exit (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	log, cfg, err := e.start(fs, args, startOpts{role: config.RoleClient, checkFlags: func() error {
		if !*once {
			return usageErr("fetch needs --once (the watching client is `ipsync client`)")
		}
		return nil
	}})
	if err != nil {
		return err
	}
	sec, err := resolveSecrets(cfg, config.RoleClient, log)
	if err != nil {
		return err
	}
	f, err := newFetcher(cfg, sec, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := f.FetchOnce(ctx)
	noMessage := errors.Is(err, fetcher.ErrNoMessage)
	switch {
	case errors.Is(err, fetcher.ErrAuthRefused):
		log.Debug("fetch failed", "err", err)
		return withCode(exitUsage, explainMail(cfg, mailconn.IMAP, err))
	case err != nil && !noMessage:
		// FetchOnce's other errors are mail or network failures.
		log.Debug("fetch failed", "err", err)
		return withCode(exitNetwork, explainMail(cfg, mailconn.IMAP, err))
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(r); err != nil {
			return err
		}
	} else if !noMessage {
		fmt.Fprintln(e.stdout, fetchLine(r, r.Problem != ""))
	}
	switch {
	case noMessage && r.Problem != "":
		return withCode(exitNoResult, fmt.Errorf("no valid message from %q in %s: %s", cfg.Name, cfg.Mail.IMAP.Mailbox, r.Problem))
	case noMessage:
		return withCode(exitNoResult, fmt.Errorf("no valid message from %q in %s (has the server published yet? see `ipsync check`)", cfg.Name, cfg.Mail.IMAP.Mailbox))
	case r.Problem != "":
		return withCode(exitNoResult, fmt.Errorf("no current address for %q: %s", cfg.Name, r.Problem))
	}
	return nil
}

// fetchLine is the text form of a fetch result, e.g.
// "office 203.0.113.7 (seq 42, issued 3m0s ago)"; a result that is only the
// last known address says so and how old it is.
func fetchLine(r fetcher.Result, lastKnown bool) string {
	line := r.Name
	for _, a := range []interface {
		IsValid() bool
		String() string
	}{r.IPv4, r.IPv6} {
		if a.IsValid() {
			line += " " + a.String()
		}
	}
	age := r.Age.Round(time.Second)
	when := fmt.Sprintf("issued %s ago", age)
	if age < 0 {
		when = fmt.Sprintf("dated %s ahead of this PC's clock", -age)
	}
	switch {
	case lastKnown:
		return line + fmt.Sprintf(" (last known, %s old)", roughAge(age))
	case r.Format == codec.FormatLegacy:
		return line + fmt.Sprintf(" (legacy, unauthenticated; %s)", when)
	}
	return line + fmt.Sprintf(" (seq %d, %s)", r.Seq, when)
}

// roughAge writes an age for people: "40 s", "12 min", "5 h", "3 days".
func roughAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// checkClient tries the IMAP login and mailbox, then opens the newest
// ipsync message with the configured key and name and says what it finds.
func checkClient(ctx context.Context, cfg *config.Config, sec secrets) []checkLine {
	item := fmt.Sprintf("imap %s:%d (%s) login and mailbox %s", cfg.Mail.IMAP.Host, cfg.Mail.IMAP.Port, cfg.Mail.IMAP.TLS, cfg.Mail.IMAP.Mailbox)
	if cfg.IsOAuth2() {
		item = fmt.Sprintf("imap %s:%d (%s) OAuth2 sign-in and mailbox %s", cfg.Mail.IMAP.Host, cfg.Mail.IMAP.Port, cfg.Mail.IMAP.TLS, cfg.Mail.IMAP.Mailbox)
	}
	f, err := newFetcher(cfg, sec, slog.New(slog.DiscardHandler))
	if err != nil {
		return []checkLine{{item: item, err: err}}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, checkTimeout, errCheckTimeout)
	defer cancel()
	if err := f.Check(ctx); err != nil {
		return []checkLine{{item: item, err: explainMail(cfg, mailconn.IMAP, err)}}
	}
	lines := []checkLine{{item: item, note: "ok"}}
	newest := fmt.Sprintf("newest message for %q in %s", cfg.Name, cfg.Mail.IMAP.Mailbox)
	note, err := f.CheckNewest(ctx)
	if errors.Is(err, fetcher.ErrNoMessage) {
		// Nothing published yet is no fault of this client's settings.
		return append(lines, checkLine{item: newest, note: "none yet: " + strings.TrimPrefix(err.Error(), fetcher.ErrNoMessage.Error()+": ")})
	}
	if err != nil {
		// Not a connection failure: the mailbox answers, but holds nothing
		// this client accepts. The fix is in the config (key, name, clock).
		err = withCode(exitUsage, err)
	}
	return append(lines, checkLine{item: newest, note: note, err: err})
}
