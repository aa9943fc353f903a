package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// Errors callers branch on.
var (
	// ErrSignInNeeded means no refresh token is stored, or the provider no
	// longer accepts the stored one (invalid_grant: revoked, expired, or
	// the password changed). Retrying does not help; the user must sign in
	// again.
	ErrSignInNeeded = errors.New("sign-in needed")
	// ErrAccessDenied means the user declined the sign-in.
	ErrAccessDenied = errors.New("the sign-in was declined")
	// ErrDeviceCodeExpired means the device code expired before the user
	// entered it.
	ErrDeviceCodeExpired = errors.New("the device code expired before the sign-in was completed")
	// ErrNoDeviceFlow means the provider does not allow the device-code
	// flow for mail.
	ErrNoDeviceFlow = errors.New("the provider does not offer the device-code flow for mail")
)

// errTokenTimeout is the cause of a token endpoint call running out of time.
var errTokenTimeout = errors.New("the token endpoint did not answer in time")

// tokenTimeout bounds each call to a token or device endpoint.
const tokenTimeout = 30 * time.Second

// AppOptions tune NewApp. The zero value is usable.
type AppOptions struct {
	// HTTPClient talks to the provider. nil means a client with 30-second
	// dial and response-header timeouts and the system proxy settings.
	HTTPClient *http.Client
	// Logger receives what the flows and sources do; never a token. nil
	// discards.
	Logger *slog.Logger
}

// App is a registered OAuth2 app at its provider. It is safe for concurrent
// use.
type App struct {
	provider     Provider
	cfg          oauth2.Config
	authOpts     []oauth2.AuthCodeOption
	redirectHost string
	hc           *http.Client
	log          *slog.Logger
}

// NewApp validates s (see Settings.Validate) and returns the app. It does no
// I/O.
func NewApp(s Settings, opts AppOptions) (*App, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	cfg, authOpts, host := s.config()
	a := &App{provider: s.Provider, cfg: cfg, authOpts: authOpts, redirectHost: host, hc: opts.HTTPClient, log: opts.Logger}
	if a.hc == nil {
		a.hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

// Provider returns the app's provider.
func (a *App) Provider() Provider { return a.provider }

// Scopes returns the scopes the app asks for.
func (a *App) Scopes() []string { return append([]string(nil), a.cfg.Scopes...) }

// tokenCtx bounds one provider call and makes oauth2 use a.hc.
func (a *App) tokenCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeoutCause(ctx, tokenTimeout, errTokenTimeout)
	return context.WithValue(ctx, oauth2.HTTPClient, a.hc), cancel
}

// ProviderError is a refusal by the provider's token or device endpoint
// (RFC 6749 §5.2). It carries the error code and description, never the
// response body, which could hold a token.
type ProviderError struct {
	Status      int    // HTTP status
	Code        string // RFC 6749 "error", such as invalid_grant
	Description string // "error_description", as the provider wrote it
}

func (e *ProviderError) Error() string {
	s := fmt.Sprintf("provider answered HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += fmt.Sprintf(" (%s)", e.Description)
	}
	return s
}

// Is makes an invalid_grant refusal match ErrSignInNeeded and an
// access_denied one ErrAccessDenied.
func (e *ProviderError) Is(target error) bool {
	switch target {
	case ErrSignInNeeded:
		return e.Code == "invalid_grant"
	case ErrAccessDenied:
		return e.Code == "access_denied"
	case ErrDeviceCodeExpired:
		return e.Code == "expired_token"
	}
	return false
}

// cleanError replaces an oauth2 error by one without the response body and
// names a timeout.
func cleanError(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		pe := &ProviderError{Code: re.ErrorCode, Description: re.ErrorDescription}
		if re.Response != nil {
			pe.Status = re.Response.StatusCode
		}
		return pe
	}
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
	}
	return err
}
