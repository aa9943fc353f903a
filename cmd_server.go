package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/mailconn"
	"ipsync/publisher"
	"ipsync/publisher/discover"
	"ipsync/tray"
)

const serverSynopsis = `ipsync server [--config F] [--headless] [--verbose]

Runs the server role: checks the public address every publisher.check_every,
mails it at once when it changes and as a heartbeat every
publisher.heartbeat_every otherwise. With a desktop it shows a tray icon;
with --headless, or without a display, it logs instead (systemd, scripts).
Stops on SIGINT/SIGTERM.`

const publishSynopsis = `ipsync publish --once [--config F] [--ip ADDR]... [--allow-documentation-ip]

Finds the public address now (or takes it from --ip, once per family, no
detection) and sends one message, then prints what it sent. --ip takes
public addresses only, by the same rule as discovery; demos and tests
publish documentation-range addresses with --allow-documentation-ip.
Exit 0 when sent, 1 when no address could be agreed, 2 for a config error,
3 for a mail or network error, 4 when this computer failed (e.g. the state
file cannot be written).`

// discoverAdapter adapts a discover.Discoverer to publisher.Finder.
type discoverAdapter struct{ d *discover.Discoverer }

func (a discoverAdapter) Find(ctx context.Context) (publisher.Addrs, error) {
	r, err := a.d.Discover(ctx)
	return publisher.Addrs{IPv4: r.IPv4, IPv6: r.IPv6}, err
}

// newDiscoverer builds the address discovery of cfg.
func newDiscoverer(cfg *config.Config, log *slog.Logger) (*discover.Discoverer, error) {
	d, err := discover.New(discover.Options{
		Sources:    cfg.Publisher.Sources,
		Agree:      cfg.Publisher.Agree,
		IPv4:       discover.Mode(cfg.Publisher.IPv4),
		IPv6:       discover.Mode(cfg.Publisher.IPv6),
		IPv6Suffix: cfg.Publisher.IPv6Suffix,
		UserAgent:  discover.UserAgent(version),
		Logger:     log.With("part", "discover"),
	})
	if err != nil {
		return nil, usageErr("%s: publisher: %v", cfg.Path, err)
	}
	return d, nil
}

// encoder returns the message encoder of cfg for the server.
func encoder(cfg *config.Config, sec secrets) func(codec.Payload) (string, error) {
	if cfg.Codec.Format == string(codec.FormatLegacy) {
		l := legacyCodec(cfg)
		return func(p codec.Payload) (string, error) {
			if !p.IPv4.IsValid() {
				return "", errors.New("the legacy format carries IPv4 only, and there is no IPv4 address")
			}
			text, err := l.Encode(p.IPv4)
			return text + "\n", err
		}
	}
	key := sec.server
	return func(p codec.Payload) (string, error) { return codec.Seal(p, key, nil) }
}

// newPublisher builds the publisher of cfg with its mailer, state store
// and mailbox retention; f may be nil for --ip.
func newPublisher(cfg *config.Config, sec secrets, f publisher.Finder, log *slog.Logger, onStatus func(publisher.Status)) (*publisher.Publisher, error) {
	log = log.With("role", "server")
	mailer, err := newMailer(cfg, sec, log)
	if err != nil {
		return nil, err
	}
	store, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	pruner, err := newPruner(cfg, sec, log)
	if err != nil {
		return nil, err
	}
	p, err := publisher.New(publisher.Options{
		Name:           cfg.Name,
		Subject:        cfg.Publisher.Subject,
		From:           cfg.Mail.Address,
		To:             cfg.Publisher.To,
		Mailer:         mailer,
		Encode:         encoder(cfg, sec),
		Finder:         f,
		CheckEvery:     cfg.Publisher.CheckEvery.D(),
		HeartbeatEvery: cfg.Publisher.HeartbeatEvery.D(),
		SeqFloor:       publisher.UnixSeq,
		IPv4Off:        cfg.Publisher.IPv4 == "off",
		IPv6Off:        cfg.Publisher.IPv6 == "off",
		Store:          store,
		Pruner:         pruner,
		Logger:         log,
		OnStatus:       onStatus,
	})
	if err != nil {
		return nil, usageErr("%s: %v", cfg.Path, err)
	}
	return p, nil
}

func runServer(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("server", serverSynopsis, flagConfig|flagHeadless)
	log, cfg, err := e.start(fs, args, startOpts{role: config.RoleServer, longRunning: true})
	if config.IsNotFound(err) {
		if handled, ierr := firstRunServer(ctx, e, err); handled {
			return ierr
		}
	}
	if err != nil {
		return err
	}
	sec, err := resolveSecrets(cfg, config.RoleServer, log)
	if err != nil {
		return err
	}
	d, err := newDiscoverer(cfg, log)
	if err != nil {
		return err
	}
	// The tray comes first, so that every status the publisher reports
	// has somewhere to go. The tray calls its actions only while it runs
	// (u.run, below), by when p is set.
	var p *publisher.Publisher
	actions := tray.Actions{
		PublishNow: func() { p.PublishNow() },
		SetPaused:  func(paused bool) { p.SetPaused(paused) },
	}
	if cfg.IsOAuth2() {
		// After a sign-in, publish at once: that ends the "sign-in
		// needed" status (and retention's, with PublishNow).
		actions.SignIn = traySignIn(ctx, cfg, log, func(err error) {
			if err == nil {
				p.PublishNow()
			}
		})
	}
	u := startUI(ctx, e, log, tray.Options{
		Role:       tray.RoleServer,
		Name:       cfg.Name,
		ConfigPath: cfg.Path,
		NoNotify:   !cfg.NotifyEnabled(),
		Actions:    actions,
	})
	p, err = newPublisher(cfg, sec, discoverAdapter{d}, log, func(s publisher.Status) {
		u.set(s.Health())
	})
	if err != nil {
		return err
	}
	u.set(p.Status().Health())
	log.Info("server running", "name", cfg.Name, "check_every", cfg.Publisher.CheckEvery.D(),
		"heartbeat_every", cfg.Publisher.HeartbeatEvery.D(), "to", strings.Join(cfg.Publisher.To, ","),
		"ipv4_sources", len(d.Sources(discover.V4)), "ipv6_sources", len(d.Sources(discover.V6)), "format", cfg.Codec.Format)
	return u.run(ctx, p.Run)
}

func runPublish(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("publish", publishSynopsis, flagConfig)
	once := fs.Bool("once", false, "send one message and exit (required)")
	var ips []string
	fs.Func("ip", "publish `ADDR` instead of detecting the address (IPv4 and/or IPv6: repeat for both)", func(s string) error {
		ips = append(ips, s)
		return nil
	})
	docIP := fs.Bool("allow-documentation-ip", false, "accept --ip addresses from the documentation ranges (203.0.113.0/24, 2001:db8::/32, ...): demos and tests only")
	var addrs publisher.Addrs
	log, cfg, err := e.start(fs, args, startOpts{role: config.RoleServer, checkFlags: func() error {
		if !*once {
			return usageErr("publish needs --once (the publishing loop is `ipsync server`)")
		}
		var allow discover.Exceptions
		if *docIP {
			allow = discover.DocumentationRanges
		}
		var err error
		addrs, err = parseIPFlags(ips, allow)
		return err
	}})
	if err != nil {
		return err
	}
	if !addrs.IsZero() && cfg.Codec.Format == string(codec.FormatLegacy) && !addrs.IPv4.IsValid() {
		return usageErr("--ip: the legacy format carries IPv4 only; give an IPv4 address")
	}
	sec, err := resolveSecrets(cfg, config.RoleServer, log)
	if err != nil {
		return err
	}
	var d publisher.Finder
	if addrs.IsZero() {
		dd, err := newDiscoverer(cfg, log)
		if err != nil {
			return err
		}
		d = discoverAdapter{dd}
	}
	p, err := newPublisher(cfg, sec, d, log, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var sent publisher.Sent
	if addrs.IsZero() {
		sent, err = p.RunOnce(ctx)
	} else {
		sent, err = p.PublishAddrs(ctx, addrs)
	}
	switch {
	case err == nil:
	case errors.Is(err, discover.ErrNoAgreement) || errors.Is(err, publisher.ErrNoAddress):
		return withCode(exitNoResult, err)
	case p.Status().LastErrorSending:
		// Reserving the number, encoding or sending: exitCode tells the
		// mail failures (3) from this computer's (4).
		log.Debug("publish failed", "err", err)
		return explainMail(cfg, mailconn.SMTP, err)
	default:
		// The address check: its sources are on the network.
		return withCode(exitNetwork, err)
	}
	fmt.Fprintf(e.stdout, "sent %s for %q (seq %d) to %s\n", sent.Addrs, cfg.Name, sent.Seq, strings.Join(sent.To, ", "))
	for _, r := range sent.Refused {
		fmt.Fprintf(e.stderr, "ipsync: not delivered to %s: refused %s (publisher.to: fix or remove the address)\n", r.Rcpt, r)
	}
	return nil
}

// parseIPFlags validates --ip values: at most one per family, and public
// by discovery's rule (relaxed only by allow).
func parseIPFlags(ips []string, allow discover.Exceptions) (publisher.Addrs, error) {
	var a publisher.Addrs
	for _, s := range ips {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return a, usageErr("--ip %q is not an IP address", s)
		}
		ip = ip.Unmap()
		if err := discover.CheckPublic(ip, allow); err != nil {
			hint := "give the address the internet sees (`ipsync check` shows what the sources see)"
			if discover.CheckPublic(ip, allow|discover.DocumentationRanges) == nil {
				hint = "for a demo or test, add --allow-documentation-ip"
			}
			return a, usageErr("--ip %v; %s", err, hint)
		}
		if ip.Is4() {
			if a.IPv4.IsValid() {
				return a, usageErr("--ip given twice for IPv4 (%s and %s)", a.IPv4, ip)
			}
			a.IPv4 = ip
		} else {
			if a.IPv6.IsValid() {
				return a, usageErr("--ip given twice for IPv6 (%s and %s)", a.IPv6, ip)
			}
			a.IPv6 = ip
		}
	}
	return a, nil
}

// checkServer tries the SMTP login and asks every address source once.
func checkServer(ctx context.Context, cfg *config.Config, sec secrets) []checkLine {
	quiet := slog.New(slog.DiscardHandler)
	var lines []checkLine
	smtpItem := fmt.Sprintf("smtp %s:%d (%s) login", cfg.Mail.SMTP.Host, cfg.Mail.SMTP.Port, cfg.Mail.SMTP.TLS)
	m, err := newMailer(cfg, sec, quiet)
	if err != nil {
		lines = append(lines, checkLine{item: smtpItem, err: err})
	} else {
		sctx, cancel := context.WithTimeoutCause(ctx, checkTimeout, errCheckTimeout)
		err := m.Check(sctx)
		cancel()
		lines = append(lines, checkLine{item: smtpItem, err: explainMail(cfg, mailconn.SMTP, err), note: "ok"})
		if err == nil {
			lines = append(lines, checkRecipients(ctx, cfg, m)...)
		}
	}
	if cfg.Mail.IMAP.Host != "" && *cfg.Publisher.KeepMessages > 0 && cfg.Codec.Format != string(codec.FormatSealed) {
		lines = append(lines, checkLine{item: "mailbox retention", note: "off: legacy messages carry no signature, so the server cannot prove which are its own"})
	} else if cfg.Mail.IMAP.Host != "" && *cfg.Publisher.KeepMessages > 0 {
		item := fmt.Sprintf("imap %s:%d (%s) login for retention (keep_messages %d)", cfg.Mail.IMAP.Host, cfg.Mail.IMAP.Port, cfg.Mail.IMAP.TLS, *cfg.Publisher.KeepMessages)
		lines = append(lines, checkLine{item: item, err: checkIMAPLogin(ctx, cfg, sec), note: "ok"})
	}
	d, err := newDiscoverer(cfg, quiet)
	if err != nil {
		return append(lines, checkLine{item: "address sources", err: err})
	}
	for _, r := range d.Check(ctx) {
		item := fmt.Sprintf("source %s %s (%s; %s)", r.Family, r.Name, r.Operator, r.Trust())
		if r.Err != nil {
			lines = append(lines, checkLine{item: item, err: r.Err})
			continue
		}
		lines = append(lines, checkLine{item: item, note: fmt.Sprintf("%s in %s", r.Addr, r.Took.Round(time.Millisecond))})
	}
	return lines
}

// checkRecipients asks the SMTP server about each of publisher.to: one
// line per recipient, refused ones as errors.
func checkRecipients(ctx context.Context, cfg *config.Config, m *publisher.SMTPMailer) []checkLine {
	to := cfg.Publisher.To
	if len(to) == 0 {
		to = []string{cfg.Mail.Address}
	}
	sctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	refused, err := m.CheckRecipients(sctx, cfg.Mail.Address, to)
	if err != nil {
		return []checkLine{{item: "recipients", err: err}}
	}
	var lines []checkLine
	for _, r := range to {
		line := checkLine{item: "recipient " + r, note: "accepted at RCPT TO"}
		for _, f := range refused {
			if f.Rcpt == r {
				line.err = fmt.Errorf("refused %s (publisher.to: fix or remove the address; the other recipients still get every message)", f)
			}
		}
		lines = append(lines, line)
	}
	return lines
}

// checkIMAPLogin logs in to the IMAP server and opens the mailbox
// read-only, as retention will (retention itself deletes, so it is not run).
func checkIMAPLogin(ctx context.Context, cfg *config.Config, sec secrets) error {
	_, ep, err := endpoints(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, checkTimeout, errCheckTimeout)
	defer cancel()
	c, err := mailconn.LoginIMAP(ctx, ep, sec.auth, nil)
	if err != nil {
		return explainMail(cfg, mailconn.IMAP, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := c.Select(cfg.Mail.IMAP.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return explainMail(cfg, mailconn.IMAP, fmt.Errorf("open mailbox %q: %w", cfg.Mail.IMAP.Mailbox, err))
	}
	return explainMail(cfg, mailconn.IMAP, c.Logout().Wait())
}
