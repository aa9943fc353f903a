package enrol

import (
	"fmt"
	"time"

	"ipsync/codec"
	"ipsync/config"
)

// FromConfig returns the client bundle of the server config cfg (loaded,
// so defaults are filled in): its mail endpoints and mailbox, the client
// key of serverKey, its fetch settings and caPEM (the contents of
// mail.ca_file, or nil). The password is set by the caller according to
// the password mode.
func FromConfig(cfg *config.Config, serverKey codec.ServerKey, caPEM []byte) Bundle {
	b := Bundle{
		Role: string(config.RoleClient),
		Name: cfg.Name,
		Mail: Mail{
			Address:  cfg.Mail.Address,
			Username: cfg.Mail.Username,
			SMTP:     Endpoint{Host: cfg.Mail.SMTP.Host, Port: cfg.Mail.SMTP.Port, TLS: cfg.Mail.SMTP.TLS},
			IMAP:     Endpoint{Host: cfg.Mail.IMAP.Host, Port: cfg.Mail.IMAP.Port, TLS: cfg.Mail.IMAP.TLS},
			Mailbox:  cfg.Mail.IMAP.Mailbox,
		},
		ClientKey: serverKey.ClientKey().Text(),
		Subject:   cfg.Publisher.Subject,
		Fetch: Fetch{
			Idle:        cfg.Fetcher.Idle,
			IdleRefresh: durText(cfg.Fetcher.IdleRefresh.D()),
			PollEvery:   durText(cfg.Fetcher.PollEvery.D()),
			StaleAfter:  durText(cfg.Fetcher.StaleAfter.D()),
			ProbePort:   cfg.Fetcher.Probe.Port,
		},
		CAPEM: string(caPEM),
	}
	return b
}

func durText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// ClientConfig returns the client config of b, whose secrets are the
// references password (mail.password; unset when the PC has none yet) and
// key (codec.key), and whose mail.ca_file is caFile ("" for none). The
// config is validated as config.Parse would, except that the CA file
// need not exist yet.
func (b *Bundle) ClientConfig(path string, password, key config.Secret, caFile string) (*config.Config, error) {
	c := &config.Config{
		Role: config.RoleClient,
		Name: b.Name,
		Mail: config.Mail{
			Address:  b.Mail.Address,
			Username: b.Mail.Username,
			Password: password,
			CAFile:   caFile,
			SMTP:     config.Server{Host: b.Mail.SMTP.Host, Port: b.Mail.SMTP.Port, TLS: b.Mail.SMTP.TLS},
			IMAP:     config.IMAP{Host: b.Mail.IMAP.Host, Port: b.Mail.IMAP.Port, TLS: b.Mail.IMAP.TLS, Mailbox: b.Mail.Mailbox},
		},
		Codec:     config.Codec{Format: string(codec.FormatSealed), Key: key},
		Publisher: config.Publisher{Subject: b.Subject},
		Fetcher: config.Fetcher{
			Idle:  b.Fetch.Idle,
			Probe: config.Probe{Port: b.Fetch.ProbePort},
		},
	}
	for _, d := range []struct {
		text string
		to   *config.Duration
	}{{b.Fetch.IdleRefresh, &c.Fetcher.IdleRefresh}, {b.Fetch.PollEvery, &c.Fetcher.PollEvery}, {b.Fetch.StaleAfter, &c.Fetcher.StaleAfter}} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil {
			return nil, fmt.Errorf("%w: fetch setting %q: %v", ErrNotInvitation, d.text, err)
		}
		*d.to = config.Duration(v)
	}
	// Check all but mail.ca_file, whose file is written later.
	check := *c
	check.Mail.CAFile = ""
	data, err := check.Marshal("")
	if err != nil {
		return nil, err
	}
	if _, err := config.Parse(path, data); err != nil {
		return nil, fmt.Errorf("the invitation's settings do not make a valid config: %w", err)
	}
	c.Path = path
	return c, nil
}
