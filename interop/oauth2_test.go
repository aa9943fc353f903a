package interop

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	gomail "github.com/wneessen/go-mail"

	"ipsync/internal/dovecottest"
	"ipsync/internal/oauthtest"
	"ipsync/loopmail"
	"ipsync/mailconn"
	"ipsync/oauth"
)

// TestDovecotOAuth2 signs in to a real Dovecot with XOAUTH2 and OAUTHBEARER
// using access tokens from the in-process OAuth2 server, which Dovecot's
// oauth2 passdb checks through the introspection endpoint on every login.
// A token the provider ended early is refused by Dovecot with the RFC 7628
// error challenge; the client answers it, refreshes once and signs in on
// the same connection.
const oauthWait = 20 * time.Second

// signedInSource signs in to idp through the browser flow (an HTTP client
// standing in for the browser) and returns the token source.
func signedInSource(t *testing.T, ctx context.Context, idp *oauthtest.Server) *oauth.Source {
	t.Helper()
	app, err := oauth.NewApp(oauth.Settings{
		Provider: oauth.Custom, ClientID: idp.ClientID(), Scopes: []string{"mail"},
		AuthURL: idp.AuthURL(), TokenURL: idp.TokenURL(),
	}, oauth.AppOptions{HTTPClient: &http.Client{Timeout: oauthWait}})
	if err != nil {
		t.Fatal(err)
	}
	store := oauth.FileStore{Path: filepath.Join(t.TempDir(), "token")}
	browser := func(u string) error {
		resp, err := (&http.Client{Timeout: oauthWait}).Get(u)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := app.SignInBrowser(ctx, store, oauth.BrowserOptions{Open: browser}); err != nil {
		t.Fatalf("SignInBrowser() = %v", err)
	}
	return app.NewSource(store, oauth.SourceOptions{})
}

func TestDovecotOAuth2(t *testing.T) {
	t.Parallel()
	const wait = oauthWait
	idp, err := oauthtest.Start(t.Context(), oauthtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	srv := dovecottest.Start(t, dovecottest.Options{ExtraConfig: dovecottest.OAuth2Config(t, idp.IntrospectURL())})
	if srv.User != idp.User() {
		t.Fatalf("Dovecot user %q differs from the provider's user %q", srv.User, idp.User())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*wait)
	defer cancel()
	src := signedInSource(t, ctx, idp)

	ap, err := netip.ParseAddrPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ep := mailconn.Endpoint{Host: ap.Addr().String(), Port: int(ap.Port()), TLS: mailconn.TLSNone}
	newAuth := func(mech, tok string) *mailconn.TokenAuth {
		if mech == mailconn.MechOAuthBearer {
			return mailconn.NewOAuthBearer(srv.User, tok, ep.Host, ep.Port)
		}
		return mailconn.NewXOAuth2(srv.User, tok)
	}
	// login signs in with mech, retrying once after a refusal, and reports
	// the number of AUTHENTICATE commands.
	login := func(mech string) (int, error) {
		dctx, dcancel := context.WithTimeout(ctx, wait)
		defer dcancel()
		c, err := mailconn.DialIMAP(dctx, ep, nil)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		stop := context.AfterFunc(dctx, func() { c.Close() })
		defer stop()
		if !c.Caps().Has(imap.AuthCap(mech)) {
			t.Errorf("Dovecot capabilities %v lack AUTH=%s", c.Caps(), mech)
		}
		tok, err := src.Token(dctx)
		if err != nil {
			return 0, err
		}
		auth := newAuth(mech, tok)
		n := 1
		err = c.Authenticate(auth)
		if err != nil && auth.Refusal() != nil {
			t.Logf("%s refused as expected: %v (challenge status %q)", mech, err, auth.Refusal().Status)
			if tok, err = src.Refused(dctx, tok); err != nil {
				return n, err
			}
			n++
			err = c.Authenticate(newAuth(mech, tok))
		}
		if err != nil {
			return n, err
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			return n, err
		}
		return n, c.Logout().Wait()
	}

	for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		before := idp.Stats().Introspections
		if n, err := login(mech); err != nil || n != 1 {
			t.Fatalf("Dovecot login with %s = %d attempts, %v; want 1, nil", mech, n, err)
		}
		if got := idp.Stats().Introspections - before; got < 1 {
			t.Errorf("Dovecot login with %s made %d introspection requests, want at least 1", mech, got)
		}
	}
	for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		idp.ExpireAccessTokens()
		if n, err := login(mech); err != nil || n != 2 {
			t.Fatalf("Dovecot login with %s and a token ended early = %d attempts, %v; want 2 (refused, retried), nil", mech, n, err)
		}
	}
}

// TestDovecotSubmissionOAuth2 sends mail through Dovecot's SMTP submission
// service with XOAUTH2 (go-mail's) and OAUTHBEARER (mailconn.SMTPAuth);
// Dovecot checks the token through its oauth2 passdb and relays the mail to
// loopmail. A token the provider ended early gets 535.
func TestDovecotSubmissionOAuth2(t *testing.T) {
	t.Parallel()
	idp, err := oauthtest.Start(t.Context(), oauthtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	const relayUser, relayPassword, inbox = "relay@example.test", "relay-password", "inbox@example.test"
	relay, err := loopmail.Start(t.Context(), loopmail.Options{Users: map[string]string{relayUser: relayPassword, inbox: "unused"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	sub := dovecottest.SubmissionConfig(t, relay.SMTPAddr(), relayUser, relayPassword)
	srv := dovecottest.Start(t, dovecottest.Options{ExtraConfig: dovecottest.OAuth2Config(t, idp.IntrospectURL()) + sub.Config})

	ctx, cancel := context.WithTimeout(t.Context(), 3*oauthWait)
	defer cancel()
	src := signedInSource(t, ctx, idp)
	ap, err := netip.ParseAddrPort(sub.Addr)
	if err != nil {
		t.Fatal(err)
	}
	send := func(mech, subject string) error {
		tok, err := src.Token(ctx)
		if err != nil {
			return err
		}
		opts := []gomail.Option{
			gomail.WithPort(int(ap.Port())),
			gomail.WithTLSPolicy(gomail.NoTLS),
			gomail.WithTimeout(oauthWait),
			gomail.WithHELO("localhost"),
		}
		if mech == mailconn.MechXOAuth2 {
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthXOAUTH2), gomail.WithUsername(srv.User), gomail.WithPassword(tok))
		} else {
			opts = append(opts, gomail.WithSMTPAuthCustom(mailconn.SMTPAuth(mailconn.NewOAuthBearer(srv.User, tok, ap.Addr().String(), int(ap.Port())))))
		}
		c, err := gomail.NewClient(ap.Addr().String(), opts...)
		if err != nil {
			return err
		}
		msg := gomail.NewMsg()
		if err := msg.From(srv.User); err != nil {
			return err
		}
		if err := msg.To(inbox); err != nil {
			return err
		}
		msg.Subject(subject)
		msg.SetBodyString(gomail.TypeTextPlain, "sent through Dovecot submission with "+mech)
		return c.DialAndSendWithContext(ctx, msg)
	}
	mechs := []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer}
	for _, mech := range mechs {
		if err := send(mech, "via "+mech); err != nil {
			t.Fatalf("send through Dovecot submission with %s = %v", mech, err)
		}
	}
	msgs, err := relay.Messages(inbox)
	if err != nil || len(msgs) != len(mechs) {
		t.Fatalf("relayed messages = %d, %v; want %d", len(msgs), err, len(mechs))
	}
	for i, mech := range mechs {
		if !strings.Contains(string(msgs[i]), "Subject: via "+mech) {
			t.Errorf("relayed message %d lacks Subject: via %s", i, mech)
		}
	}
	idp.ExpireAccessTokens()
	for _, mech := range mechs {
		if err := send(mech, "refused"); err == nil || !strings.Contains(err.Error(), "535") {
			t.Errorf("send with %s and a token ended early = %v, want a 535 refusal", mech, err)
		}
	}
}
