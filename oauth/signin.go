package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"
)

// BrowserOptions tune SignInBrowser. The zero value prints the URL for the
// user to open.
type BrowserOptions struct {
	// Open opens url in the user's browser. nil, or an error from it,
	// leaves the user to open the URL printed to Out.
	Open func(url string) error
	// Out receives the instructions for the user (the URL to open). nil
	// discards them.
	Out io.Writer
	// Port is the loopback port to receive the redirect on. 0 picks a free
	// one; a fixed port lets a user forward it over SSH
	// (ssh -L PORT:127.0.0.1:PORT server) to sign in a remote machine.
	Port int
}

// redirectPage is shown in the browser after the redirect.
const redirectPage = `<!doctype html><meta charset="utf-8"><title>ipsync</title><p>%s</p>`

// SignInBrowser runs the authorization-code flow with PKCE (RFC 7636) and a
// loopback redirect (RFC 8252): it listens on 127.0.0.1, has the browser
// opened at the provider's authorization page, waits for the redirect,
// exchanges the code and saves the refresh token in store. It blocks until
// then, or until ctx ends (give it a deadline: the user may walk away).
func (a *App) SignInBrowser(ctx context.Context, store Store, opts BrowserOptions) error {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		return fmt.Errorf("sign in: listen for the redirect on 127.0.0.1:%d: %w", opts.Port, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	listeners := []net.Listener{ln}
	if a.redirectHost == "localhost" {
		// Browsers may resolve localhost to ::1 first; listen there too if
		// the machine has IPv6 loopback.
		if ln6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
			listeners = append(listeners, ln6)
		}
	}

	cfg := a.cfg
	// No path: registrations hold "http://localhost" (Entra ID) or allow
	// any loopback port (Google), and the port is ignored when matching.
	cfg.RedirectURL = "http://" + net.JoinHostPort(a.redirectHost, strconv.Itoa(port))
	state := randomToken()
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, a.authOpts...)...)

	type result struct {
		code string
		err  error
	}
	results := make(chan result, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			// Not the answer to our request (a stale tab, or a forgery).
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, redirectPage, "This sign-in link is not the one ipsync is waiting for. Start the sign-in again.")
			return
		}
		var res result
		if e := q.Get("error"); e != "" {
			res.err = &ProviderError{Status: http.StatusFound, Code: e, Description: q.Get("error_description")}
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, redirectPage, "Sign-in failed: "+html.EscapeString(e)+". You can close this tab.")
		} else if res.code = q.Get("code"); res.code == "" {
			res.err = errors.New("the redirect carried neither a code nor an error")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, redirectPage, "Sign-in failed: no code. You can close this tab.")
		} else {
			fmt.Fprintf(w, redirectPage, "ipsync received the sign-in. You can close this tab and return to ipsync.")
		}
		select {
		case results <- res:
		default: // a repeated redirect; the first one counts
		}
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	for _, l := range listeners {
		go func() { _ = srv.Serve(l) }()
	}
	defer srv.Close()

	fmt.Fprintf(out, "To sign in, open this page in a browser on this computer:\n\n  %s\n\n", authURL)
	if opts.Open != nil {
		if err := opts.Open(authURL); err != nil {
			a.log.Info("oauth: could not open the browser; the user must open the URL", "err", err)
		}
	}

	var res result
	select {
	case res = <-results:
	case <-ctx.Done():
		return fmt.Errorf("sign in: waiting for the browser: %w", context.Cause(ctx))
	}
	if res.err != nil {
		return fmt.Errorf("sign in: authorization: %w", res.err)
	}
	tctx, cancel := a.tokenCtx(ctx)
	defer cancel()
	tok, err := cfg.Exchange(tctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("sign in: exchange the authorization code: %w", cleanError(tctx, err))
	}
	return a.keep(store, tok)
}

// DeviceOptions tune SignInDevice. The zero value is usable only if
// something else shows the code; set Out.
type DeviceOptions struct {
	// Out receives the URL to open and the code to enter. nil discards.
	Out io.Writer
}

// SignInDevice runs the device-code flow (RFC 8628): it prints a URL and a
// code for the user to enter on any device with a browser, polls the
// provider (slowing down when told to) until the user has signed in, and
// saves the refresh token in store. It blocks until then, until the code
// expires (ErrDeviceCodeExpired), the user declines (ErrAccessDenied), or
// ctx ends. Providers without a device flow for mail (Google) give
// ErrNoDeviceFlow.
func (a *App) SignInDevice(ctx context.Context, store Store, opts DeviceOptions) error {
	if a.cfg.Endpoint.DeviceAuthURL == "" {
		return fmt.Errorf("sign in with a device code: %w (%s); sign in through the browser instead", ErrNoDeviceFlow, a.provider)
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	tctx, cancel := a.tokenCtx(ctx)
	da, err := a.cfg.DeviceAuth(tctx)
	err = cleanError(tctx, err)
	cancel()
	if err != nil {
		return fmt.Errorf("sign in with a device code: ask for a code: %w", err)
	}
	fmt.Fprintf(out, "To sign in, open %s in a browser on any device and enter the code %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(out, "(or open %s, which carries the code)\n", da.VerificationURIComplete)
	}
	if !da.Expiry.IsZero() {
		fmt.Fprintf(out, "The code is valid until %s.\n", da.Expiry.Local().Format("15:04:05"))
	}

	// DeviceAccessToken polls until da.Expiry; each poll is one HTTP call
	// bounded by the client's timeouts.
	pctx := context.WithValue(ctx, oauth2.HTTPClient, a.hc)
	tok, err := a.cfg.DeviceAccessToken(pctx, da)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("sign in with a device code: %w", context.Cause(ctx))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrDeviceCodeExpired
		}
		err = cleanError(pctx, err)
		if errors.Is(err, ErrDeviceCodeExpired) {
			return fmt.Errorf("sign in with a device code: %w; start again", err)
		}
		return fmt.Errorf("sign in with a device code: %w", err)
	}
	return a.keep(store, tok)
}

// keep saves the refresh token of a fresh sign-in.
func (a *App) keep(store Store, tok *oauth2.Token) error {
	if tok.RefreshToken == "" {
		hint := "check the scopes"
		switch a.provider {
		case Microsoft:
			hint = "keep the offline_access scope"
		case Google:
			hint = "remove ipsync's access at myaccount.google.com/permissions and sign in again"
		}
		return fmt.Errorf("sign in: the provider returned no refresh token, so ipsync could not sign in again later (%s)", hint)
	}
	if err := store.Save(tok.RefreshToken); err != nil {
		return fmt.Errorf("sign in: keep the refresh token: %w", err)
	}
	a.log.Info("oauth: signed in; refresh token kept", "where", store.String())
	return nil
}

// randomToken returns 32 random bytes in base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails
	return base64.RawURLEncoding.EncodeToString(b)
}
