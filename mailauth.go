package main

import (
	"context"
	"log/slog"
	"net/http"

	"ipsync/config"
	"ipsync/mailconn"
	"ipsync/oauth"
)

// openOAuth returns the OAuth2 app of cfg's mail.oauth2 and the store of
// its refresh token: the OS keyring, or the 0600 token file under the state
// directory where there is no keyring (why says then why not). hc nil means
// package oauth's default client. Problems are config errors (exit 2).
func openOAuth(cfg *config.Config, log *slog.Logger, hc *http.Client) (app *oauth.App, store oauth.Store, why string, err error) {
	settings, err := cfg.OAuth2Settings()
	if err != nil {
		return nil, nil, "", withCode(exitUsage, err)
	}
	app, err = oauth.NewApp(settings, oauth.AppOptions{HTTPClient: hc, Logger: log})
	if err != nil {
		// Load has validated the same settings; only a secret that
		// resolves to something odd gets here.
		return nil, nil, "", usageErr("%s: mail.oauth2: %v", cfg.Path, err)
	}
	file, err := cfg.OAuth2TokenFile()
	if err != nil {
		return nil, nil, "", withCode(exitUsage, err)
	}
	store, why = oauth.OpenStore(cfg.OAuth2TokenAccount(), file, log)
	return app, store, why, nil
}

// mailAuth returns how cfg signs in to its mail servers, for the fetcher,
// the publisher (SMTP and retention) and check. With mail.auth: password,
// mail.password is read again at each login (a changed file or keyring
// entry is picked up; nothing keeps it). With oauth2, each login asks the
// returned Source for an access token; it is nil for password. Nothing here
// does I/O but opening the token store.
func mailAuth(cfg *config.Config, log *slog.Logger) (mailconn.Auth, *oauth.Source, error) {
	if !cfg.IsOAuth2() {
		if !cfg.Mail.Password.IsSet() {
			return mailconn.Auth{}, nil, usageErr("%s: mail.password: missing; set it to env:NAME, file:PATH or keyring:SERVICE/USER, or use mail.auth: oauth2", cfg.Path)
		}
		pw := func(context.Context) (string, error) {
			return cfg.Resolve("mail.password", cfg.Mail.Password)
		}
		return mailconn.PasswordAuth(cfg.Mail.Username, pw), nil, nil
	}
	app, store, _, err := openOAuth(cfg, log, nil)
	if err != nil {
		return mailconn.Auth{}, nil, err
	}
	src := app.NewSource(store, oauth.SourceOptions{})
	return mailconn.TokenAuthSource(cfg.Mail.Username, src), src, nil
}
