package oauth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ipsync/internal/oauthtest"
	"ipsync/oauth"
)

const testWait = 10 * time.Second

// clock is a settable time source shared by the server and the Source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuffer collects every log line, for the no-secrets check.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// secrets collects tokens and the texts that must not contain them.
type secrets struct {
	mu     sync.Mutex
	tokens []string
	texts  []string
}

func (s *secrets) token(tok string) {
	s.mu.Lock()
	s.tokens = append(s.tokens, tok)
	s.mu.Unlock()
}

func (s *secrets) text(txt string) {
	s.mu.Lock()
	s.texts = append(s.texts, txt)
	s.mu.Unlock()
}

func (s *secrets) err(err error) {
	if err != nil {
		s.text(err.Error())
	}
}

// check fails t if a token appears in a text.
func (s *secrets) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) == 0 {
		t.Fatal("no tokens collected: the secrecy check checks nothing")
	}
	for _, tok := range s.tokens {
		for _, txt := range s.texts {
			if strings.Contains(txt, tok) {
				t.Errorf("a token appears in output %q", txt)
			}
		}
	}
}

type env struct {
	srv   *oauthtest.Server
	clock *clock
	app   *oauth.App
	store oauth.FileStore
	logs  *logBuffer
	sec   *secrets
}

func newEnv(t *testing.T, opts oauthtest.Options) *env {
	t.Helper()
	e := &env{clock: newClock(), logs: &logBuffer{}, sec: &secrets{}}
	opts.Now = e.clock.Now
	srv, err := oauthtest.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e.srv = srv
	e.app, err = oauth.NewApp(oauth.Settings{
		Provider:     oauth.Custom,
		ClientID:     srv.ClientID(),
		ClientSecret: opts.ClientSecret,
		Scopes:       []string{"mail"},
		AuthURL:      srv.AuthURL(),
		TokenURL:     srv.TokenURL(),
		DeviceURL:    srv.DeviceURL(),
	}, oauth.AppOptions{Logger: e.logs.logger(), HTTPClient: &http.Client{Timeout: testWait}})
	if err != nil {
		t.Fatal(err)
	}
	e.store = oauth.FileStore{Path: filepath.Join(t.TempDir(), "sub", "token")}
	return e
}

// browser follows the sign-in URL like a user's browser would: through the
// authorization endpoint's redirect to the loopback listener.
func browser(t *testing.T, got *string) func(string) error {
	return func(u string) error {
		c := &http.Client{Timeout: testWait}
		resp, err := c.Get(u)
		if err != nil {
			t.Errorf("browser: GET %s: %v", u, err)
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if got != nil {
			*got = string(b)
		}
		return nil
	}
}

func (e *env) signIn(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	var out bytes.Buffer
	err := e.app.SignInBrowser(ctx, e.store, oauth.BrowserOptions{Open: browser(t, nil), Out: &out})
	e.sec.err(err)
	e.sec.text(out.String())
	if err != nil {
		t.Fatalf("SignInBrowser() = %v", err)
	}
	rt, err := e.store.Load()
	if err != nil {
		t.Fatalf("store.Load() after sign-in = %v", err)
	}
	e.sec.token(rt)
}

func TestSignInBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{ClientSecret: "app-secret"})
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	var out bytes.Buffer
	var page string
	if err := e.app.SignInBrowser(ctx, e.store, oauth.BrowserOptions{Open: browser(t, &page), Out: &out}); err != nil {
		t.Fatalf("SignInBrowser() = %v", err)
	}
	if !strings.Contains(out.String(), e.srv.AuthURL()+"?") || !strings.Contains(out.String(), "code_challenge_method=S256") {
		t.Errorf("instructions = %q, want the authorization URL with a S256 challenge", out.String())
	}
	if !strings.Contains(page, "received the sign-in") {
		t.Errorf("browser page = %q, want it to say the sign-in was received", page)
	}
	if st := e.srv.Stats(); st.Authorizations != 1 || st.CodeExchanges != 1 {
		t.Errorf("server Stats() = %+v, want 1 authorization and 1 code exchange", st)
	}
	rt, err := e.store.Load()
	if err != nil || rt == "" {
		t.Fatalf("store.Load() = %q, %v; want the refresh token", rt, err)
	}
	src := e.app.NewSource(e.store, oauth.SourceOptions{Now: e.clock.Now})
	at, err := src.Token(ctx)
	if err != nil {
		t.Fatalf("Token() = %v", err)
	}
	if user, err := e.srv.CheckToken(at); err != nil || user != e.srv.User() {
		t.Errorf("server CheckToken(Token()) = %q, %v; want %q", user, err, e.srv.User())
	}
}

func TestSignInBrowserDeclined(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	e.srv.SetConsent(false)
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	var page string
	err := e.app.SignInBrowser(ctx, e.store, oauth.BrowserOptions{Open: browser(t, &page)})
	if !errors.Is(err, oauth.ErrAccessDenied) {
		t.Fatalf("SignInBrowser() = %v, want ErrAccessDenied", err)
	}
	if !strings.Contains(page, "access_denied") {
		t.Errorf("browser page = %q, want it to name the error", page)
	}
	if _, err := e.store.Load(); !errors.Is(err, oauth.ErrNoToken) {
		t.Errorf("store.Load() after a declined sign-in = %v, want ErrNoToken", err)
	}
}

// TestSignInBrowserIgnoresForeignState checks that a redirect with another
// state (a stale tab, or a forged request) is refused and the flow keeps
// waiting for the right one.
func TestSignInBrowserIgnoresForeignState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	open := func(u string) error {
		c := &http.Client{Timeout: testWait, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		forged := strings.Replace(loc, "state=", "state=x", 1)
		resp, err = c.Get(forged)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("redirect with a foreign state: status %d, want 400", resp.StatusCode)
		}
		resp, err = c.Get(loc)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := e.app.SignInBrowser(ctx, e.store, oauth.BrowserOptions{Open: open}); err != nil {
		t.Fatalf("SignInBrowser() = %v", err)
	}
}

func TestSignInBrowserGivesUpWithContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	cause := errors.New("the user walked away")
	ctx, cancel := context.WithCancelCause(t.Context())
	open := func(string) error { cancel(cause); return nil } // nobody follows the URL
	err := e.app.SignInBrowser(ctx, e.store, oauth.BrowserOptions{Open: open})
	if !errors.Is(err, cause) {
		t.Fatalf("SignInBrowser() = %v, want the context's cause", err)
	}
}

func TestSourceRefreshesBeforeExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{AccessTTL: time.Hour, RotateRefreshTokens: true})
	e.signIn(t)
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	src := e.app.NewSource(e.store, oauth.SourceOptions{Now: e.clock.Now, Early: 5 * time.Minute})

	first, err := src.Token(ctx)
	if err != nil {
		t.Fatalf("Token() = %v", err)
	}
	e.sec.token(first)
	e.clock.Advance(54 * time.Minute)
	if again, err := src.Token(ctx); err != nil || again != first {
		t.Fatalf("Token() 54 min later = changed %v, err %v; want the same token", again != first, err)
	}
	if got := e.srv.Stats().Refreshes; got != 1 {
		t.Errorf("refreshes after two Token() = %d, want 1", got)
	}
	oldRT, _ := e.store.Load()
	e.clock.Advance(2 * time.Minute) // 56 min: within 5 min of expiry
	second, err := src.Token(ctx)
	if err != nil {
		t.Fatalf("Token() 56 min later = %v", err)
	}
	e.sec.token(second)
	if second == first {
		t.Fatal("Token() within the early margin returned the old token, want a new one")
	}
	if _, err := e.srv.CheckToken(second); err != nil {
		t.Errorf("server CheckToken(new token) = %v", err)
	}
	newRT, _ := e.store.Load()
	e.sec.token(newRT)
	if newRT == oldRT {
		t.Error("the rotated refresh token was not saved")
	}
	e.sec.check(t)
	e.sec.text(e.logs.String())
	e.sec.check(t)
}

func TestSourceRefusedRefreshesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	e.signIn(t)
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	src := e.app.NewSource(e.store, oauth.SourceOptions{Now: e.clock.Now})
	tok, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.ExpireAccessTokens() // the server ends the session early
	if _, err := e.srv.CheckToken(tok); err == nil {
		t.Fatal("server still accepts the token")
	}
	fresh, err := src.Refused(ctx, tok)
	if err != nil || fresh == tok {
		t.Fatalf("Refused() = same %v, %v; want a new token", fresh == tok, err)
	}
	// A second caller holding the same refused token gets the fresh one
	// without another refresh.
	again, err := src.Refused(ctx, tok)
	if err != nil || again != fresh {
		t.Fatalf("Refused(old token) again = changed %v, %v; want the fresh token", again != fresh, err)
	}
	if got := e.srv.Stats().Refreshes; got != 2 {
		t.Errorf("refreshes = %d, want 2 (first token, one after the refusal)", got)
	}
}

func TestSourceConcurrentCallersShareOneRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	e.signIn(t)
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	src := e.app.NewSource(e.store, oauth.SourceOptions{Now: e.clock.Now})
	var wg sync.WaitGroup
	toks := make([]string, 8)
	for i := range toks {
		wg.Go(func() {
			tok, err := src.Token(ctx)
			if err != nil {
				t.Errorf("Token() = %v", err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range toks[1:] {
		if tok != toks[0] {
			t.Fatal("concurrent Token() calls returned different tokens")
		}
	}
	if got := e.srv.Stats().Refreshes; got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
}

func TestSourceRevokedNeedsSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	e.signIn(t)
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	src := e.app.NewSource(e.store, oauth.SourceOptions{Now: e.clock.Now})
	tok, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.sec.token(tok)
	rt, _ := e.store.Load()
	if !e.srv.Revoke(rt) {
		t.Fatal("server Revoke(refresh token) = false")
	}
	e.clock.Advance(2 * time.Hour)
	for i := range 3 {
		_, err := src.Token(ctx)
		e.sec.err(err)
		if !errors.Is(err, oauth.ErrSignInNeeded) {
			t.Fatalf("Token() #%d after revocation = %v, want ErrSignInNeeded", i+1, err)
		}
		if i == 0 && !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("Token() error = %q, want the provider's invalid_grant", err)
		}
	}
	if got := e.srv.Stats().RefreshFailed; got != 1 {
		t.Errorf("refused refreshes = %d, want 1 (no retry storm)", got)
	}
	// Signing in again stores a new refresh token and ends the state.
	e.signIn(t)
	tok, err = src.Token(ctx)
	if err != nil {
		t.Fatalf("Token() after a new sign-in = %v", err)
	}
	e.sec.token(tok)
	e.sec.text(e.logs.String())
	e.sec.check(t)
}

func TestSourceWithoutToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	src := e.app.NewSource(e.store, oauth.SourceOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	_, err := src.Token(ctx)
	if !errors.Is(err, oauth.ErrSignInNeeded) || !strings.Contains(err.Error(), e.store.Path) {
		t.Fatalf("Token() with an empty store = %v, want ErrSignInNeeded naming %s", err, e.store.Path)
	}
	if err := src.Check(ctx); !errors.Is(err, oauth.ErrSignInNeeded) {
		t.Errorf("Check() with an empty store = %v, want ErrSignInNeeded", err)
	}
}

func TestSourceTokenEndpointDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, oauthtest.Options{})
	e.signIn(t)
	e.srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	src := e.app.NewSource(e.store, oauth.SourceOptions{Now: e.clock.Now})
	_, err := src.Token(ctx)
	if err == nil || errors.Is(err, oauth.ErrSignInNeeded) {
		t.Fatalf("Token() with the provider down = %v, want a network error that is not ErrSignInNeeded", err)
	}
}
