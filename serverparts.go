package main

import (
	"log/slog"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/publisher"
	"ipsync/statefile"
)

// newMailer builds the SMTP mailer of cfg: the submission server of
// mail.smtp, signed in with sec.auth.
func newMailer(cfg *config.Config, sec secrets, log *slog.Logger) (*publisher.SMTPMailer, error) {
	smtp, _, err := endpoints(cfg)
	if err != nil {
		return nil, err
	}
	m, err := publisher.NewSMTPMailer(publisher.SMTPOptions{
		Endpoint: smtp,
		Auth:     sec.auth,
		HELO:     cfg.Mail.SMTP.HELO,
		Logger:   log,
	})
	if err != nil {
		return nil, usageErr("%s: %v", cfg.Path, err)
	}
	return m, nil
}

// newStore returns the server's state file of cfg, in state_dir.
func newStore(cfg *config.Config) (publisher.FileStore, error) {
	path, err := cfg.StatePath("server-" + cfg.Name + ".json")
	if err != nil {
		return publisher.FileStore{}, usageErr("%s: state_dir: %v", cfg.Path, err)
	}
	if err := statefile.Check(path); err != nil {
		return publisher.FileStore{}, usageErr("%s: state_dir: %v", cfg.Path, err)
	}
	return publisher.FileStore{Path: path}, nil
}

// newPruner builds the mailbox retention of cfg over mail.imap, or returns
// nil when it is off: no IMAP server configured, publisher.keep_messages 0,
// or the legacy format, whose messages carry no signature, so the server
// could not tell its own from forged ones (it logs that once).
func newPruner(cfg *config.Config, sec secrets, log *slog.Logger) (publisher.Pruner, error) {
	if cfg.Mail.IMAP.Host == "" || *cfg.Publisher.KeepMessages <= 0 {
		return nil, nil
	}
	if cfg.Codec.Format != string(codec.FormatSealed) {
		log.Warn("mailbox retention is off with the legacy format: its messages carry no signature, "+
			"so the server cannot prove which ones are its own; delete old messages by hand",
			"keep_messages", *cfg.Publisher.KeepMessages)
		return nil, nil
	}
	own := sec.server.ClientKey()
	_, imap, err := endpoints(cfg)
	if err != nil {
		return nil, err
	}
	r, err := publisher.NewIMAPPruner(publisher.RetentionOptions{
		IMAP:         imap,
		Auth:         sec.auth,
		Mailbox:      cfg.Mail.IMAP.Mailbox,
		KeepMessages: *cfg.Publisher.KeepMessages,
		Open:         func(body string) (codec.Payload, error) { return codec.Open(body, own) },
		Logger:       log,
	})
	if err != nil {
		return nil, usageErr("%s: %v", cfg.Path, err)
	}
	return r, nil
}
