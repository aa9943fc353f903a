package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"ipsync/oauth"
)

// The values of mail.auth.
const (
	AuthPassword = "password" // mail.password, sent with LOGIN / AUTH PLAIN (the default)
	AuthOAuth2   = "oauth2"   // an OAuth2 access token from mail.oauth2, sent with XOAUTH2
)

// OAuth2 is mail.oauth2: the provider and the app the user registered
// there. The rules and defaults are package oauth's (oauth.Settings); see
// docs/oauth2.md.
type OAuth2 struct {
	Provider     string   `yaml:"provider"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret Secret   `yaml:"client_secret"`
	Tenant       string   `yaml:"tenant"`
	Scopes       []string `yaml:"scopes"`
	AuthURL      string   `yaml:"auth_url"`
	TokenURL     string   `yaml:"token_url"`
	DeviceURL    string   `yaml:"device_url"`
}

// IsOAuth2 reports whether mail.auth is oauth2.
func (c *Config) IsOAuth2() bool { return c.Mail.Auth == AuthOAuth2 }

// isZero reports whether no key of mail.oauth2 is written.
func (o OAuth2) isZero() bool {
	return o.Provider == "" && o.ClientID == "" && !o.ClientSecret.IsSet() && o.Tenant == "" &&
		len(o.Scopes) == 0 && o.AuthURL == "" && o.TokenURL == "" && o.DeviceURL == ""
}

// settings returns mail.oauth2 as oauth.Settings with secret as the client
// secret.
func (o OAuth2) settings(secret string) oauth.Settings {
	return oauth.Settings{
		Provider:     oauth.Provider(o.Provider),
		ClientID:     o.ClientID,
		ClientSecret: secret,
		Tenant:       o.Tenant,
		Scopes:       o.Scopes,
		AuthURL:      o.AuthURL,
		TokenURL:     o.TokenURL,
		DeviceURL:    o.DeviceURL,
	}
}

// OAuth2Settings resolves mail.oauth2.client_secret (if set) and returns
// the settings package oauth signs in with. The error names the key.
func (c *Config) OAuth2Settings() (oauth.Settings, error) {
	secret := ""
	if c.Mail.OAuth2.ClientSecret.IsSet() {
		var err error
		secret, err = c.Resolve("mail.oauth2.client_secret", c.Mail.OAuth2.ClientSecret)
		if err != nil {
			return oauth.Settings{}, err
		}
	}
	return c.Mail.OAuth2.settings(secret), nil
}

// OAuth2TokenAccount is the account name the refresh token is kept under in
// the OS keyring (service oauth.KeyringService): the login and the provider,
// so that two configs for the same mailbox share one sign-in.
func (c *Config) OAuth2TokenAccount() string {
	return c.Mail.Username + " " + c.Mail.OAuth2.Provider
}

// OAuth2TokenFile is the file the refresh token is kept in where there is
// no OS keyring: oauth2-refresh-token under the state directory, named
// after the login and provider so that two configs for different mailboxes
// sharing a state_dir do not mix their tokens.
func (c *Config) OAuth2TokenFile() (string, error) {
	name := "oauth2-" + fileSafe(c.Mail.Username) + "-" + fileSafe(c.Mail.OAuth2.Provider) + ".token"
	return c.StatePath(name)
}

// fileSafe keeps letters, digits, '.', '-', '_' and '@' of s, and replaces
// everything else with '_'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			return r
		}
		return '_'
	}, s)
}

// applyOAuth2Defaults fills the mail hosts from the provider's preset when
// mail.auth is oauth2 and a host is unset. It runs before the port and TLS
// defaults, and sets a preset's port and TLS mode only together with its
// host.
func (c *Config) applyOAuth2Defaults() {
	if c.Mail.Auth == "" {
		c.Mail.Auth = AuthPassword
	}
	if !c.IsOAuth2() {
		return
	}
	preset, ok := oauth.Presets(oauth.Provider(c.Mail.OAuth2.Provider))
	if !ok {
		return
	}
	if c.Mail.SMTP.Host == "" && preset.SMTP.Host != "" {
		c.Mail.SMTP = Server{Host: preset.SMTP.Host, Port: preset.SMTP.Port, TLS: preset.SMTP.TLS}
	}
	if c.Mail.IMAP.Host == "" && preset.IMAP.Host != "" {
		c.Mail.IMAP.Host, c.Mail.IMAP.Port, c.Mail.IMAP.TLS = preset.IMAP.Host, preset.IMAP.Port, preset.IMAP.TLS
	}
}

// authProblems checks mail.auth and, for oauth2, asks package oauth about
// mail.oauth2.
func (c *Config) authProblems() []Problem {
	var ps []Problem
	switch c.Mail.Auth {
	case AuthPassword:
		if !c.Mail.OAuth2.isZero() {
			ps = append(ps, Problem{Key: "mail.oauth2", Msg: "is set but mail.auth is password, so it would be ignored; set mail.auth: oauth2 to sign in with it, or remove mail.oauth2"})
		}
		return ps
	case AuthOAuth2:
	default:
		return []Problem{{Key: "mail.auth", Msg: fmt.Sprintf("%q must be password or oauth2 (Microsoft 365, Outlook.com, Google; see docs/oauth2.md)", c.Mail.Auth)}}
	}
	o := c.Mail.OAuth2
	if msg := o.ClientSecret.validateRef(); msg != "" {
		ps = append(ps, Problem{Key: "mail.oauth2.client_secret", Msg: msg})
	}
	// The secret is not read here: a placeholder tells Validate whether
	// one is given.
	placeholder := ""
	if o.ClientSecret.IsSet() {
		placeholder = "set"
	}
	err := o.settings(placeholder).Validate()
	if err == nil {
		return ps
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var fe *oauth.FieldError
		if errors.As(e, &fe) {
			msg := fe.Msg
			if fe.Key == "provider" && o.Provider == "" {
				msg = "is missing; mail.auth: oauth2 needs the provider: microsoft (Microsoft 365, Outlook.com), google (Gmail, Google Workspace) or custom"
			}
			ps = append(ps, Problem{Key: "mail.oauth2." + fe.Key, Msg: msg})
		} else {
			ps = append(ps, Problem{Key: "mail.oauth2", Msg: e.Error()})
		}
	}
	return ps
}

// oauth2Warnings flags a mail.password that oauth2 does not use.
func (c *Config) oauth2Warnings() []string {
	if !c.IsOAuth2() || !c.Mail.Password.IsSet() {
		return nil
	}
	at := ""
	if l := c.keyLines["mail.password"]; l > 0 {
		at = "line " + strconv.Itoa(l) + ": "
	}
	return []string{fmt.Sprintf("%s: %smail.password is not used with mail.auth: oauth2; remove it", c.Path, at)}
}
