package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/config"
	"ipsync/fetcher"
	"ipsync/internal/oauthtest"
	"ipsync/loopmail"
	"ipsync/oauth"
	"ipsync/publisher"
)

// oauthE2E is an OAuth2 provider (oauthtest), a loopback mail server that
// checks its access tokens on every AUTHENTICATE and AUTH (introspection
// over HTTP, as Dovecot does), and server and client configs with
// mail.auth: oauth2 and no password. The mail server's clock can be moved
// ahead (skew) to end IMAP sessions whose token has expired.
type oauthE2E struct {
	idp                  *oauthtest.Server
	mail                 *loopmail.Server
	serverCfg, clientCfg string
	skew                 atomic.Int64 // nanoseconds added to the mail server's clock
	tokenLogins          atomic.Int64 // sign-ins with a token the mail server checked (IMAP AUTHENTICATE, SMTP AUTH)

	mu     sync.Mutex
	tokens map[string]bool // every access token the mail server was shown
}

func newOAuthE2E(t *testing.T) *oauthE2E {
	t.Helper()
	noKeyring(t)
	e := &oauthE2E{idp: startIDP(t), tokens: map[string]bool{}}
	user := e.idp.User()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m, err := loopmail.Start(ctx, loopmail.Options{
		// The password is never used: the configs have none.
		Users:   map[string]string{user: "unused-password-e2e"},
		SMTPTLS: loopmail.TLSImplicit,
		IMAPTLS: loopmail.TLSStartTLS,
		CheckToken: func(ctx context.Context, token string) (string, time.Time, error) {
			e.mu.Lock()
			e.tokens[token] = true
			e.mu.Unlock()
			e.tokenLogins.Add(1)
			return e.idp.Introspect(ctx, token)
		},
		Now: func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e.mail = m
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", string(m.CertPEM()))
	write("server.key", sk.Text())
	write("client.key", sk.ClientKey().Text())
	_, smtpPort, _ := strings.Cut(m.SMTPAddr(), ":")
	_, imapPort, _ := strings.Cut(m.IMAPAddr(), ":")
	cfg := func(role string) string {
		return fmt.Sprintf(`name: office
role: %[1]s
state_dir: state-%[1]s
mail:
  address: %[2]s
  auth: oauth2
  oauth2:
    provider: custom
    client_id: %[3]s
    scopes: [mail]
    auth_url: %[4]s
    token_url: %[5]s
  ca_file: ca.pem
  smtp: {host: 127.0.0.1, port: %[6]s, tls: implicit}
  imap: {host: 127.0.0.1, port: %[7]s, tls: starttls}
codec:
  key: file:%[1]s.key
`, role, user, e.idp.ClientID(), e.idp.AuthURL(), e.idp.TokenURL(), smtpPort, imapPort)
	}
	// The address sources of check: a loopback stand-in (whose
	// documentation address check refuses: those lines fail).
	echo := startEcho(t, "203.0.113.5")
	e.serverCfg = write("server.yaml", cfg("server")+"publisher:\n  sources: ["+echo.HTTPSURL()+"]\n  agree: 1\n  ipv6: off\n")
	e.clientCfg = write("client.yaml", cfg("client"))
	return e
}

// login runs `ipsync login --browser` for the config at path, the browser
// being an HTTP client, and returns its output.
func (e *oauthE2E) login(t *testing.T, path string) string {
	t.Helper()
	fakeBrowser(t)
	code, out, errOut := runCLI(t, "login", "--browser", "--verbose", "--config", path)
	if code != exitOK {
		t.Fatalf("login --config %s = %d\n%s\n%s", path, code, out, errOut)
	}
	return out + errOut
}

// refreshToken returns the refresh token login stored for the config at
// path.
func refreshTokenOf(t *testing.T, path string) string {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	file, err := cfg.OAuth2TokenFile()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := oauth.FileStore{Path: file}.Load()
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// noTokens fails the test if any token the provider issued to the mail
// server, or a stored refresh token, appears in texts.
func (e *oauthE2E) noTokens(t *testing.T, refresh []string, texts ...string) {
	t.Helper()
	e.mu.Lock()
	secrets := append([]string(nil), refresh...)
	for tok := range e.tokens {
		secrets = append(secrets, tok)
	}
	e.mu.Unlock()
	if len(secrets) == 0 {
		t.Fatal("no tokens to look for: the mail server saw none")
	}
	for _, txt := range texts {
		for _, tok := range secrets {
			if tok != "" && strings.Contains(txt, tok) {
				t.Errorf("a token appears in the output or logs: %q", txt)
			}
		}
	}
}

// TestOAuthLoginPublishFetch: ipsync login (the browser flow), then
// publish --once and fetch --once sign in with tokens only (no password in
// the configs), check passes the token, SMTP and IMAP lines, and no token
// appears in any output or debug log.
func TestOAuthLoginPublishFetch(t *testing.T) {
	e := newOAuthE2E(t)
	var texts []string
	texts = append(texts, e.login(t, e.serverCfg), e.login(t, e.clientCfg))

	code, out, errOut := runCLI(t, "publish", "--once", "--verbose", "--config", e.serverCfg, "--ip", "8.8.4.4")
	texts = append(texts, out, errOut)
	if code != exitOK || !strings.Contains(out, "sent 8.8.4.4") {
		t.Fatalf("publish with a token = %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "fetch", "--once", "--verbose", "--config", e.clientCfg)
	texts = append(texts, out, errOut)
	if code != exitOK || !strings.HasPrefix(out, "office 8.8.4.4") {
		t.Fatalf("fetch with a token = %d %q %q", code, out, errOut)
	}
	if st := e.mail.Stats(); st.SMTPMessages != 1 || st.SMTPAuths != 0 || st.IMAPLogins != 0 || e.tokenLogins.Load() < 2 {
		t.Errorf("mail stats = %+v, token sign-ins %d; want one message, no password login, token sign-ins to SMTP and IMAP", st, e.tokenLogins.Load())
	}

	for _, path := range []string{e.serverCfg, e.clientCfg} {
		code, out, errOut = runCLI(t, "check", "--verbose", "--config", path)
		texts = append(texts, out, errOut)
		for _, line := range strings.Split(out, "\n") {
			// The stand-in source's documentation address fails, as it must.
			if strings.HasPrefix(line, "FAIL") && !strings.HasPrefix(line, "FAIL source") {
				t.Errorf("check --config %s = %d: %s\n%s%s", filepath.Base(path), code, line, out, errOut)
			}
		}
		for _, want := range []string{"PASS oauth2 token for " + e.idp.User(), "present and refreshable"} {
			if !strings.Contains(out, want) {
				t.Errorf("check --config %s lacks %q:\n%s", filepath.Base(path), want, out)
			}
		}
		if strings.Contains(out, "mail.password") {
			t.Errorf("check with oauth2 mentions mail.password:\n%s", out)
		}
	}
	if !strings.Contains(strings.Join(texts, "\n"), "PASS smtp 127.0.0.1") || !strings.Contains(strings.Join(texts, "\n"), "OAuth2 sign-in and mailbox INBOX: ok") {
		t.Errorf("check lacks the SMTP or IMAP PASS line:\n%s", strings.Join(texts, "\n"))
	}
	e.noTokens(t, []string{refreshTokenOf(t, e.serverCfg), refreshTokenOf(t, e.clientCfg)}, texts...)
}

// updates collects a fetcher's Updates for waiting on.
type updates struct {
	mu   sync.Mutex
	all  []fetcher.Update
	more chan struct{}
}

func newUpdates() *updates { return &updates{more: make(chan struct{}, 1)} }

func (u *updates) Update(x fetcher.Update) {
	u.mu.Lock()
	u.all = append(u.all, x)
	u.mu.Unlock()
	select {
	case u.more <- struct{}{}:
	default:
	}
}

// waitFor returns the first Update from index from on that satisfies ok,
// and the index after it.
func (u *updates) waitFor(t *testing.T, what string, from int, ok func(fetcher.Update) bool) (fetcher.Update, int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		u.mu.Lock()
		for i := from; i < len(u.all); i++ {
			if ok(u.all[i]) {
				x := u.all[i]
				u.mu.Unlock()
				return x, i + 1
			}
		}
		u.mu.Unlock()
		select {
		case <-u.more:
		case <-deadline:
			t.Fatalf("timed out waiting for an Update: %s", what)
		}
	}
}

// startClient runs the fetcher of the client config as `ipsync client`
// builds it, logging to logs.
func (e *oauthE2E) startClient(t *testing.T, logs *lockedBuffer) (*fetcher.Fetcher, *updates) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg, err := config.Load(e.clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := resolveSecrets(cfg, config.RoleClient, log)
	if err != nil {
		t.Fatal(err)
	}
	f, err := newFetcher(cfg, sec, log)
	if err != nil {
		t.Fatal(err)
	}
	ups := newUpdates()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, ups) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("fetcher Run did not return")
		}
	})
	return f, ups
}

// TestOAuthIdleAcrossTokenExpiry: a client in IDLE whose access token
// expires (the mail server ends the session as Exchange Online does) signs
// in again with a refreshed token and receives the next message.
func TestOAuthIdleAcrossTokenExpiry(t *testing.T) {
	e := newOAuthE2E(t)
	texts := []string{e.login(t, e.serverCfg), e.login(t, e.clientCfg)}
	logs := &lockedBuffer{}
	_, ups := e.startClient(t, logs)
	_, next := ups.waitFor(t, "IDLE", 0, func(u fetcher.Update) bool { return u.Mode == fetcher.ModeIdle && !u.Fetching })

	// The access tokens expire; the mail server, an hour and a half
	// later by its clock, ends the IDLE session signed in with one.
	refreshes := e.idp.Stats().Refreshes
	e.idp.ExpireAccessTokens()
	e.skew.Store(int64(90 * time.Minute))
	if n := e.mail.EndExpiredTokenSessions(); n != 1 {
		t.Fatalf("EndExpiredTokenSessions() = %d, want the client's IDLE session", n)
	}
	_, next = ups.waitFor(t, "IDLE again after the token expired", next, func(u fetcher.Update) bool {
		return u.Mode == fetcher.ModeIdle && !u.Fetching && u.State != fetcher.Error && e.idp.Stats().Refreshes > refreshes
	})

	code, out, errOut := runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", "8.8.4.4")
	texts = append(texts, out, errOut)
	if code != exitOK {
		t.Fatalf("publish = %d %q %q", code, out, errOut)
	}
	u, _ := ups.waitFor(t, "the message after the expiry", next, func(u fetcher.Update) bool { return u.Payload.IPv4.String() == "8.8.4.4" })
	if u.State != fetcher.Current {
		t.Errorf("state after the message = %v (%v), want current", u.State, u.Err)
	}
	if !strings.Contains(logs.String(), "imap connection lost; reconnecting") {
		t.Errorf("the client log does not show the session ending:\n%s", logs.String())
	}
	t.Logf("refreshes at the provider: %d before the expiry, %d after", refreshes, e.idp.Stats().Refreshes)
	e.noTokens(t, []string{refreshTokenOf(t, e.serverCfg), refreshTokenOf(t, e.clientCfg)}, append(texts, logs.String())...)
}

// TestOAuthRevokedStopsLogins: with the refresh token revoked, the client
// and the server enter "sign-in needed" (shown to the tray with the Sign
// in… item), stop logging in (loopmail counts nothing more, the provider
// is asked nothing more, Fetch now and Publish now included), check and
// fetch --once say to run ipsync login; a new sign-in ends it.
func TestOAuthRevokedStopsLogins(t *testing.T) {
	e := newOAuthE2E(t)
	texts := []string{e.login(t, e.serverCfg), e.login(t, e.clientCfg)}
	serverRT, clientRT := refreshTokenOf(t, e.serverCfg), refreshTokenOf(t, e.clientCfg)
	logs := &lockedBuffer{}
	f, ups := e.startClient(t, logs)
	_, next := ups.waitFor(t, "a first read of the mailbox", 0, func(u fetcher.Update) bool { return !u.LastCheck.IsZero() && !u.Fetching })

	// The server role, as `ipsync server` builds it.
	slg := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	scfg, err := config.Load(e.serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	ssec, err := resolveSecrets(scfg, config.RoleServer, slg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPublisher(scfg, ssec, nil, slg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := p.PublishAddrs(ctx, publisher.Addrs{IPv4: netip.MustParseAddr("8.8.4.4")}); err != nil {
		t.Fatalf("publish before the revocation = %v", err)
	}

	if !e.idp.Revoke(serverRT) || !e.idp.Revoke(clientRT) {
		t.Fatal("the provider did not know the stored refresh tokens")
	}
	// The client's session ends (a server restart): its next login finds
	// the access token revoked, and refreshing it refused.
	e.mail.DropIMAPConnections()
	u, next := ups.waitFor(t, "sign-in needed", next, func(u fetcher.Update) bool { return u.SignInNeeded })
	h := u.Health(time.Minute)
	if u.State != fetcher.Error || !h.SignInNeeded || !strings.Contains(h.Err, "ipsync login") {
		t.Errorf("Update = state %v err %v, health %+v; want Error with sign-in needed and the command", u.State, u.Err, h)
	}
	if _, err := p.PublishAddrs(ctx, publisher.Addrs{IPv4: netip.MustParseAddr("8.8.8.8")}); !errors.Is(err, publisher.ErrSignInNeeded) || !strings.Contains(err.Error(), "ipsync login") {
		t.Errorf("publish after the revocation = %v, want sign-in needed, naming ipsync login", err)
	}
	if st := p.Status(); !st.SignInNeeded || !st.Health().SignInNeeded || !strings.Contains(st.Health().Err, "ipsync login") {
		t.Errorf("publisher status = %+v, health %+v; want sign-in needed", st, st.Health())
	}

	// From now on nothing reaches the mail servers or the provider.
	mailBefore, idpBefore, tokensBefore := e.mail.Stats(), e.idp.Stats(), e.tokenLogins.Load()
	f.FetchNow()
	_, _ = ups.waitFor(t, "sign-in needed after Fetch now", next, func(u fetcher.Update) bool { return u.SignInNeeded })
	for range 3 {
		if _, err := p.PublishAddrs(ctx, publisher.Addrs{IPv4: netip.MustParseAddr("8.8.8.8")}); err == nil {
			t.Error("publish while sign-in is needed succeeded")
		}
	}
	code, out, errOut := runCLI(t, "fetch", "--once", "--config", e.clientCfg)
	texts = append(texts, out, errOut)
	if code == exitOK || !strings.Contains(errOut, "ipsync login") {
		t.Errorf("fetch --once while sign-in is needed = %d %q %q, want a failure naming ipsync login", code, out, errOut)
	}
	t.Logf("fetch --once while sign-in is needed: exit %d, %s", code, strings.TrimSpace(errOut))
	code, out, errOut = runCLI(t, "publish", "--once", "--config", e.serverCfg, "--ip", "8.8.8.8")
	texts = append(texts, out, errOut)
	t.Logf("publish --once while sign-in is needed: exit %d, %s", code, strings.TrimSpace(errOut))
	if code == exitOK || !strings.Contains(errOut, "ipsync login") {
		t.Errorf("publish --once while sign-in is needed = %d %q %q, want a failure naming ipsync login", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "check", "--config", e.serverCfg)
	texts = append(texts, out, errOut)
	if code == exitOK || !strings.Contains(out, "FAIL oauth2 token for "+e.idp.User()) || !strings.Contains(out, "ipsync login") {
		t.Errorf("check while sign-in is needed = %d:\n%s%s", code, out, errOut)
	}
	mailAfter, idpAfter := e.mail.Stats(), e.idp.Stats()
	tokensAfter := e.tokenLogins.Load()
	t.Logf("while sign-in was needed: token sign-ins %d→%d, IMAP commands %d→%d, SMTP messages %d→%d, refused refreshes %d→%d",
		tokensBefore, tokensAfter, mailBefore.IMAPCommands, mailAfter.IMAPCommands,
		mailBefore.SMTPMessages, mailAfter.SMTPMessages, idpBefore.RefreshFailed, idpAfter.RefreshFailed)
	if tokensAfter != tokensBefore || mailAfter.IMAPCommands != mailBefore.IMAPCommands || mailAfter.SMTPAuths != mailBefore.SMTPAuths || mailAfter.IMAPLogins != mailBefore.IMAPLogins {
		t.Errorf("the mail server saw logins while sign-in was needed: before %+v, after %+v", mailBefore, mailAfter)
	}
	// The fresh processes (fetch --once, check) ask the provider once each;
	// the running client and publisher ask nothing more.
	if d := idpAfter.RefreshFailed - idpBefore.RefreshFailed; d > 3 {
		t.Errorf("refused refreshes while sign-in was needed = %d, want at most 3 (fetch --once, publish --once and check)", d)
	}

	// A new sign-in, then Fetch now / Publish now, as the tray does.
	texts = append(texts, e.login(t, e.clientCfg), e.login(t, e.serverCfg))
	f.FetchNow()
	u, _ = ups.waitFor(t, "reading again after the new sign-in", next, func(u fetcher.Update) bool {
		return !u.SignInNeeded && !u.Fetching && u.State != fetcher.Error && u.Payload.IPv4.String() == "8.8.4.4"
	})
	if u.Health(time.Minute).SignInNeeded {
		t.Errorf("health after the new sign-in still says sign-in needed")
	}
	if _, err := p.PublishAddrs(ctx, publisher.Addrs{IPv4: netip.MustParseAddr("8.8.8.8")}); err != nil {
		t.Errorf("publish after the new sign-in = %v", err)
	}
	if p.Status().SignInNeeded {
		t.Errorf("publisher status still says sign-in needed")
	}
	e.noTokens(t, []string{serverRT, clientRT, refreshTokenOf(t, e.serverCfg), refreshTokenOf(t, e.clientCfg)}, append(texts, logs.String())...)
}
