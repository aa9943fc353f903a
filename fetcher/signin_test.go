package fetcher

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/loopmail"
	"ipsync/mailconn"
)

// testSource is an OAuth2 token source for the tests: while needed is set
// it says the user must sign in again; otherwise it hands out testToken.
type testSource struct {
	needed atomic.Bool
	asked  atomic.Int64
}

const testToken = "test-access-token-7f3a"

type signInErr struct{}

func (signInErr) Error() string      { return "sign-in needed: the provider refused the refresh token" }
func (signInErr) SignInNeeded() bool { return true }

func (s *testSource) Token(context.Context) (string, error) {
	s.asked.Add(1)
	if s.needed.Load() {
		return "", signInErr{}
	}
	return testToken, nil
}

func (s *testSource) Refused(ctx context.Context, _ string) (string, error) {
	return s.Token(ctx)
}

// TestSignInNeededStopsLogins: while the OAuth2 sign-in is no longer
// accepted, Run reports SignInNeeded (the tray's "Sign in…"), never
// contacts the mail server (loopmail sees no command), asks the token
// source only every signInRecheck, and after a new sign-in reads the
// mailbox at Fetch now.
func TestSignInNeededStopsLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{CheckToken: func(_ context.Context, tok string) (string, time.Time, error) {
		if tok != testToken {
			return "", time.Time{}, context.Canceled
		}
		return testUser, time.Time{}, nil
	}})
	t0 := time.Now().Truncate(time.Second)
	clk := newFakeClock(t0)
	src := &testSource{}
	src.needed.Store(true)
	o, logs := e.options()
	o.Auth = mailconn.TokenAuthSource(testUser, src)
	o.Clock, o.Rand = clk, seededRand(7)
	f := e.newFetcher(o)
	ups := newUpdates()
	runFetcher(t, f, ups)
	u := ups.waitFor(t, "sign-in needed", func(u Update) bool { return u.SignInNeeded })
	h := u.Health(o.PollEvery)
	if u.State != Error || !h.SignInNeeded || h.ErrKind != "signin" || !strings.Contains(h.Err, "ipsync login") {
		t.Errorf("Update = state %v err %v, health %+v; want Error, sign-in needed naming ipsync login", u.State, u.Err, h)
	}
	for {
		clk.WaitTimers(t, 1)
		if d := clk.nextAt().Sub(clk.Now()); d != signInRecheck {
			t.Fatalf("next look in %v, want %v", d, signInRecheck)
		}
		if clk.nextAt().Sub(t0) > time.Hour {
			break
		}
		clk.AdvanceToNext()
		ups.waitFor(t, "sign-in still needed", func(u Update) bool { return u.SignInNeeded })
	}
	asked := src.asked.Load()
	st := e.srv.Stats()
	t.Logf("in the first hour: token source asked %d times, IMAP commands %d", asked, st.IMAPCommands)
	// At the start, then every signInRecheck up to and including 1h.
	if want := int64(time.Hour/signInRecheck) + 1; asked != want {
		t.Errorf("token source asked %d times in an hour, want %d", asked, want)
	}
	if st.IMAPCommands != 0 || st.IMAPConnsMax != 0 {
		t.Errorf("mail server stats = %+v, want no connection while sign-in is needed", st)
	}
	if n := len(logs.Lines("sign-in needed")); n != 1 {
		t.Errorf("%d log lines say sign-in needed, want 1 (on entering the state)", n)
	}

	// The user signs in again; Fetch now reads at once.
	src.needed.Store(false)
	f.FetchNow()
	u = ups.waitFor(t, "read after the new sign-in", func(u Update) bool { return !u.Fetching && !u.LastCheck.IsZero() })
	if u.SignInNeeded || u.State == Error {
		t.Errorf("Update after the new sign-in = state %v err %v sign-in %v", u.State, u.Err, u.SignInNeeded)
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("the log shows the access token")
	}
}

// TestTokenRefusedHealth: a token refused even after a refresh is shown
// as such, naming mail.oauth2, not mail.password.
func TestTokenRefusedHealth(t *testing.T) {
	err := fmt.Errorf("sign in: imap authenticate XOAUTH2 as a@example.com: %w", mailconn.ErrTokenRefused)
	h := Update{State: AuthRefused, Err: err}.Health(time.Minute)
	if h.State != AuthRefused || !strings.Contains(h.Err, "OAuth2 access token refused") || !strings.Contains(h.Err, "mail.oauth2") || strings.Contains(h.Err, "check mail.password") {
		t.Errorf("Health() = %+v, want the token wording naming mail.oauth2", h)
	}
}
