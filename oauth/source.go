package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"
)

// DefaultEarly is how long before its expiry a Source replaces an access
// token by default.
const DefaultEarly = 5 * time.Minute

// SourceOptions tune NewSource. The zero value is usable.
type SourceOptions struct {
	// Now is the clock deciding when a token is about to expire. nil means
	// time.Now.
	Now func() time.Time
	// Early is how long before expiry a token is replaced. 0 means
	// DefaultEarly.
	Early time.Duration
}

// Source hands out access tokens for mail logins. It keeps the current
// access token in memory only, reads the refresh token from its Store when
// it needs a new one, and saves a rotated refresh token back. It is safe for
// concurrent use; concurrent callers share one refresh.
type Source struct {
	app   *App
	store Store
	now   func() time.Time
	early time.Duration
	log   *slog.Logger

	sem     chan struct{} // held while refreshing; guards the fields below
	access  string
	renewAt time.Time // when to replace access; zero: unknown expiry, kept until refused
	refused string    // refresh token the provider refused ("" none)
}

// NewSource returns a Source for the app's tokens kept in store. It does no
// I/O.
func (a *App) NewSource(store Store, opts SourceOptions) *Source {
	s := &Source{app: a, store: store, now: opts.Now, early: opts.Early, log: a.log, sem: make(chan struct{}, 1)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.early <= 0 {
		s.early = DefaultEarly
	}
	return s
}

// Token returns an access token valid for at least the Early margin (or
// half its lifetime, if that is shorter), refreshing it first if needed. An error matching ErrSignInNeeded means
// the user must sign in again: do not retry.
func (s *Source) Token(ctx context.Context) (string, error) {
	if err := s.lock(ctx); err != nil {
		return "", err
	}
	defer s.unlock()
	if s.access != "" && (s.renewAt.IsZero() || s.now().Before(s.renewAt)) {
		return s.access, nil
	}
	if err := s.refreshLocked(ctx); err != nil {
		return "", err
	}
	return s.access, nil
}

// Refused is for a server that refused token (an authentication failure
// with a token from this Source): it drops token and returns a freshly
// refreshed one. If the Source has already replaced token, it returns the
// current token without asking the provider. Callers retry a refused login
// once with the token returned, and report a second refusal rather than
// calling Refused again.
func (s *Source) Refused(ctx context.Context, token string) (string, error) {
	if err := s.lock(ctx); err != nil {
		return "", err
	}
	defer s.unlock()
	if s.access != "" && s.access != token {
		return s.access, nil
	}
	s.access, s.renewAt = "", time.Time{}
	s.log.Info("oauth: a server refused the access token; refreshing it")
	if err := s.refreshLocked(ctx); err != nil {
		return "", err
	}
	return s.access, nil
}

// Check refreshes the access token now, to prove the stored refresh token
// still works (for a health check). It returns nil or the refresh error.
func (s *Source) Check(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	return s.refreshLocked(ctx)
}

func (s *Source) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("get an access token: %w", context.Cause(ctx))
	}
}

func (s *Source) unlock() { <-s.sem }

// signInNeeded wraps ErrSignInNeeded with the reason and where the token is.
type signInNeeded struct {
	reason string
	cause  error // nil, or the provider's refusal
}

func (e *signInNeeded) Error() string {
	msg := "sign-in needed: " + e.reason
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// SignInNeeded reports true: callers that do not import this package (such
// as mailconn) recognise the state by this method.
func (e *signInNeeded) SignInNeeded() bool { return true }

func (e *signInNeeded) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrSignInNeeded, e.cause}
	}
	return []error{ErrSignInNeeded}
}

func (s *Source) refreshLocked(ctx context.Context) error {
	rt, err := s.store.Load()
	if errors.Is(err, ErrNoToken) {
		return &signInNeeded{reason: "no refresh token in " + s.store.String()}
	}
	if err != nil {
		return fmt.Errorf("refresh the access token: %w", err)
	}
	if rt == s.refused {
		// Asking again would be refused again (no retry storm); a new
		// sign-in stores a different token and ends this state.
		return &signInNeeded{reason: "the provider refused the refresh token in " + s.store.String()}
	}
	tctx, cancel := s.app.tokenCtx(ctx)
	defer cancel()
	asked := s.now()
	tok, err := s.app.cfg.TokenSource(tctx, &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		err = cleanError(tctx, err)
		if errors.Is(err, ErrSignInNeeded) {
			s.refused = rt
			s.access, s.renewAt = "", time.Time{}
			s.log.Warn("oauth: the provider refused the refresh token; sign-in needed", "err", err, "where", s.store.String())
			return &signInNeeded{reason: "the provider refused the refresh token in " + s.store.String(), cause: err}
		}
		return fmt.Errorf("refresh the access token: %w", err)
	}
	s.access = tok.AccessToken
	s.renewAt = time.Time{}
	if tok.ExpiresIn > 0 {
		life := time.Duration(tok.ExpiresIn) * time.Second
		s.renewAt = asked.Add(life - min(s.early, life/2))
	}
	s.log.Debug("oauth: access token refreshed", "renew_at", s.renewAt)
	if tok.RefreshToken != "" && tok.RefreshToken != rt {
		if err := s.store.Save(tok.RefreshToken); err != nil {
			// The access token works now; the next refresh may need a
			// new sign-in if the provider dropped the old refresh token.
			s.log.Error("oauth: could not keep the rotated refresh token", "err", err, "where", s.store.String())
		}
	}
	return nil
}
