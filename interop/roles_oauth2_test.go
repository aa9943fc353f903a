package interop

import (
	"context"
	"testing"

	"ipsync/internal/dovecottest"
	"ipsync/internal/oauthtest"
	"ipsync/mailconn"
	"ipsync/publisher"
)

// TestDovecotRolesOAuth2: the roles' own IMAP logins, handed a token
// mailconn.Auth as main builds it for mail.auth: oauth2, work against a
// real Dovecot whose oauth2 passdb checks every token through the test
// provider's introspection endpoint: the publisher's retention prunes, the
// fetcher reads the newest message, and after the provider ends the access
// tokens early both sign in again with a refreshed one.
func TestDovecotRolesOAuth2(t *testing.T) {
	t.Parallel()
	idp, err := oauthtest.Start(t.Context(), oauthtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	e := newEnv(t, dovecottest.Options{ExtraConfig: dovecottest.OAuth2Config(t, idp.IntrospectURL())})
	ctx, cancel := context.WithTimeout(t.Context(), 3*oauthWait)
	defer cancel()
	auth := mailconn.TokenAuthSource(e.srv.User, signedInSource(t, ctx, idp))

	// As in TestDovecotRetention, one publisher sends (APPENDs) and
	// another, with the token, prunes.
	pub := e.newPublisher(&appendMailer{a: e.admin}, nil)
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"} {
		publish(t, pub, ip)
	}
	pruner := e.newPublisher(&appendMailer{a: e.admin}, &publisher.RetentionOptions{IMAP: e.endpoint(), Auth: auth, KeepMessages: 2})
	if n, err := pruner.Prune(ctx); err != nil || n != 2 {
		t.Fatalf("Prune() with a token = %d, %v; want 2, nil", n, err)
	}
	o := e.fetcherOptions(e.endpoint())
	o.Auth = auth
	f := e.newFetcher(o)
	if r, err := f.FetchOnce(ctx); err != nil || r.IPv4.String() != "198.51.100.4" {
		t.Fatalf("FetchOnce() with a token = %+v, %v; want 198.51.100.4", r, err)
	}

	// The provider ends the access token early: Dovecot refuses it, the
	// logins refresh it once and sign in.
	before := idp.Stats().Refreshes
	idp.ExpireAccessTokens()
	publish(t, pub, "198.51.100.5")
	if _, err := f.FetchOnce(ctx); err != nil {
		t.Fatalf("FetchOnce() after the token expired = %v", err)
	}
	if n, err := pruner.Prune(ctx); err != nil || n != 1 {
		t.Errorf("Prune() after the token expired = %d, %v; want 1, nil", n, err)
	}
	if got := idp.Stats().Refreshes; got != before+1 {
		t.Errorf("refreshes after the expiry = %d, want %d (one, shared by both roles' Auth)", got, before+1)
	}
	if s := pruner.Status(); s.SignInNeeded || s.PasswordRefused {
		t.Errorf("publisher status = %+v, want no sign-in problem", s)
	}
}
