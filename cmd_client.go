package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/fetcher"
	"ipsync/tray"
)

const clientSynopsis = `ipsync client [--config F] [--headless] [--verbose]

Runs the client role: watches the mailbox (IMAP IDLE where offered, polling
otherwise), verifies and opens the newest message and shows the server's
address. With a desktop it shows a tray icon and notifications; with
--headless, or without a display, it logs instead. Stops on SIGINT/SIGTERM.`

const fetchSynopsis = `ipsync fetch --once [--config F] [--json]

Reads the mailbox once and prints the newest valid address, e.g.
  office 203.0.113.7 2001:db8::7 (seq 42, issued 3m ago)
With --json: {"name", "ipv4", "ipv6", "sequence", "issued_at", "age_seconds", "format"}.
Exit 0 with an address, 1 when the mailbox holds no valid message, 2 for a
config error, 3 for a mail or network error.`

// newFetcher builds the fetcher of cfg.
func newFetcher(cfg *config.Config, log *slog.Logger) (*fetcher.Fetcher, error) {
	sec, err := resolveSecrets(cfg, config.RoleClient)
	if err != nil {
		return nil, err
	}
	_, imap, err := endpoints(cfg)
	if err != nil {
		return nil, err
	}
	statePath, err := cfg.StatePath("client-" + cfg.Name + ".json")
	if err != nil {
		return nil, usageErr("%s: state_dir: %v", cfg.Path, err)
	}
	f, err := fetcher.New(fetcher.Options{
		IMAP:           imap,
		Username:       cfg.Mail.Username,
		Password:       sec.password,
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
	fs := e.newFlags("client", clientSynopsis, true)
	headless := fs.Bool("headless", false, "no tray icon: log only")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("client takes no arguments, got %q", fs.Args())
	}
	log := e.logger(true)
	cfg, err := e.loadConfig(config.RoleClient, log)
	if config.IsNotFound(err) && e.configPath == "" {
		return firstRunClient(ctx, e, log, *headless, err)
	}
	if err != nil {
		return err
	}
	f, err := newFetcher(cfg, log)
	if err != nil {
		return err
	}
	ui := startUI(ctx, e, log, *headless, tray.Options{
		Role:       tray.RoleClient,
		Name:       cfg.Name,
		ConfigPath: cfg.Path,
		NoNotify:   !cfg.NotifyEnabled(),
		Actions:    tray.Actions{FetchNow: f.FetchNow},
	})
	return ui.run(ctx, func(ctx context.Context) error {
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
		if u.State == fetcher.Error || u.State == fetcher.Unreachable || u.State == fetcher.Stale {
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
	fs := e.newFlags("fetch", fetchSynopsis, true)
	once := fs.Bool("once", false, "read the mailbox once and exit (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if !*once {
		return usageErr("fetch needs --once (the watching client is `ipsync client`)")
	}
	if fs.NArg() > 0 {
		return usageErr("fetch takes no arguments, got %q", fs.Args())
	}
	log := e.logger(false)
	cfg, err := e.loadConfig(config.RoleClient, log)
	if err != nil {
		return err
	}
	f, err := newFetcher(cfg, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r, err := f.FetchOnce(ctx)
	if errors.Is(err, fetcher.ErrNoMessage) {
		return withCode(exitNoResult, fmt.Errorf("no valid message from %q in %s (has the server published yet? see `ipsync check`)", cfg.Name, cfg.Mail.IMAP.Mailbox))
	}
	if err != nil {
		return withCode(exitNetwork, err)
	}
	if *asJSON {
		out := struct {
			Name       string  `json:"name"`
			IPv4       *string `json:"ipv4"`
			IPv6       *string `json:"ipv6"`
			Seq        uint64  `json:"sequence"`
			IssuedAt   string  `json:"issued_at"`
			AgeSeconds int64   `json:"age_seconds"`
			Format     string  `json:"format"`
		}{Name: r.Name, Seq: r.Seq, IssuedAt: r.IssuedAt.UTC().Format(time.RFC3339), AgeSeconds: int64(r.Age / time.Second), Format: string(r.Format)}
		if r.IPv4.IsValid() {
			s := r.IPv4.String()
			out.IPv4 = &s
		}
		if r.IPv6.IsValid() {
			s := r.IPv6.String()
			out.IPv6 = &s
		}
		enc := json.NewEncoder(e.stdout)
		return enc.Encode(out)
	}
	line := r.Name
	for _, a := range []interface {
		IsValid() bool
		String() string
	}{r.IPv4, r.IPv6} {
		if a.IsValid() {
			line += " " + a.String()
		}
	}
	if r.Format == codec.FormatLegacy {
		line += fmt.Sprintf(" (legacy, unauthenticated; issued %s ago)", r.Age.Round(time.Second))
	} else {
		line += fmt.Sprintf(" (seq %d, issued %s ago)", r.Seq, r.Age.Round(time.Second))
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}

// checkClient tries the IMAP login and mailbox.
func checkClient(ctx context.Context, cfg *config.Config, _ secrets) []checkLine {
	item := fmt.Sprintf("imap %s:%d (%s) login and mailbox %s", cfg.Mail.IMAP.Host, cfg.Mail.IMAP.Port, cfg.Mail.IMAP.TLS, cfg.Mail.IMAP.Mailbox)
	f, err := newFetcher(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return []checkLine{{item: item, err: err}}
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := f.Check(ctx); err != nil {
		return []checkLine{{item: item, err: err}}
	}
	return []checkLine{{item: item, note: "ok"}}
}
