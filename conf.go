package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/mailconn"
	"ipsync/oauth"
	"ipsync/publisher/discover"
)

func defaultConfigPath() (string, error) { return config.DefaultPath() }

// configFile is the config file a verb reads or writes: --config, else the
// default path.
func (e *env) configFile() (string, error) {
	if e.configPath != "" {
		return e.configPath, nil
	}
	path, err := defaultConfigPath()
	if err != nil {
		return "", usageErr("%v", err)
	}
	return path, nil
}

// loadConfig loads --config (or the default path) and checks what role
// needs; role "" checks only what is written. Problems are usage errors
// (exit 2). Warnings go to log.
func (e *env) loadConfig(role config.Role, log *slog.Logger) (*config.Config, error) {
	path, err := e.configFile()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if err := checkSources(cfg); err != nil {
		return nil, err
	}
	if role != "" {
		if err := cfg.Require(role); err != nil {
			return nil, withCode(exitUsage, err)
		}
	}
	return cfg, nil
}

// checkSources validates publisher.sources (presets and URLs are the
// discover package's business, so config cannot check them) as config
// problems with their line.
func checkSources(cfg *config.Config) error {
	var probs []config.Problem
	for i, spec := range cfg.Publisher.Sources {
		if err := discover.ValidateSpec(spec); err != nil {
			probs = append(probs, config.Problem{
				Key:  fmt.Sprintf("publisher.sources[%d]", i),
				Line: cfg.KeyLine("publisher.sources"),
				Msg:  err.Error(),
			})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return withCode(exitUsage, &config.Error{Path: cfg.Path, Problems: probs})
}

// secrets are the resolved secret values of a config.
type secrets struct {
	// auth is how every mail login signs in: the only holder of the way to
	// the password or token, handed to the fetcher, the mailer, retention
	// and check. It holds no secret itself (see mailconn.Auth).
	auth mailconn.Auth
	// tokens is auth's token source with mail.auth: oauth2, else nil
	// (for check's token line).
	tokens  *oauth.Source
	server  codec.ServerKey   // server role, sealed format
	clients []codec.ClientKey // client role, sealed format
}

// resolveSecrets builds the mail sign-in of cfg and reads, for the sealed
// format, the key of role. With mail.auth: password, mail.password is
// resolved once here so that a missing secret is a config error at start,
// and the value is dropped: the Auth reads it again at each login. With
// oauth2 there is no password; the Auth asks the token store (log gets its
// diagnostics). Failures are config errors (exit 2) naming the config file
// and the key.
func resolveSecrets(cfg *config.Config, role config.Role, log *slog.Logger) (secrets, error) {
	var s secrets
	if !cfg.IsOAuth2() {
		if _, err := cfg.Resolve("mail.password", cfg.Mail.Password); err != nil {
			return s, withCode(exitUsage, err)
		}
	}
	auth, src, err := mailAuth(cfg, log)
	if err != nil {
		return s, err
	}
	s.auth, s.tokens = auth, src
	if cfg.Codec.Format != string(codec.FormatSealed) {
		return s, nil
	}
	text, err := cfg.Resolve("codec.key", cfg.Codec.Key)
	if err != nil {
		if cfg.Codec.Key.Kind() == "file" {
			return s, usageErr("%s: %v: %s", cfg.Path, err, keyFileHint(role))
		}
		return s, usageErr("%s: %v", cfg.Path, err)
	}
	where := cfg.Path + ": codec.key"
	if cfg.Codec.Key.Kind() != "literal" {
		where += " (" + cfg.Codec.Key.String() + ")"
	}
	switch role {
	case config.RoleServer:
		k, err := codec.ParseServerKeyFile(text)
		if err != nil {
			return s, usageErr("%s: %v", where, err)
		}
		s.server = k
	default:
		ks, err := codec.ParseClientKeys(text)
		if err != nil {
			return s, usageErr("%s: %v", where, err)
		}
		s.clients = ks
	}
	return s, nil
}

// keyFileHint says where the key file of role comes from.
func keyFileHint(role config.Role) string {
	if role == config.RoleServer {
		return "run `ipsync keygen --out DIR` on the server and point codec.key at DIR/server.key"
	}
	return "copy client.key from the server; if the server has no key yet, run `ipsync keygen --out DIR` there first"
}

// roleOfKey is the role whose key codec.key holds, for a config that names
// no role; "" when it cannot tell.
func roleOfKey(cfg *config.Config) config.Role {
	if cfg.Codec.Format != string(codec.FormatSealed) || !cfg.Codec.Key.IsSet() {
		return ""
	}
	text, err := cfg.Resolve("codec.key", cfg.Codec.Key)
	if err != nil {
		return ""
	}
	switch codec.KindOf(text) {
	case codec.KeyServer:
		return config.RoleServer
	case codec.KeyClient:
		return config.RoleClient
	}
	return ""
}

// legacyCodec returns the legacy codec of cfg.
func legacyCodec(cfg *config.Config) codec.Legacy {
	l := codec.Legacy{Alphabet: cfg.Codec.Legacy.Alphabet, Padding: cfg.Codec.Legacy.Padding}
	if cfg.Codec.Legacy.Factor != nil {
		l.Factor = *cfg.Codec.Legacy.Factor
	}
	return l
}

// endpoints returns the SMTP and IMAP endpoints of cfg, with mail.ca_file
// loaded.
func endpoints(cfg *config.Config) (smtp, imap mailconn.Endpoint, err error) {
	var roots *x509.CertPool
	if f := cfg.CAFile(); f != "" {
		roots, err = mailconn.LoadCAFile(f)
		if err != nil {
			return smtp, imap, usageErr("%s: mail.ca_file: %v", cfg.Path, err)
		}
	}
	smtp = mailconn.Endpoint{Host: cfg.Mail.SMTP.Host, Port: cfg.Mail.SMTP.Port, TLS: mailconn.TLSMode(cfg.Mail.SMTP.TLS), RootCAs: roots}
	imap = mailconn.Endpoint{Host: cfg.Mail.IMAP.Host, Port: cfg.Mail.IMAP.Port, TLS: mailconn.TLSMode(cfg.Mail.IMAP.TLS), RootCAs: roots}
	return smtp, imap, nil
}

// explainMail is mailconn.Explain for the proto connection of cfg: a mail
// failure it recognises becomes a message that names the setting and the
// fix.
func explainMail(cfg *config.Config, proto mailconn.Protocol, err error) error {
	t := mailconn.Target{Protocol: proto, Username: cfg.Mail.Username, CAFile: cfg.Mail.CAFile != "", OAuth2: cfg.IsOAuth2()}
	if proto == mailconn.IMAP {
		t.Endpoint = mailconn.Endpoint{Host: cfg.Mail.IMAP.Host, Port: cfg.Mail.IMAP.Port, TLS: mailconn.TLSMode(cfg.Mail.IMAP.TLS)}
		t.Mailbox = cfg.Mail.IMAP.Mailbox
	} else {
		t.Endpoint = mailconn.Endpoint{Host: cfg.Mail.SMTP.Host, Port: cfg.Mail.SMTP.Port, TLS: mailconn.TLSMode(cfg.Mail.SMTP.TLS)}
	}
	return mailconn.Explain(err, t)
}
