package oauthtest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testWait = 10 * time.Second

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// noFollow is a client that stops at redirects, with a timeout.
var noFollow = &http.Client{
	Timeout:       testWait,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorize asks /authorize and returns the redirect's query.
func authorize(t *testing.T, s *Server, q url.Values) url.Values {
	t.Helper()
	resp, err := noFollow.Get(s.AuthURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /authorize?%s: status %d, want 302", q.Encode(), resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query()
}

func token(t *testing.T, s *Server, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := noFollow.PostForm(s.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func authQuery(verifier string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {DefaultClientID},
		"redirect_uri":          {"http://127.0.0.1:4711/"},
		"state":                 {"st"},
		"code_challenge":        {challenge(verifier)},
		"code_challenge_method": {"S256"},
		"scope":                 {"mail"},
	}
}

func TestAuthorizeRequiresPKCE(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	verifier := strings.Repeat("v", 43)
	tests := []struct {
		name   string
		edit   func(url.Values)
		wantEr string
	}{
		{"no-challenge", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"plain-method", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"wrong-response-type", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authQuery(verifier)
			tt.edit(q)
			back := authorize(t, s, q)
			if back.Get("error") != tt.wantEr || back.Get("state") != "st" || back.Get("code") != "" {
				t.Errorf("redirect query = %v, want error=%s, state=st, no code", back, tt.wantEr)
			}
		})
	}
}

func TestAuthorizeRefusesNonLoopbackRedirect(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	q := authQuery(strings.Repeat("v", 43))
	q.Set("redirect_uri", "https://evil.example/")
	resp, err := noFollow.Get(s.AuthURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400 and no redirect", resp.StatusCode)
	}
}

func TestCodeExchangeChecksVerifier(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	verifier := strings.Repeat("v", 43)
	exchange := func(code, verifier, redirect string) (int, map[string]any) {
		return token(t, s, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
			"redirect_uri": {redirect}, "client_id": {DefaultClientID},
		})
	}
	code := authorize(t, s, authQuery(verifier)).Get("code")
	if st, body := exchange(code, strings.Repeat("w", 43), "http://127.0.0.1:4711/"); st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("exchange with the wrong verifier = %d %v, want 400 invalid_grant", st, body)
	}
	// The code was spent by the failed attempt.
	if st, body := exchange(code, verifier, "http://127.0.0.1:4711/"); st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("second use of a code = %d %v, want 400 invalid_grant", st, body)
	}
	code = authorize(t, s, authQuery(verifier)).Get("code")
	if st, body := exchange(code, verifier, "http://127.0.0.1:9999/"); st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("exchange with another redirect_uri = %d %v, want 400 invalid_grant", st, body)
	}
	code = authorize(t, s, authQuery(verifier)).Get("code")
	st, body := exchange(code, verifier, "http://127.0.0.1:4711/")
	if st != 200 || body["access_token"] == nil || body["refresh_token"] == nil || body["expires_in"] != float64(3600) {
		t.Fatalf("exchange = %d %v, want tokens expiring in 3600 s", st, body)
	}
	user, err := s.CheckToken(body["access_token"].(string))
	if err != nil || user != DefaultUser {
		t.Errorf("CheckToken(access) = %q, %v; want %q", user, err, DefaultUser)
	}
}

func TestClientSecret(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{ClientSecret: "shh"})
	st, body := token(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {DefaultClientID}})
	if st != 401 || body["error"] != "invalid_client" {
		t.Errorf("refresh without the secret = %d %v, want 401 invalid_client", st, body)
	}
	st, body = token(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {DefaultClientID}, "client_secret": {"shh"}})
	if st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh of an unknown token with the secret = %d %v, want 400 invalid_grant", st, body)
	}
}

func TestIntrospectAndRevoke(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := startServer(t, Options{Now: clock, AccessTTL: time.Minute})
	s.mu.Lock()
	at := s.issueLocked("mail", "", true)
	s.mu.Unlock()
	access, refresh := at["access_token"].(string), at["refresh_token"].(string)

	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	if user, exp, err := s.Introspect(ctx, access); err != nil || user != DefaultUser || !exp.Equal(now.Add(time.Minute)) {
		t.Fatalf("Introspect(live token) = %q, %v, %v; want %q, %v", user, exp, err, DefaultUser, now.Add(time.Minute))
	}
	if _, _, err := s.Introspect(ctx, "nonsense"); err == nil {
		t.Error("Introspect(unknown token) = nil error, want inactive")
	}
	resp, err := noFollow.PostForm(s.RevokeURL(), url.Values{"token": {refresh}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, _, err := s.Introspect(ctx, access); err == nil {
		t.Error("Introspect(access token of a revoked refresh token) = nil error, want inactive")
	}
	st, body := token(t, s, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {DefaultClientID}})
	if st != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh with a revoked token = %d %v, want 400 invalid_grant", st, body)
	}
	if got := s.Stats(); got.Introspections != 3 || got.Revocations != 1 || got.RefreshFailed != 1 {
		t.Errorf("Stats() = %+v, want 3 introspections, 1 revocation, 1 failed refresh", got)
	}
}
