package mailconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	gomail "github.com/wneessen/go-mail"

	"ipsync/mailconn"
	"ipsync/oauth"
)

// The rig's mailbox accepts this password too (see newOAuthRig).
const rigPassword = "password-not-used-here"

// countedPassword returns a password func that counts its calls.
func countedPassword(pw string) (func(context.Context) (string, error), func() int) {
	var mu sync.Mutex
	n := 0
	return func(context.Context) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			n++
			return pw, nil
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return n
		}
}

// badTokens is a TokenSource whose tokens every server refuses; it counts
// the calls of each method.
type badTokens struct {
	mu             sync.Mutex
	token, refused int
}

func (b *badTokens) Token(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.token++
	return "not-a-token-the-provider-issued", nil
}

func (b *badTokens) Refused(context.Context, string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused++
	return "also-not-a-token", nil
}

var _ mailconn.TokenSource = (*oauth.Source)(nil)
var _ mailconn.TokenSource = (*badTokens)(nil)

// loginIMAP dials the rig's IMAP server, signs in with a, selects INBOX and
// logs out.
func (r *oauthRig) loginIMAP(a mailconn.Auth) error {
	ctx, cancel := context.WithTimeout(r.t.Context(), oauthWait)
	defer cancel()
	host, port := splitAddr(r.t, r.mail.IMAPAddr())
	c, err := mailconn.DialIMAP(ctx, mailconn.Endpoint{Host: host, Port: port, TLS: mailconn.TLSImplicit, RootCAs: r.roots}, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := a.IMAP(ctx, c); err != nil {
		return r.noteErr(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// sendSMTP submits one message to the rig's SMTP server (STARTTLS) signed
// in with a, and reports how many times a called send.
func (r *oauthRig) sendSMTP(a mailconn.Auth, subject string) (sends int, err error) {
	ctx, cancel := context.WithTimeout(r.t.Context(), oauthWait)
	defer cancel()
	host, port := splitAddr(r.t, r.mail.SMTPAddr())
	err = a.SMTP(ctx, false, func(auth []gomail.Option) error {
		sends++
		opts := append([]gomail.Option{
			gomail.WithPort(port),
			gomail.WithTLSPolicy(gomail.TLSMandatory),
			gomail.WithTLSConfig(&tls.Config{ServerName: host, RootCAs: r.roots, MinVersion: tls.VersionTLS12}),
			gomail.WithTimeout(oauthWait),
		}, auth...)
		client, err := gomail.NewClient(host, opts...)
		if err != nil {
			return err
		}
		msg := gomail.NewMsg()
		if err := msg.From(r.user); err != nil {
			return err
		}
		if err := msg.To(r.user); err != nil {
			return err
		}
		msg.Subject(subject)
		msg.SetBodyString(gomail.TypeTextPlain, "body")
		return client.DialAndSendWithContext(ctx, msg)
	})
	return sends, r.noteErr(err)
}

func TestAuthPassword(t *testing.T) {
	t.Parallel()
	r := newOAuthRig(t)

	pw, calls := countedPassword(rigPassword)
	a := mailconn.PasswordAuth(r.user, pw)
	for i := range 2 {
		if err := r.loginIMAP(a); err != nil {
			t.Fatalf("IMAP login #%d with the right password = %v", i+1, err)
		}
	}
	if n, err := r.sendSMTP(a, "password"); err != nil || n != 1 {
		t.Fatalf("SMTP send with the right password = %d sends, %v; want 1, nil", n, err)
	}
	if got := calls(); got != 3 {
		t.Errorf("password func called %d times, want 3 (once per login, nothing kept)", got)
	}

	wrong, _ := countedPassword("wrong-password-1234")
	bad := mailconn.PasswordAuth(r.user, wrong)
	err := r.loginIMAP(bad)
	if !errors.Is(err, mailconn.ErrAuthRefused) {
		t.Errorf("IMAP login with a wrong password = %v, want ErrAuthRefused", err)
	}
	host, port := splitAddr(t, r.mail.IMAPAddr())
	imapTarget := mailconn.Target{Protocol: mailconn.IMAP, Endpoint: mailconn.Endpoint{Host: host, Port: port}, Username: r.user}
	checkExplained(t, err, imapTarget, mailconn.ProblemAuth, "mail.password", []string{"check mail.username and mail.password"})
	if _, err := r.sendSMTP(bad, "wrong"); !errors.Is(err, mailconn.ErrAuthRefused) {
		t.Errorf("SMTP send with a wrong password = %v, want ErrAuthRefused", err)
	}

	errNoFile := errors.New("open /run/secrets/pw: no such file")
	broken := mailconn.PasswordAuth(r.user, func(context.Context) (string, error) { return "", errNoFile })
	if err := r.loginIMAP(broken); !errors.Is(err, errNoFile) || errors.Is(err, mailconn.ErrAuthRefused) {
		t.Errorf("IMAP login whose password cannot be read = %v, want the read error and not ErrAuthRefused", err)
	}
	if err := r.loginIMAP(mailconn.Auth{}); err == nil {
		t.Error("IMAP login with the zero Auth = nil, want an error")
	}

	r.noteToken(rigPassword)
	r.noteToken("wrong-password-1234")
	r.noteRefreshToken()
	r.checkSecrets()
}

func TestAuthToken(t *testing.T) {
	t.Parallel()
	r := newOAuthRig(t)
	a := mailconn.TokenAuthSource(r.user, r.src)
	if !a.IsToken() || a.User() != r.user || strings.Contains(a.String(), "token-") {
		t.Errorf("Auth = %q (IsToken %v, User %q)", a, a.IsToken(), a.User())
	}

	if err := r.loginIMAP(a); err != nil {
		t.Fatalf("IMAP login with a token = %v", err)
	}
	if n, err := r.sendSMTP(a, "token"); err != nil || n != 1 {
		t.Fatalf("SMTP send with a token = %d sends, %v; want 1, nil", n, err)
	}
	if got := r.idp.Stats().Refreshes; got != 1 {
		t.Errorf("refreshes = %d, want 1 (the token is asked for at each login, refreshed once)", got)
	}

	// The provider ends the token early: each login is refused once,
	// refreshes, and succeeds on its one retry.
	r.idp.ExpireAccessTokens()
	if err := r.loginIMAP(a); err != nil {
		t.Fatalf("IMAP login after an early expiry = %v", err)
	}
	r.idp.ExpireAccessTokens()
	if n, err := r.sendSMTP(a, "after early expiry"); err != nil || n != 2 {
		t.Fatalf("SMTP send after an early expiry = %d sends, %v; want 2 (refused, retried), nil", n, err)
	}
	if tok, err := r.src.Token(t.Context()); err == nil {
		r.noteToken(tok)
	}
	r.noteRefreshToken()
	r.noteToken("not-a-token-the-provider-issued")
	if got := r.idp.Stats().Refreshes; got != 3 {
		t.Errorf("refreshes = %d, want 3", got)
	}
	msgs, err := r.mail.Messages(r.user)
	if err != nil || len(msgs) != 2 {
		t.Errorf("Messages() = %d, %v; want the 2 sent", len(msgs), err)
	}

	// Tokens the server always refuses: one refresh, one retry, then
	// ErrAuthRefused.
	b := &badTokens{}
	bad := mailconn.TokenAuthSource(r.user, b)
	if err := r.loginIMAP(bad); !errors.Is(err, mailconn.ErrAuthRefused) {
		t.Errorf("IMAP login with refused tokens = %v, want ErrAuthRefused", err)
	}
	if b.token != 1 || b.refused != 1 {
		t.Errorf("IMAP: Token called %d times, Refused %d; want 1 and 1", b.token, b.refused)
	}
	host, port := splitAddr(t, r.mail.IMAPAddr())
	imapTarget := mailconn.Target{Protocol: mailconn.IMAP, Endpoint: mailconn.Endpoint{Host: host, Port: port}, Username: r.user, OAuth2: true}
	checkExplained(t, r.loginIMAP(bad), imapTarget, mailconn.ProblemAuth, "mail.oauth2", []string{"refused the access token"})
	b = &badTokens{}
	bad = mailconn.TokenAuthSource(r.user, b)
	if n, err := r.sendSMTP(bad, "refused"); !errors.Is(err, mailconn.ErrAuthRefused) || n != 2 {
		t.Errorf("SMTP send with refused tokens = %d sends, %v; want 2, ErrAuthRefused", n, err)
	}
	if b.token != 1 || b.refused != 1 {
		t.Errorf("SMTP: Token called %d times, Refused %d; want 1 and 1", b.token, b.refused)
	}

	// The refresh token is revoked: sign-in needed, no retry storm.
	rt, err := r.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	r.noteToken(rt)
	r.idp.Revoke(rt)
	r.idp.ExpireAccessTokens()
	for i := range 3 {
		err := r.loginIMAP(a)
		if !errors.Is(err, mailconn.ErrSignInNeeded) || !errors.Is(err, oauth.ErrSignInNeeded) || errors.Is(err, mailconn.ErrAuthRefused) {
			t.Fatalf("IMAP login #%d after revocation = %v, want ErrSignInNeeded (mailconn's and oauth's) only", i+1, err)
		}
		if strings.Count(err.Error(), "sign-in needed") != 1 {
			t.Errorf("error %q repeats itself", err)
		}
		checkExplained(t, err, imapTarget, mailconn.ProblemSignIn, "mail.oauth2", []string{"run ipsync login"})
	}
	if _, err := r.sendSMTP(a, "revoked"); !errors.Is(err, mailconn.ErrSignInNeeded) || !errors.Is(err, oauth.ErrSignInNeeded) {
		t.Errorf("SMTP send after revocation = %v, want ErrSignInNeeded", err)
	}
	if got := r.idp.Stats().RefreshFailed; got != 1 {
		t.Errorf("refused refreshes = %d, want 1", got)
	}
	r.checkSecrets()
}

// failingTokens is a TokenSource whose provider cannot be reached.
type failingTokens struct{}

var errProviderDown = errors.New("refresh the access token: dial tcp: connection refused")

func (failingTokens) Token(context.Context) (string, error) { return "", errProviderDown }
func (failingTokens) Refused(context.Context, string) (string, error) {
	return "", errProviderDown
}

// TestAuthTokenSourceDown: a source that fails for a passing reason is
// neither a refusal nor a sign-in needed, so callers retry later.
func TestAuthTokenSourceDown(t *testing.T) {
	t.Parallel()
	r := newOAuthRig(t)
	a := mailconn.TokenAuthSource(r.user, failingTokens{})
	err := r.loginIMAP(a)
	if !errors.Is(err, errProviderDown) || errors.Is(err, mailconn.ErrSignInNeeded) || errors.Is(err, mailconn.ErrAuthRefused) {
		t.Errorf("IMAP login with the provider down = %v, want the source's error only", err)
	}
	_, err = r.sendSMTP(a, "down")
	if !errors.Is(err, errProviderDown) || errors.Is(err, mailconn.ErrSignInNeeded) || errors.Is(err, mailconn.ErrAuthRefused) {
		t.Errorf("SMTP send with the provider down = %v, want the source's error only", err)
	}
}

func TestIMAPTokenMech(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		caps []imap.Cap
		want string // "" = error
	}{
		{"microsoft", []imap.Cap{imap.CapIMAP4rev1, "AUTH=PLAIN", "AUTH=XOAUTH2", imap.CapSASLIR}, mailconn.MechXOAuth2},
		{"gmail", []imap.Cap{imap.CapIMAP4rev1, "AUTH=XOAUTH2", "AUTH=PLAIN", "AUTH=OAUTHBEARER"}, mailconn.MechXOAuth2},
		{"oauthbearer only", []imap.Cap{imap.CapIMAP4rev1, "AUTH=OAUTHBEARER"}, mailconn.MechOAuthBearer},
		{"lower case", []imap.Cap{imap.CapIMAP4rev1, "AUTH=xoauth2"}, mailconn.MechXOAuth2},
		{"password only", []imap.Cap{imap.CapIMAP4rev1, "AUTH=PLAIN"}, ""},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set := imap.CapSet{}
			for _, c := range tt.caps {
				set[c] = struct{}{}
			}
			got, err := mailconn.IMAPTokenMech(set)
			if got != tt.want || (err == nil) != (tt.want != "") {
				t.Errorf("IMAPTokenMech(%v) = %q, %v; want %q", tt.caps, got, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "mail.auth: password") {
				t.Errorf("error %q does not say what to do", err)
			}
		})
	}
}
