package mailconn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	gomail "github.com/wneessen/go-mail"

	"ipsync/internal/oauthtest"
	"ipsync/loopmail"
	"ipsync/mailconn"
	"ipsync/oauth"
)

const oauthWait = 10 * time.Second

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// oauthRig is an OAuth2 provider (oauthtest), a mail server checking its
// tokens by introspection over HTTP (loopmail), and a signed-in Source.
type oauthRig struct {
	t      *testing.T
	clock  *fakeClock
	idp    *oauthtest.Server
	mail   *loopmail.Server
	store  oauth.FileStore
	src    *oauth.Source
	user   string
	roots  *x509.CertPool
	logs   *syncBuffer
	mu     sync.Mutex
	tokens []string // every token seen, for the secrecy check
	texts  []string // every error text, for the secrecy check
}

func newOAuthRig(t *testing.T) *oauthRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), oauthWait)
	defer cancel()
	r := &oauthRig{t: t, clock: &fakeClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}, user: "alice@example.test", logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	r.idp, err = oauthtest.Start(t.Context(), oauthtest.Options{User: r.user, Now: r.clock.Now, AccessTTL: time.Hour, RotateRefreshTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.idp.Close() })
	r.mail, err = loopmail.Start(t.Context(), loopmail.Options{
		Users:      map[string]string{r.user: "password-not-used-here"},
		IMAPTLS:    loopmail.TLSImplicit,
		SMTPTLS:    loopmail.TLSStartTLS,
		CheckToken: r.idp.Introspect,
		Logger:     log,
		Now:        r.clock.Now, // the provider's clock: token expiry

	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.mail.Close() })
	r.roots = x509.NewCertPool()
	r.roots.AppendCertsFromPEM(r.mail.CertPEM())

	app, err := oauth.NewApp(oauth.Settings{
		Provider: oauth.Custom, ClientID: r.idp.ClientID(), Scopes: []string{"mail"},
		AuthURL: r.idp.AuthURL(), TokenURL: r.idp.TokenURL(), DeviceURL: r.idp.DeviceURL(),
	}, oauth.AppOptions{Logger: log, HTTPClient: &http.Client{Timeout: oauthWait}})
	if err != nil {
		t.Fatal(err)
	}
	r.store = oauth.FileStore{Path: filepath.Join(t.TempDir(), "oauth-token")}
	var out bytes.Buffer
	browser := func(u string) error {
		resp, err := (&http.Client{Timeout: oauthWait}).Get(u)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := app.SignInBrowser(ctx, r.store, oauth.BrowserOptions{Open: browser, Out: &out}); err != nil {
		t.Fatalf("SignInBrowser() = %v", err)
	}
	r.texts = append(r.texts, out.String())
	r.noteRefreshToken()
	r.src = app.NewSource(r.store, oauth.SourceOptions{Now: r.clock.Now})
	return r
}

func (r *oauthRig) noteToken(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok != "" {
		r.tokens = append(r.tokens, tok)
	}
}

func (r *oauthRig) noteErr(err error) error {
	if err != nil {
		r.mu.Lock()
		r.texts = append(r.texts, err.Error())
		r.mu.Unlock()
	}
	return err
}

func (r *oauthRig) noteRefreshToken() {
	if rt, err := r.store.Load(); err == nil {
		r.noteToken(rt)
	}
}

func (r *oauthRig) newAuth(mech, tok string) *mailconn.TokenAuth {
	if mech == mailconn.MechOAuthBearer {
		host, port := splitAddr(r.t, r.mail.IMAPAddr())
		return mailconn.NewOAuthBearer(r.user, tok, host, port)
	}
	return mailconn.NewXOAuth2(r.user, tok)
}

// imapSignIn connects and signs in to IMAP with mech the way the
// credentials seam will: a token from the Source, and after a refusal one
// retry with the token Source.Refused returns. It reports how many
// AUTHENTICATE commands it sent. The caller closes the client.
func (r *oauthRig) imapSignIn(ctx context.Context, mech string, opts *imapclient.Options) (c *imapclient.Client, attempts int, err error) {
	host, port := splitAddr(r.t, r.mail.IMAPAddr())
	c, err = mailconn.DialIMAP(ctx, mailconn.Endpoint{Host: host, Port: port, TLS: mailconn.TLSImplicit, RootCAs: r.roots}, opts)
	if err != nil {
		return nil, 0, err
	}
	tok, err := r.src.Token(ctx)
	if err != nil {
		c.Close()
		return nil, 0, r.noteErr(err)
	}
	r.noteToken(tok)
	auth := r.newAuth(mech, tok)
	attempts++
	err = c.Authenticate(auth)
	if err != nil && auth.Refusal() != nil {
		r.noteErr(err)
		r.noteErr(auth.Refusal())
		if tok, err = r.src.Refused(ctx, tok); err != nil {
			c.Close()
			return nil, attempts, r.noteErr(err)
		}
		r.noteToken(tok)
		r.noteRefreshToken()
		attempts++
		err = c.Authenticate(r.newAuth(mech, tok)) // same connection: the refusal left it usable
	}
	if err != nil {
		c.Close()
		return nil, attempts, r.noteErr(fmt.Errorf("authenticate %s: %w", mech, err))
	}
	return c, attempts, nil
}

// imapLogin signs in with imapSignIn, selects INBOX and logs out.
func (r *oauthRig) imapLogin(mech string) (attempts int, err error) {
	ctx, cancel := context.WithTimeout(r.t.Context(), oauthWait)
	defer cancel()
	c, attempts, err := r.imapSignIn(ctx, mech, nil)
	if err != nil {
		return attempts, err
	}
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return attempts, r.noteErr(err)
	}
	return attempts, c.Logout().Wait()
}

// send submits one message over SMTP with STARTTLS and mech: go-mail's own
// XOAUTH2, or OAUTHBEARER through mailconn.SMTPAuth.
func (r *oauthRig) send(mech, subject string) error {
	ctx, cancel := context.WithTimeout(r.t.Context(), oauthWait)
	defer cancel()
	tok, err := r.src.Token(ctx)
	if err != nil {
		return r.noteErr(err)
	}
	r.noteToken(tok)
	host, port := splitAddr(r.t, r.mail.SMTPAddr())
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTLSPolicy(gomail.TLSMandatory),
		gomail.WithTLSConfig(&tls.Config{ServerName: host, RootCAs: r.roots, MinVersion: tls.VersionTLS12}),
		gomail.WithTimeout(oauthWait),
	}
	if mech == mailconn.MechXOAuth2 {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthXOAUTH2), gomail.WithUsername(r.user), gomail.WithPassword(tok))
	} else {
		opts = append(opts, gomail.WithSMTPAuthCustom(mailconn.SMTPAuth(mailconn.NewOAuthBearer(r.user, tok, host, port))))
	}
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return r.noteErr(err)
	}
	msg := gomail.NewMsg()
	if err := msg.From(r.user); err != nil {
		return err
	}
	if err := msg.To(r.user); err != nil {
		return err
	}
	msg.Subject(subject)
	msg.SetBodyString(gomail.TypeTextPlain, "sent with "+mech)
	return r.noteErr(client.DialAndSendWithContext(ctx, msg))
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Addr().String(), int(ap.Port())
}

// checkSecrets fails the test if a token appears in a log line or an error.
func (r *oauthRig) checkSecrets() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	texts := append(r.texts, r.logs.String())
	if len(r.tokens) < 3 {
		r.t.Fatalf("only %d tokens collected: the secrecy check would check little", len(r.tokens))
	}
	for _, tok := range r.tokens {
		for _, txt := range texts {
			if strings.Contains(txt, tok) {
				r.t.Errorf("a token appears in output: %q", txt)
			}
		}
	}
}

func TestOAuthMailLogins(t *testing.T) {
	t.Parallel()
	r := newOAuthRig(t)

	for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		if n, err := r.imapLogin(mech); err != nil || n != 1 {
			t.Fatalf("IMAP login with %s = %d attempts, %v; want 1, nil", mech, n, err)
		}
		if err := r.send(mech, "via "+mech); err != nil {
			t.Fatalf("SMTP send with %s = %v", mech, err)
		}
	}
	msgs, err := r.mail.Messages(r.user)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Messages() = %d messages, %v; want 2", len(msgs), err)
	}
	for i, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		if !bytes.Contains(msgs[i], []byte("Subject: via "+mech)) {
			t.Errorf("message %d lacks Subject: via %s", i, mech)
		}
	}
	if st := r.idp.Stats(); st.Refreshes != 1 || st.Introspections != 4 {
		t.Errorf("provider Stats() = %+v, want 1 refresh and 4 introspections (one per sign-in)", st)
	}

	// The token expires between two logins: the next login refreshes it
	// first and needs no retry.
	t.Run("expired-between-logins", func(t *testing.T) {
		old, _ := r.src.Token(t.Context())
		r.clock.Advance(2 * time.Hour)
		if _, err := r.idp.CheckToken(old); err == nil {
			t.Fatal("the provider still accepts the old token")
		}
		for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
			if n, err := r.imapLogin(mech); err != nil || n != 1 {
				t.Fatalf("IMAP login with %s after expiry = %d attempts, %v; want 1, nil", mech, n, err)
			}
		}
		if err := r.send(mailconn.MechXOAuth2, "after expiry"); err != nil {
			t.Fatalf("SMTP send after expiry = %v", err)
		}
		r.noteRefreshToken()
		if got := r.idp.Stats().Refreshes; got != 2 {
			t.Errorf("refreshes = %d, want 2", got)
		}
	})

	// The provider ends the token early: the server refuses it, and the
	// login refreshes once and retries on the same connection.
	t.Run("refused-then-refreshed", func(t *testing.T) {
		r.idp.ExpireAccessTokens()
		for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
			n, err := r.imapLogin(mech)
			if err != nil {
				t.Fatalf("IMAP login with %s after an early expiry = %v", mech, err)
			}
			r.idp.ExpireAccessTokens()
			if n != 2 {
				t.Errorf("IMAP login with %s: %d AUTHENTICATE commands, want 2 (refused, then retried once)", mech, n)
			}
		}
		if got := r.idp.Stats().Refreshes; got != 4 {
			t.Errorf("refreshes = %d, want 4", got)
		}
	})

	// An IDLE session outlives its token: the server ends it when the token
	// expires (as Exchange Online does), and the client signs in again
	// with a refreshed token and goes on receiving mail.
	t.Run("idle-across-expiry", func(t *testing.T) {
		idle := func() (*imapclient.Client, *imapclient.IdleCommand, <-chan uint32) {
			t.Helper()
			exists := make(chan uint32, 16)
			opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
				Mailbox: func(d *imapclient.UnilateralDataMailbox) {
					if d.NumMessages != nil {
						select {
						case exists <- *d.NumMessages:
						default:
						}
					}
				},
			}}
			ctx, cancel := context.WithTimeout(t.Context(), oauthWait)
			defer cancel()
			c, _, err := r.imapSignIn(ctx, mailconn.MechXOAuth2, opts)
			if err != nil {
				t.Fatalf("IMAP sign-in for IDLE = %v", err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			cmd, err := c.Idle()
			if err != nil {
				t.Fatalf("Idle() = %v", err)
			}
			return c, cmd, exists
		}
		waitExists := func(exists <-chan uint32, subject string) {
			t.Helper()
			if err := r.mail.Deliver(r.user, []byte("Subject: "+subject+"\r\n\r\nbody\r\n")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exists:
			case <-time.After(oauthWait):
				t.Fatalf("no EXISTS during IDLE after delivering %q", subject)
			}
		}

		c1, cmd1, exists1 := idle()
		waitExists(exists1, "before expiry")
		refreshes := r.idp.Stats().Refreshes
		r.clock.Advance(2 * time.Hour)
		if n := r.mail.EndExpiredTokenSessions(); n != 1 {
			t.Fatalf("EndExpiredTokenSessions() = %d, want the 1 IDLE session", n)
		}
		select {
		case <-c1.Closed():
		case <-time.After(oauthWait):
			t.Fatal("the IDLE session whose token expired is still open")
		}
		if err := cmd1.Wait(); err == nil {
			t.Error("IdleCommand.Wait() = nil after the server ended the session")
		}

		_, _, exists2 := idle() // signs in again: the Source refreshes first
		waitExists(exists2, "after expiry")
		if got := r.idp.Stats().Refreshes; got != refreshes+1 {
			t.Errorf("refreshes = %d, want %d (one for the new session)", got, refreshes+1)
		}
		r.noteRefreshToken()
	})

	// The refresh token is revoked: logins fail with ErrSignInNeeded and
	// stop asking the provider.
	t.Run("revoked", func(t *testing.T) {
		rt, err := r.store.Load()
		if err != nil {
			t.Fatal(err)
		}
		r.noteToken(rt)
		r.idp.Revoke(rt)
		for i := range 3 {
			_, err := r.imapLogin(mailconn.MechXOAuth2)
			if !errors.Is(err, oauth.ErrSignInNeeded) {
				t.Fatalf("IMAP login #%d after revocation = %v, want ErrSignInNeeded", i+1, err)
			}
		}
		if err := r.send(mailconn.MechOAuthBearer, "revoked"); !errors.Is(err, oauth.ErrSignInNeeded) {
			t.Fatalf("SMTP send after revocation = %v, want ErrSignInNeeded", err)
		}
		if got := r.idp.Stats().RefreshFailed; got != 1 {
			t.Errorf("refused refreshes = %d, want 1 (no retry storm)", got)
		}
	})

	r.checkSecrets()
}

// TestOAuthSMTPRefusedToken checks that a token the mail server refuses
// gives a clean SMTP failure through both mechanisms, with no token in the
// error.
func TestOAuthSMTPRefusedToken(t *testing.T) {
	t.Parallel()
	r := newOAuthRig(t)
	if _, err := r.src.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.idp.ExpireAccessTokens()
	for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		err := r.send(mech, "refused")
		if err == nil || !strings.Contains(err.Error(), "535") {
			t.Errorf("SMTP send with %s and a refused token = %v, want a 535 failure", mech, err)
		}
	}
	r.checkSecrets()
}
