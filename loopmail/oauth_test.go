package loopmail

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// tokens is a CheckToken for the tests: a fixed token per login, counting
// calls; tokens expire at expires (zero: unknown).
type tokens struct {
	byToken map[string]string
	expires time.Time
	calls   atomic.Int64
}

func (tk *tokens) check(_ context.Context, token string) (string, time.Time, error) {
	tk.calls.Add(1)
	if login, ok := tk.byToken[token]; ok {
		return login, tk.expires, nil
	}
	return "", time.Time{}, errors.New("unknown token")
}

func newTokens() *tokens {
	return &tokens{byToken: map[string]string{"tok-alice": alice, "tok-bob": bob}}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func xoauth2(user, token string) string {
	return "user=" + user + "\x01auth=Bearer " + token + "\x01\x01"
}

func oauthBearer(user, token string) string {
	return "n,a=" + user + ",\x01host=127.0.0.1\x01port=993\x01auth=Bearer " + token + "\x01\x01"
}

func rawIMAPConn(t *testing.T, s *Server) *rawIMAP {
	t.Helper()
	conn := dial(t, s.IMAPAddr())
	t.Cleanup(func() { conn.Close() })
	c := &rawIMAP{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.until("* OK")
	return c
}

func TestIMAPAuthenticateBearer(t *testing.T) {
	t.Parallel()
	tk := newTokens()
	s := start(t, Options{CheckToken: tk.check})
	errChallenge := "+ " + b64(`{"schemes":"bearer","scope":"mail","status":"invalid_token"}`) + "\r\n"
	tests := []struct {
		name string
		// script alternates what the client sends and the line the server
		// must answer with (prefix).
		script []string
	}{
		{"xoauth2-ir", []string{"a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "tok-alice")) + "\r\n", "a1 OK"}},
		{"oauthbearer-ir", []string{"a1 AUTHENTICATE OAUTHBEARER " + b64(oauthBearer(alice, "tok-alice")) + "\r\n", "a1 OK"}},
		{"xoauth2-no-ir", []string{"a1 AUTHENTICATE XOAUTH2\r\n", "+ \r\n", b64(xoauth2(bob, "tok-bob")) + "\r\n", "a1 OK"}},
		{"oauthbearer-no-authzid", []string{"a1 AUTHENTICATE OAUTHBEARER " + b64("n,,\x01auth=Bearer tok-bob\x01\x01") + "\r\n", "a1 OK"}},
		{"xoauth2-bad-token", []string{"a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "wrong")) + "\r\n", errChallenge, "\r\n", "a1 NO [AUTHENTICATIONFAILED]"}},
		{"oauthbearer-bad-token", []string{"a1 AUTHENTICATE OAUTHBEARER " + b64(oauthBearer(alice, "wrong")) + "\r\n", errChallenge, b64("\x01") + "\r\n", "a1 NO [AUTHENTICATIONFAILED]"}},
		{"token-of-another-user", []string{"a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "tok-bob")) + "\r\n", errChallenge, "\r\n", "a1 NO [AUTHENTICATIONFAILED]"}},
		{"oauthbearer-wrong-dummy", []string{"a1 AUTHENTICATE OAUTHBEARER " + b64(oauthBearer(alice, "wrong")) + "\r\n", errChallenge, "\r\n", "a1 NO"}},
		{"malformed", []string{"a1 AUTHENTICATE XOAUTH2 " + b64("user="+alice) + "\r\n", "+ " + b64(`{"schemes":"bearer","scope":"mail","status":"invalid_request"}`) + "\r\n", "\r\n", "a1 NO [AUTHENTICATIONFAILED]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := rawIMAPConn(t, s)
			for i := 0; i < len(tt.script); i += 2 {
				c.send(tt.script[i])
				want := tt.script[i+1]
				line, err := c.r.ReadString('\n')
				if err != nil {
					t.Fatalf("after %q: read: %v", tt.script[i], err)
				}
				if !strings.HasPrefix(line, want) {
					t.Fatalf("after %q: server said %q, want prefix %q", tt.script[i], line, want)
				}
			}
			if strings.HasSuffix(tt.script[len(tt.script)-1], "OK") {
				c.send("a2 SELECT INBOX\r\n")
				c.until("a2 OK")
			}
		})
	}
}

func TestIMAPBearerCapabilities(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		check func(context.Context, string) (string, time.Time, error)
		want  bool
	}{
		{"with-check", newTokens().check, true},
		{"without-check", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, Options{CheckToken: tt.check})
			c := imapDial(t, s, TLSNone, nil)
			caps, err := c.Capability().Wait()
			if err != nil {
				t.Fatal(err)
			}
			for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
				if got := caps.Has(imap.Cap("AUTH=" + mech)); got != tt.want {
					t.Errorf("Caps().Has(AUTH=%s) = %v, want %v", mech, got, tt.want)
				}
			}
			if !caps.Has(imap.AuthCap("PLAIN")) {
				t.Errorf("Caps() = %v, want AUTH=PLAIN", caps)
			}
			if err := c.Login(alice, alicePW).Wait(); err != nil {
				t.Errorf("Login() = %v; passwords must keep working", err)
			}
		})
	}
}

// TestIMAPBearerChecksEveryTime checks that each AUTHENTICATE asks
// CheckToken again (no caching), so a revoked token is refused at once.
func TestIMAPBearerChecksEveryTime(t *testing.T) {
	t.Parallel()
	tk := newTokens()
	s := start(t, Options{CheckToken: tk.check})
	for i := range 3 {
		c := rawIMAPConn(t, s)
		c.send("a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "tok-alice")) + "\r\n")
		c.until("a1 OK")
		if got := tk.calls.Load(); got != int64(i+1) {
			t.Fatalf("CheckToken calls after %d logins = %d, want %d", i+1, got, i+1)
		}
	}
}

func TestIMAPBearerStartTLSRequired(t *testing.T) {
	t.Parallel()
	s := start(t, Options{IMAPTLS: TLSStartTLS, CheckToken: newTokens().check})
	c := rawIMAPConn(t, s)
	c.send("a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "tok-alice")) + "\r\n")
	if line := c.until("a1 "); !strings.HasPrefix(line, "a1 NO [PRIVACYREQUIRED]") {
		t.Fatalf("AUTHENTICATE before STARTTLS: %q, want NO [PRIVACYREQUIRED]", line)
	}
}

func TestSMTPAuthBearer(t *testing.T) {
	t.Parallel()
	tk := newTokens()
	s := start(t, Options{CheckToken: tk.check})
	errChallenge := "334 " + b64(`{"schemes":"bearer","scope":"mail","status":"invalid_token"}`) + "\r\n"
	tests := []struct {
		name   string
		script []string
	}{
		{"xoauth2", []string{"AUTH XOAUTH2 " + b64(xoauth2(bob, "tok-bob")) + "\r\n", "235 "}},
		{"oauthbearer", []string{"AUTH OAUTHBEARER " + b64(oauthBearer(bob, "tok-bob")) + "\r\n", "235 "}},
		{"xoauth2-no-ir", []string{"AUTH XOAUTH2\r\n", "334 \r\n", b64(xoauth2(bob, "tok-bob")) + "\r\n", "235 "}},
		{"xoauth2-bad", []string{"AUTH XOAUTH2 " + b64(xoauth2(bob, "nope")) + "\r\n", errChallenge, "\r\n", "535 5.7.8"}},
		{"oauthbearer-bad", []string{"AUTH OAUTHBEARER " + b64(oauthBearer(bob, "nope")) + "\r\n", errChallenge, b64("\x01") + "\r\n", "535 5.7.8"}},
		{"other-user", []string{"AUTH OAUTHBEARER " + b64(oauthBearer(bob, "tok-alice")) + "\r\n", errChallenge, b64("\x01") + "\r\n", "535 5.7.8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := dial(t, s.SMTPAddr())
			defer conn.Close()
			c := &rawIMAP{t: t, conn: conn, r: bufio.NewReader(conn)}
			c.until("220 ")
			c.send("EHLO localhost\r\n")
			ehlo := ""
			for {
				line := c.until("250")
				ehlo += line
				if strings.HasPrefix(line, "250 ") {
					break
				}
			}
			if !strings.Contains(ehlo, "XOAUTH2") || !strings.Contains(ehlo, "OAUTHBEARER") {
				t.Fatalf("EHLO = %q, want AUTH with XOAUTH2 and OAUTHBEARER", ehlo)
			}
			for i := 0; i < len(tt.script); i += 2 {
				c.send(tt.script[i])
				line, err := c.r.ReadString('\n')
				if err != nil {
					t.Fatalf("after %q: read: %v", tt.script[i], err)
				}
				if !strings.HasPrefix(line, tt.script[i+1]) {
					t.Fatalf("after %q: server said %q, want prefix %q", tt.script[i], line, tt.script[i+1])
				}
			}
			if strings.HasPrefix(tt.script[len(tt.script)-1], "235") {
				c.send("MAIL FROM:<" + bob + ">\r\n")
				c.until("250 ")
			}
		})
	}
}

func TestParseBearer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mech, in    string
		user, token string
		ok          bool
	}{
		{mechXOAuth2, xoauth2("a@b", "T"), "a@b", "T", true},
		{mechXOAuth2, "user=a@b\x01auth=bearer T\x01\x01", "a@b", "T", true},
		{mechXOAuth2, "user=a@b\x01auth=Basic T\x01\x01", "", "", false},
		{mechXOAuth2, "auth=Bearer T\x01\x01", "", "", false},
		{mechXOAuth2, "user=a@b\x01auth=Bearer T\x01", "", "", false},
		{mechOAuthBearer, oauthBearer("a@b", "T"), "a@b", "T", true},
		{mechOAuthBearer, "n,a=a=2Cb@c,\x01auth=Bearer T\x01\x01", "a,b@c", "T", true},
		{mechOAuthBearer, "y,,\x01auth=Bearer T\x01\x01", "", "", false},
		{mechOAuthBearer, "n,,\x01auth=Bearer \x01\x01", "", "", false},
		{mechOAuthBearer, "n,u=x,\x01auth=Bearer T\x01\x01", "", "", false},
	}
	for _, tt := range tests {
		user, token, err := parseBearer(tt.mech, []byte(tt.in))
		if (err == nil) != tt.ok || user != tt.user || token != tt.token {
			t.Errorf("parseBearer(%s, %q) = %q, %q, %v; want %q, %q, ok=%v", tt.mech, tt.in, user, token, err, tt.user, tt.token, tt.ok)
		}
	}
}

func FuzzParseBearer(f *testing.F) {
	f.Add(xoauth2("a@b", "T"))
	f.Add(oauthBearer("a@b", "T"))
	f.Fuzz(func(t *testing.T, in string) {
		for _, mech := range []string{mechXOAuth2, mechOAuthBearer} {
			user, token, err := parseBearer(mech, []byte(in))
			if err == nil && token == "" {
				t.Errorf("parseBearer(%s, %q) = %q, %q, nil; want a token", mech, in, user, token)
			}
		}
	})
}

// TestIMAPBearerConnectionCap checks that a token sign-in counts against
// MaxIMAPConnsPerUser like a password login and is refused with [LIMIT],
// not with a token error.
func TestIMAPBearerConnectionCap(t *testing.T) {
	t.Parallel()
	s := start(t, Options{CheckToken: newTokens().check, MaxIMAPConnsPerUser: 1})
	first := rawIMAPConn(t, s)
	first.send("a1 AUTHENTICATE OAUTHBEARER " + b64(oauthBearer(alice, "tok-alice")) + "\r\n")
	first.until("a1 OK")
	second := rawIMAPConn(t, s)
	second.send("a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "tok-alice")) + "\r\n")
	if line := second.until("a1 "); !strings.HasPrefix(line, "a1 NO [LIMIT]") {
		t.Fatalf("second token sign-in = %q, want NO [LIMIT]", line)
	}
	if got := s.Stats().IMAPLimitRefusals; got != 1 {
		t.Errorf("Stats().IMAPLimitRefusals = %d, want 1", got)
	}
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestEndExpiredTokenSessions(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	tk := newTokens()
	tk.expires = clock.Now().Add(time.Hour)
	s := start(t, Options{CheckToken: tk.check, Now: clock.Now})

	idler := rawIMAPConn(t, s)
	idler.send("a1 AUTHENTICATE XOAUTH2 " + b64(xoauth2(alice, "tok-alice")) + "\r\n")
	idler.until("a1 OK")
	idler.send("a2 SELECT INBOX\r\n")
	idler.until("a2 OK")
	idler.send("a3 IDLE\r\n")
	idler.until("+ ")
	pw := rawIMAPConn(t, s)
	pw.send("b1 LOGIN " + alice + " " + alicePW + "\r\n")
	pw.until("b1 OK")

	if n := s.EndExpiredTokenSessions(); n != 0 {
		t.Fatalf("EndExpiredTokenSessions() before expiry = %d, want 0", n)
	}
	clock.Advance(time.Hour)
	if n := s.EndExpiredTokenSessions(); n != 1 {
		t.Fatalf("EndExpiredTokenSessions() at expiry = %d, want 1", n)
	}
	if line := idler.until("* "); line != "* BYE Session invalidated - AccessTokenExpired\r\n" {
		t.Errorf("idling session got %q, want the BYE of Exchange Online", line)
	}
	pw.send("b2 NOOP\r\n")
	pw.until("b2 OK")
	if n := s.EndExpiredTokenSessions(); n != 0 {
		t.Errorf("EndExpiredTokenSessions() again = %d, want 0", n)
	}
}
