// Package oauthtest runs an in-process OAuth2 authorization server on
// 127.0.0.1 for ipsync's tests. It stands in for Microsoft Entra ID and
// Google's servers, which tests never touch.
//
// It serves, under Server.URL:
//
//   - /authorize: the authorization endpoint (RFC 6749 §4.1). It signs in
//     Options.User at once (there is no login page), requires PKCE with
//     S256 (RFC 7636) and a loopback http redirect_uri (RFC 8252), and
//     redirects with a one-time code, or with error=access_denied while
//     SetConsent(false) is in force;
//   - /token: the token endpoint, for the authorization_code,
//     refresh_token and device_code grants. Access tokens expire after
//     Options.AccessTTL as told by Options.Now; refresh tokens are rotated
//     when Options.RotateRefreshTokens is set; a revoked, unknown or rotated
//     refresh token gets invalid_grant;
//   - /device: the device authorization endpoint (RFC 8628). Polls answer
//     authorization_pending until ApproveDevice or DenyDevice, slow_down when
//     polled sooner than the interval the server enforces (the one it told
//     the client, or a longer one set with SlowDownDevice), expired_token
//     after Options.DeviceCodeTTL or ExpireDevice, and tokens once approved;
//   - /revoke: token revocation (RFC 7009); revoking a refresh token also
//     revokes the access tokens issued from it;
//   - /introspect: token introspection (RFC 7662), answering
//     {"active": true, "username": …} for a live access token and
//     {"active": false} otherwise, as Dovecot's oauth2 passdb expects with
//     introspection_mode = post.
//
// Tokens are random and opaque. The server never logs them. All methods are
// safe for concurrent use.
package oauthtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultClientID       = "ipsync-test-client"
	DefaultUser           = "ipsync@example.test"
	DefaultAccessTTL      = time.Hour
	DefaultDeviceCodeTTL  = 15 * time.Minute
	DefaultDeviceInterval = 5 * time.Second
	codeTTL               = 10 * time.Minute
)

// Options configures Start. The zero value is usable.
type Options struct {
	// ClientID is the one client the server knows. "" means DefaultClientID.
	ClientID string
	// ClientSecret, if set, must be presented by the client (HTTP Basic or
	// form); "" makes it a public client that presents only its id.
	ClientSecret string
	// User is the account the authorization endpoint and approved device
	// codes sign in. "" means DefaultUser.
	User string
	// AccessTTL is the lifetime of access tokens. 0 means DefaultAccessTTL.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of refresh tokens. 0 means they never expire.
	RefreshTTL time.Duration
	// RotateRefreshTokens makes every refresh return a new refresh token and
	// invalidate the one used, as Microsoft does.
	RotateRefreshTokens bool
	// DeviceCodeTTL is the lifetime of device codes. 0 means DefaultDeviceCodeTTL.
	DeviceCodeTTL time.Duration
	// DeviceInterval is the poll interval the device endpoint asks for.
	// 0 means DefaultDeviceInterval.
	DeviceInterval time.Duration
	// Now is the server's clock. nil means time.Now.
	Now func() time.Time
}

// Stats counts requests by kind. See Server.Stats.
type Stats struct {
	Authorizations int // successful /authorize redirects with a code
	CodeExchanges  int // authorization codes exchanged for tokens
	Refreshes      int // successful refresh_token grants
	RefreshFailed  int // refused refresh_token grants
	DevicePolls    int // device_code grant requests
	DevicePending  int // polls answered authorization_pending
	DeviceSlowDown int // polls answered slow_down
	Introspections int // /introspect requests
	Revocations    int // /revoke requests
}

// Server is a running authorization server.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port".
	URL string

	opts Options
	now  func() time.Time
	srv  *http.Server
	ln   net.Listener
	done chan struct{}

	mu      sync.Mutex
	consent bool
	codes   map[string]*authCode
	access  map[string]*accessToken
	refresh map[string]*refreshToken
	devices map[string]*deviceCode // by device code
	stats   Stats
}

type authCode struct {
	challenge, redirect, scope string
	expires                    time.Time
}

type accessToken struct {
	user, scope string
	expires     time.Time
	refresh     string // the refresh token it came from
	revoked     bool
}

type refreshToken struct {
	user, scope string
	expires     time.Time // zero: never
	revoked     bool
}

type deviceCode struct {
	userCode, scope string
	expires         time.Time
	interval        time.Duration
	lastPoll        time.Time
	state           string // "pending", "approved", "denied", "used"
}

// Start listens on 127.0.0.1 with a kernel-chosen port and serves until ctx
// ends or Close is called. It does not block.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oauthtest: listen: %w", err)
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// New returns a server that does not listen: serve Handler yourself (for
// example through an in-memory http.RoundTripper) and set URL to the base
// URL the endpoints should be reached at. It does no I/O.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = DefaultAccessTTL
	}
	if opts.DeviceCodeTTL == 0 {
		opts.DeviceCodeTTL = DefaultDeviceCodeTTL
	}
	if opts.DeviceInterval == 0 {
		opts.DeviceInterval = DefaultDeviceInterval
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Server{
		opts:    opts,
		now:     now,
		done:    make(chan struct{}),
		consent: true,
		codes:   make(map[string]*authCode),
		access:  make(map[string]*accessToken),
		refresh: make(map[string]*refreshToken),
		devices: make(map[string]*deviceCode),
	}
}

// Close stops listening and closes open connections. It is safe to call
// more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return nil
	default:
		close(s.done)
	}
	s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Endpoint URLs.
func (s *Server) AuthURL() string       { return s.URL + "/authorize" }
func (s *Server) TokenURL() string      { return s.URL + "/token" }
func (s *Server) DeviceURL() string     { return s.URL + "/device" }
func (s *Server) RevokeURL() string     { return s.URL + "/revoke" }
func (s *Server) IntrospectURL() string { return s.URL + "/introspect" }

// ClientID returns the client id the server accepts.
func (s *Server) ClientID() string { return s.opts.ClientID }

// User returns the account the server signs in.
func (s *Server) User() string { return s.opts.User }

// Stats returns a snapshot of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// SetConsent chooses whether the authorization endpoint grants (true, the
// default) or answers error=access_denied, as when the user declines.
func (s *Server) SetConsent(ok bool) {
	s.mu.Lock()
	s.consent = ok
	s.mu.Unlock()
}

// ApproveDevice approves the device code with this user code, as the user
// would on the verification page. It reports whether the code was pending.
func (s *Server) ApproveDevice(userCode string) bool { return s.decideDevice(userCode, "approved") }

// SlowDownDevice makes the server enforce interval between polls of the
// device code with this user code, without telling the client, as a busy
// provider does: faster polls get slow_down. It reports whether the code
// was pending.
func (s *Server) SlowDownDevice(userCode string, interval time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode == userCode && d.state == "pending" {
			d.interval = interval
			return true
		}
	}
	return false
}

// ExpireDevice makes the device code with this user code expire now.
func (s *Server) ExpireDevice(userCode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode == userCode && d.state == "pending" {
			d.expires = s.now()
			return true
		}
	}
	return false
}

// DenyDevice declines the device code with this user code.
func (s *Server) DenyDevice(userCode string) bool { return s.decideDevice(userCode, "denied") }

func (s *Server) decideDevice(userCode, state string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.userCode == userCode && d.state == "pending" {
			d.state = state
			return true
		}
	}
	return false
}

// Revoke revokes token, an access or refresh token, as /revoke does. It
// reports whether the token was known.
func (s *Server) Revoke(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeLocked(token)
}

func (s *Server) revokeLocked(token string) bool {
	if a := s.access[token]; a != nil {
		a.revoked = true
		return true
	}
	r := s.refresh[token]
	if r == nil {
		return false
	}
	r.revoked = true
	for _, a := range s.access {
		if a.refresh == token {
			a.revoked = true
		}
	}
	return true
}

// ExpireAccessTokens makes every access token issued so far expired now,
// as a provider that ends sessions early would; refresh tokens stay valid.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, a := range s.access {
		a.expires = now
	}
}

// CheckToken reports the user an access token belongs to, or an error if it
// is unknown, revoked or expired. It is what /introspect answers, without
// HTTP.
func (s *Server) CheckToken(token string) (user string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.checkLocked(token)
	if err != nil {
		return "", err
	}
	return a.user, nil
}

func (s *Server) checkLocked(token string) (*accessToken, error) {
	a := s.access[token]
	switch {
	case a == nil:
		return nil, errors.New("oauthtest: unknown access token")
	case a.revoked:
		return nil, errors.New("oauthtest: access token revoked")
	case !s.now().Before(a.expires):
		return nil, errors.New("oauthtest: access token expired")
	}
	return a, nil
}

// Introspect asks the server's /introspect endpoint over HTTP, as Dovecot
// does (POST token=…), and returns the username and expiry of an active
// token, or an error. It gives up when ctx ends. Its signature fits
// loopmail.Options.CheckToken.
func (s *Server) Introspect(ctx context.Context, token string) (user string, expires time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.IntrospectURL(), strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oauthtest: introspect: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("oauthtest: introspect: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Active   bool   `json:"active"`
		Username string `json:"username"`
		Exp      int64  `json:"exp"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, fmt.Errorf("oauthtest: introspect: status %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", time.Time{}, fmt.Errorf("oauthtest: introspect: decode answer: %w", err)
	}
	if !out.Active {
		return "", time.Time{}, errors.New("oauthtest: introspect: token is not active")
	}
	if out.Exp != 0 {
		expires = time.Unix(out.Exp, 0)
	}
	return out.Username, expires, nil
}

// Handler returns the HTTP handler of all endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", s.handleAuthorize)
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /device", s.handleDevice)
	mux.HandleFunc("POST /revoke", s.handleRevoke)
	mux.HandleFunc("POST /introspect", s.handleIntrospect)
	return mux
}

func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if err != nil || ru.Scheme != "http" || !isLoopbackHost(ru.Hostname()) || ru.RawQuery != "" || ru.Fragment != "" {
		// RFC 6749 §4.1.2.1: never redirect to an unchecked URI.
		http.Error(w, "redirect_uri must be a loopback http URI (RFC 8252)", http.StatusBadRequest)
		return
	}
	if q.Get("client_id") != s.opts.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	back := func(v url.Values) {
		v.Set("state", q.Get("state"))
		u := *ru
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		back(url.Values{"error": {code}, "error_description": {desc}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "response_type must be code")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	case len(q.Get("code_challenge")) != 43:
		fail("invalid_request", "code_challenge must be 43 characters of base64url")
		return
	}
	s.mu.Lock()
	if !s.consent {
		s.mu.Unlock()
		fail("access_denied", "the user declined")
		return
	}
	code := randomString("code")
	s.codes[code] = &authCode{challenge: q.Get("code_challenge"), redirect: redirect, scope: q.Get("scope"), expires: s.now().Add(codeTTL)}
	s.stats.Authorizations++
	s.mu.Unlock()
	back(url.Values{"code": {code}})
}

// tokenError is an RFC 6749 §5.2 error answer.
type tokenError struct {
	status int
	code   string
	desc   string
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "malformed form"})
		return
	}
	if te := s.checkClient(r); te != nil {
		writeTokenError(w, *te)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		resp map[string]any
		te   *tokenError
	)
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		resp, te = s.exchangeCodeLocked(r.PostForm)
	case "refresh_token":
		resp, te = s.refreshLocked(r.PostForm)
	case "urn:ietf:params:oauth:grant-type:device_code":
		resp, te = s.pollDeviceLocked(r.PostForm)
	default:
		te = &tokenError{http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type"}
	}
	if te != nil {
		writeTokenError(w, *te)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// checkClient authenticates the client (RFC 6749 §2.3.1).
func (s *Server) checkClient(r *http.Request) *tokenError {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.opts.ClientID {
		return &tokenError{http.StatusUnauthorized, "invalid_client", "unknown client"}
	}
	if s.opts.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		return &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	}
	return nil
}

func (s *Server) exchangeCodeLocked(f url.Values) (map[string]any, *tokenError) {
	code := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code")) // one use only, whatever happens
	if code == nil || !s.now().Before(code.expires) {
		return nil, &tokenError{http.StatusBadRequest, "invalid_grant", "unknown, used or expired code"}
	}
	if f.Get("redirect_uri") != code.redirect {
		return nil, &tokenError{http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request"}
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != code.challenge {
		return nil, &tokenError{http.StatusBadRequest, "invalid_grant", "PKCE code_verifier does not match code_challenge"}
	}
	s.stats.CodeExchanges++
	return s.issueLocked(code.scope, "", true), nil
}

func (s *Server) refreshLocked(f url.Values) (map[string]any, *tokenError) {
	rt := f.Get("refresh_token")
	r := s.refresh[rt]
	if r == nil || r.revoked || (!r.expires.IsZero() && !s.now().Before(r.expires)) {
		s.stats.RefreshFailed++
		return nil, &tokenError{http.StatusBadRequest, "invalid_grant", "refresh token is unknown, revoked or expired; sign in again"}
	}
	s.stats.Refreshes++
	if s.opts.RotateRefreshTokens {
		r.revoked = true
		return s.issueLocked(r.scope, "", true), nil
	}
	return s.issueLocked(r.scope, rt, false), nil
}

func (s *Server) pollDeviceLocked(f url.Values) (map[string]any, *tokenError) {
	s.stats.DevicePolls++
	d := s.devices[f.Get("device_code")]
	if d == nil {
		return nil, &tokenError{http.StatusBadRequest, "invalid_grant", "unknown device code"}
	}
	now := s.now()
	if !now.Before(d.expires) {
		return nil, &tokenError{http.StatusBadRequest, "expired_token", "the device code expired; start again"}
	}
	early := !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < d.interval
	d.lastPoll = now
	switch d.state {
	case "denied":
		return nil, &tokenError{http.StatusBadRequest, "access_denied", "the user declined"}
	case "used":
		return nil, &tokenError{http.StatusBadRequest, "invalid_grant", "device code already used"}
	case "approved":
		d.state = "used"
		return s.issueLocked(d.scope, "", true), nil
	}
	if early {
		s.stats.DeviceSlowDown++
		return nil, &tokenError{http.StatusBadRequest, "slow_down", "polling too fast"}
	}
	s.stats.DevicePending++
	return nil, &tokenError{http.StatusBadRequest, "authorization_pending", "waiting for the user"}
}

// issueLocked makes an access token and, if newRefresh, a refresh token;
// otherwise the access token belongs to refresh rt.
func (s *Server) issueLocked(scope, rt string, newRefresh bool) map[string]any {
	now := s.now()
	if newRefresh {
		rt = randomString("rt")
		r := &refreshToken{user: s.opts.User, scope: scope}
		if s.opts.RefreshTTL > 0 {
			r.expires = now.Add(s.opts.RefreshTTL)
		}
		s.refresh[rt] = r
	}
	at := randomString("at")
	s.access[at] = &accessToken{user: s.opts.User, scope: scope, expires: now.Add(s.opts.AccessTTL), refresh: rt}
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int64(s.opts.AccessTTL / time.Second),
		"scope":        scope,
	}
	if newRefresh {
		resp["refresh_token"] = rt
	}
	return resp
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "malformed form"})
		return
	}
	if r.PostForm.Get("client_id") != s.opts.ClientID {
		writeTokenError(w, tokenError{http.StatusUnauthorized, "invalid_client", "unknown client"})
		return
	}
	s.mu.Lock()
	dc := randomString("dc")
	uc := strings.ToUpper(randomString("")[:8])
	s.devices[dc] = &deviceCode{
		userCode: uc,
		scope:    r.PostForm.Get("scope"),
		expires:  s.now().Add(s.opts.DeviceCodeTTL),
		interval: s.opts.DeviceInterval,
		state:    "pending",
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":      dc,
		"user_code":        uc,
		"verification_uri": s.URL + "/device/verify",
		"expires_in":       int64(s.opts.DeviceCodeTTL / time.Second),
		"interval":         int64(s.opts.DeviceInterval / time.Second),
	})
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "malformed form"})
		return
	}
	s.mu.Lock()
	s.stats.Revocations++
	s.revokeLocked(r.PostForm.Get("token"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK) // RFC 7009 §2.2: also for unknown tokens
}

func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "malformed form"})
		return
	}
	token := r.PostForm.Get("token")
	if token == "" { // Dovecot's introspection_mode=auth sends a header instead
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	s.mu.Lock()
	s.stats.Introspections++
	a, err := s.checkLocked(token)
	var answer map[string]any
	if err != nil {
		answer = map[string]any{"active": false}
	} else {
		answer = map[string]any{
			"active":    true,
			"username":  a.user,
			"scope":     a.scope,
			"client_id": s.opts.ClientID,
			"exp":       a.expires.Unix(),
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, answer)
}

func writeTokenError(w http.ResponseWriter, te tokenError) {
	writeJSON(w, te.status, map[string]string{"error": te.code, "error_description": te.desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// randomString returns prefix + 32 random bytes in base64url.
func randomString(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	s := base64.RawURLEncoding.EncodeToString(b)
	if prefix != "" {
		return prefix + "-" + s
	}
	return strings.NewReplacer("-", "A", "_", "B").Replace(s)
}
