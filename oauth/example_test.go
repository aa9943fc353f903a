package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"ipsync/mailconn"
	"ipsync/oauth"
)

// Signing in once, then signing in to IMAP with a token that the Source
// keeps fresh. (Not run: it would contact Microsoft.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	app, err := oauth.NewApp(oauth.Settings{Provider: oauth.Microsoft, ClientID: "00000000-0000-0000-0000-000000000000"}, oauth.AppOptions{Logger: log})
	if err != nil {
		fmt.Println("config:", err) // names the setting and the fix
		return
	}
	store, why := oauth.OpenStore("user@example.com microsoft", "/var/lib/ipsync/oauth-token", log)
	if why != "" {
		fmt.Printf("No OS keyring (%s): the refresh token goes to %s\n", why, store)
	}

	// Once: `ipsync login` (browser) or `ipsync login --device`.
	if err := app.SignInDevice(ctx, store, oauth.DeviceOptions{Out: os.Stdout}); err != nil {
		fmt.Println("sign in:", err)
		return
	}

	// At each login.
	src := app.NewSource(store, oauth.SourceOptions{})
	preset, _ := oauth.Presets(oauth.Microsoft)
	c, err := mailconn.DialIMAP(ctx, mailconn.Endpoint{Host: preset.IMAP.Host, Port: preset.IMAP.Port}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	tok, err := src.Token(ctx)
	if errors.Is(err, oauth.ErrSignInNeeded) {
		fmt.Println("sign in again:", err) // stop retrying
		return
	} else if err != nil {
		fmt.Println(err)
		return
	}
	auth := mailconn.NewXOAuth2("user@example.com", tok)
	err = c.Authenticate(auth)
	if err != nil && auth.Refusal() != nil {
		// The server refused the token: refresh once and retry once.
		if tok, err = src.Refused(ctx, tok); err == nil {
			err = c.Authenticate(mailconn.NewXOAuth2("user@example.com", tok))
		}
	}
	if err != nil {
		fmt.Println(err)
		return
	}
}
