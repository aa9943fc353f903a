package config

import (
	"fmt"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"time"

	"ipsync/codec"
	"ipsync/fetcher"
	"ipsync/mailconn"
	"ipsync/publisher"
	"ipsync/publisher/discover"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// validate checks every field that is set, whatever the role. Settings a
// role needs but that are missing are checked by Require.
func (c *Config) validate(_ string) []Problem {
	var ps []Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch c.Role {
	case "", RoleServer, RoleClient:
	default:
		add("role", "%q is not a role; use server or client", c.Role)
	}
	if c.Name == "" {
		add("name", "missing; set the server's name, e.g. name: office (the same on the server and its clients)")
	} else if !nameRE.MatchString(c.Name) {
		add("name", "%q is not a valid name; use 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit", c.Name)
	}
	if c.Mail.Address == "" {
		add("mail.address", "missing; set the mailbox address, e.g. mail.address: ipsync.office@gmail.com")
	} else if !isAddress(c.Mail.Address) {
		add("mail.address", "%q is not a mail address; write it as name@example.com", c.Mail.Address)
	}
	if msg := c.Mail.Password.validateRef(); msg != "" {
		add("mail.password", "%s", msg)
	}
	ps = append(ps, c.authProblems()...)
	if c.Mail.CAFile != "" {
		if _, err := os.Stat(c.CAFile()); err != nil {
			add("mail.ca_file", "cannot read %s: %v; give the path of a PEM file of CA certificates, or remove the key", c.CAFile(), err)
		}
	}
	if c.Mail.SMTP.Host != "" {
		ps = append(ps, endpointProblems("mail.smtp", c.Mail.SMTP.Host, c.Mail.SMTP.Port, c.Mail.SMTP.TLS, smtpPorts)...)
	}
	if h := c.Mail.SMTP.HELO; h != "" && !heloName.MatchString(h) {
		add("mail.smtp.helo", "%q is not a domain name; use letters, digits, hyphens and dots (e.g. localhost), or remove the key", h)
	}
	if c.Mail.IMAP.Host != "" {
		ps = append(ps, endpointProblems("mail.imap", c.Mail.IMAP.Host, c.Mail.IMAP.Port, c.Mail.IMAP.TLS, imapPorts)...)
	}
	if strings.TrimSpace(c.Mail.IMAP.Mailbox) == "" {
		add("mail.imap.mailbox", "is empty; use INBOX or the folder the server's messages land in")
	}

	switch c.Codec.Format {
	case "sealed":
		if msg := c.Codec.Key.validateRef(); msg != "" {
			add("codec.key", "%s", msg)
		}
	case "legacy":
		ps = append(ps, c.legacyProblems()...)
	default:
		add("codec.format", "%q is not a format; use sealed (recommended) or legacy (migration only)", c.Codec.Format)
	}

	p := c.Publisher
	for i, to := range p.To {
		if !isAddress(to) {
			add(fmt.Sprintf("publisher.to[%d]", i), "%q is not a mail address; write it as name@example.com", to)
		}
	}
	if strings.ContainsAny(p.Subject, "\r\n") {
		add("publisher.subject", "must be one line")
	}
	if d := p.CheckEvery.D(); d < 10*time.Second {
		add("publisher.check_every", "%s is too short; use at least 10s (echo services rate-limit; %s is the default)", d, publisher.DefaultCheckEvery)
	}
	if d := p.HeartbeatEvery.D(); d < time.Minute {
		add("publisher.heartbeat_every", "%s is too short; use at least 1m (%s is the default)", d, publisher.DefaultHeartbeatEvery)
	} else if d < p.CheckEvery.D() {
		add("publisher.heartbeat_every", "%s is shorter than publisher.check_every (%s); make it at least as long", d, p.CheckEvery.D())
	}
	for i, s := range p.Sources {
		if strings.TrimSpace(s) == "" {
			add(fmt.Sprintf("publisher.sources[%d]", i), "is empty; name a preset or a https:// or dns:// URL")
		}
	}
	if p.Agree < 1 {
		add("publisher.agree", "%d must be at least 1 (%d is the default and recommended)", p.Agree, discover.DefaultAgree)
	} else if len(p.Sources) > 0 && p.Agree > len(p.Sources) {
		add("publisher.agree", "%d is more than the %d sources listed; list more sources or lower agree", p.Agree, len(p.Sources))
	}
	for _, f := range []struct{ key, v string }{{"publisher.ipv4", p.IPv4}, {"publisher.ipv6", p.IPv6}} {
		if f.v != "auto" && f.v != "on" && f.v != "off" {
			add(f.key, "%q must be auto, on or off", f.v)
		}
	}
	if p.IPv4 == "off" && p.IPv6 == "off" {
		add("publisher.ipv6", "publisher.ipv4 and publisher.ipv6 are both off, so there is nothing to publish; set one to auto")
	}
	if p.IPv6Suffix != "" {
		if err := discover.ValidateSuffix(p.IPv6Suffix); err != nil {
			add("publisher.ipv6_suffix", "%s", strings.TrimPrefix(err.Error(), "ipv6_suffix "))
		}
	}
	if p.KeepMessages != nil && *p.KeepMessages < 0 {
		add("publisher.keep_messages", "%d must be 0 (keep everything) or more", *p.KeepMessages)
	}

	f := c.Fetcher
	if f.Idle != "auto" && f.Idle != "on" && f.Idle != "off" {
		add("fetcher.idle", "%q must be auto, on or off", f.Idle)
	}
	if d := f.IdleRefresh.D(); d < time.Minute || d > 29*time.Minute {
		add("fetcher.idle_refresh", "%s must be between 1m and 29m (RFC 9051 allows 29; %s is the default)", d, fetcher.DefaultIdleRefresh)
	}
	if d := f.PollEvery.D(); d < 10*time.Second {
		add("fetcher.poll_every", "%s is too short; use at least 10s (providers throttle; %s is the default)", d, fetcher.DefaultPollEvery)
	}
	if d := f.StaleAfter.D(); d != 0 && d < time.Minute {
		add("fetcher.stale_after", "%s is too short; use at least 1m, or leave it unset for 2 × heartbeat + 10m", d)
	}
	if len(f.OnChange) > 0 && strings.TrimSpace(f.OnChange[0]) == "" {
		add("fetcher.on_change", "the first item must be the program to run, e.g. [/usr/local/bin/update-hosts]")
	}
	if f.Probe.Port < 0 || f.Probe.Port > 65535 {
		add("fetcher.probe.port", "%d is out of range; use 1-65535, or 0 for no probe", f.Probe.Port)
	}
	return ps
}

// legacyProblems asks codec about the legacy settings; only a missing
// factor is config's own finding.
func (c *Config) legacyProblems() []Problem {
	var ps []Problem
	l := c.Codec.Legacy
	cl := codec.Legacy{Alphabet: l.Alphabet, Padding: l.Padding}
	if l.Factor == nil {
		ps = append(ps, Problem{Key: "codec.legacy.factor", Msg: "missing; copy the factor the old deployment uses (a number in [-10, 10], not 0)"})
	} else {
		cl.Factor = *l.Factor
	}
	for _, e := range cl.SettingErrors() {
		if e.Setting == "factor" && l.Factor == nil {
			continue
		}
		ps = append(ps, Problem{Key: "codec.legacy." + e.Setting, Msg: e.Msg})
	}
	return ps
}

// heloName is what mail.smtp.helo may be: a domain name.
var heloName = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// The usual ports of each TLS mode, for messages.
var (
	smtpPorts = map[string]int{"implicit": 465, "starttls": 587, "none": 25}
	imapPorts = map[string]int{"implicit": 993, "starttls": 143, "none": 143}
)

func endpointProblems(key, host string, port int, tls string, ports map[string]int) []Problem {
	var ps []Problem
	if strings.TrimSpace(host) == "" {
		ps = append(ps, Problem{Key: key + ".host", Msg: "missing; set the server's host name, e.g. smtp.gmail.com / imap.gmail.com"})
	}
	if port < 1 || port > 65535 {
		hint := fmt.Sprintf("%d (tls: implicit) or %d (tls: starttls)", ports["implicit"], ports["starttls"])
		if p, ok := ports[tls]; ok {
			hint = fmt.Sprintf("%d, the usual port for tls: %s, or leave it out", p, tls)
		}
		ps = append(ps, Problem{Key: key + ".port", Msg: fmt.Sprintf("%d is out of range; use %s", port, hint)})
	}
	switch mailconn.TLSMode(tls) {
	case mailconn.TLSImplicit, mailconn.TLSStartTLS:
	case mailconn.TLSNone:
		if host != "" && !mailconn.IsLoopback(host) {
			ps = append(ps, Problem{Key: key + ".tls", Msg: fmt.Sprintf("none sends the password in clear and is only allowed for loopback hosts, not %q; use implicit or starttls", host)})
		}
	default:
		ps = append(ps, Problem{Key: key + ".tls", Msg: fmt.Sprintf("%q must be implicit, starttls or none (loopback only)", tls)})
	}
	return ps
}

func isAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// Require checks that the settings role needs are present, on top of what
// Load already validated. It returns a *Error or nil.
func (c *Config) Require(role Role) error {
	var ps []Problem
	add := func(key, msg string) { ps = append(ps, Problem{Key: key, Msg: msg}) }
	if c.Codec.Format == "sealed" && !c.Codec.Key.IsSet() {
		if role == RoleServer {
			add("codec.key", "missing; run `ipsync keygen`, store the server key (ipsync-server-1:…) e.g. in a file and set codec.key: file:PATH")
		} else {
			add("codec.key", "missing; set it to the client key (ipsync-client-1:…) printed by `ipsync keygen` on the server, e.g. codec.key: file:PATH")
		}
	}
	if !c.Mail.Password.IsSet() && !c.IsOAuth2() {
		add("mail.password", "missing; set it to env:NAME, file:PATH or keyring:SERVICE/USER (for Gmail, an app password)")
	}
	switch role {
	case RoleServer:
		if c.Mail.SMTP.Host == "" {
			add("mail.smtp.host", "missing; the server role sends mail: set the SMTP host, e.g. smtp.gmail.com")
		}
		if c.Codec.Format == "legacy" && c.Codec.Legacy.Padding == "" {
			add("codec.legacy.padding", "missing; the server needs the padding letters to write legacy messages")
		}
	case RoleClient:
		if c.Mail.IMAP.Host == "" {
			add("mail.imap.host", "missing; the client role reads mail: set the IMAP host, e.g. imap.gmail.com")
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &Error{Path: c.Path, Problems: ps}
}

// portWarnings flags a TLS mode that does not fit a well-known port: a
// server on 465 or 993 expects TLS at once and waits silently for a
// client that sends STARTTLS, and the other way round.
func (c *Config) portWarnings() []string {
	var w []string
	for _, e := range []struct {
		key, host, tls  string
		port            int
		implicit, plain int
	}{
		{"mail.smtp", c.Mail.SMTP.Host, c.Mail.SMTP.TLS, c.Mail.SMTP.Port, 465, 587},
		{"mail.imap", c.Mail.IMAP.Host, c.Mail.IMAP.TLS, c.Mail.IMAP.Port, 993, 143},
	} {
		if e.host == "" {
			continue
		}
		switch {
		case e.port == e.implicit && e.tls != "implicit":
			w = append(w, fmt.Sprintf("%s: %s.port %d is the implicit-TLS port but %s.tls is %s; use tls: implicit there (or port %d for %s)", c.Path, e.key, e.port, e.key, e.tls, e.plain, e.tls))
		case e.port == e.plain && e.tls == "implicit":
			w = append(w, fmt.Sprintf("%s: %s.port %d is the STARTTLS port but %s.tls is implicit; use tls: starttls there (or port %d for implicit TLS)", c.Path, e.key, e.port, e.key, e.implicit))
		}
	}
	return w
}
