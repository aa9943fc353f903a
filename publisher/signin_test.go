package publisher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// signInSource is a token source whose sign-in the provider no longer
// accepts, counting how often it is asked.
type signInSource struct{ asked atomic.Int64 }

type signInErr struct{}

func (signInErr) Error() string      { return "sign-in needed: no refresh token in the test store" }
func (signInErr) SignInNeeded() bool { return true }

func (s *signInSource) Token(context.Context) (string, error) {
	s.asked.Add(1)
	return "", signInErr{}
}

func (s *signInSource) Refused(context.Context, string) (string, error) {
	s.asked.Add(1)
	return "", signInErr{}
}

// TestSignInNeededStopsLogins: with an OAuth2 sign-in the provider no
// longer accepts, the publishing loop never contacts the SMTP server, asks
// the token source only every signInRecheck (no retry storm, although the
// address changes at every check), shows sign-in needed in its Status and
// the tray's health, and PublishNow asks again at once.
func TestSignInNeededStopsLogins(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSNone)
	ep := endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSNone)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	src := &signInSource{}
	m, err := NewSMTPMailer(SMTPOptions{Endpoint: ep, Auth: mailconn.TokenAuthSource(alice, src), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, Options{
			Name:   "srv1",
			From:   alice,
			Mailer: m,
			Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
			Finder: &changingFinder{},
			Store:  FileStore{Path: filepath.Join(dir, "state.json")},
		})
		defer l.stop()
		synctest.Wait()
		st := l.p.Status()
		if !st.SignInNeeded || !errors.Is(st.LastError, ErrSignInNeeded) || st.PasswordRefused {
			t.Fatalf("Status() = %+v, want sign-in needed (not a refused password)", st)
		}
		h := st.Health()
		if !h.SignInNeeded || h.ErrKind != "signin" || !strings.Contains(h.Err, "ipsync login") {
			t.Errorf("Health() = %+v, want sign-in needed naming ipsync login", h)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		asked := src.asked.Load()
		t.Logf("token source asked %d times in an hour; SMTP messages %d", asked, srv.Stats().SMTPMessages)
		if asked > int64(time.Hour/signInRecheck)+1 {
			t.Errorf("token source asked %d times in an hour, want at most %d (every %v)", asked, time.Hour/signInRecheck+1, signInRecheck)
		}
		if n := srv.Stats().SMTPMessages; n != 0 {
			t.Errorf("SMTP messages = %d, want none", n)
		}
		l.p.PublishNow()
		synctest.Wait()
		if n := src.asked.Load(); n != asked+1 {
			t.Errorf("token source asked %d times after PublishNow, want %d: Publish now asks at once", n, asked+1)
		}
	})
}

// TestTokenRefusedWording: a token refused even after a refresh is shown
// as such, naming mail.oauth2, not mail.password.
func TestTokenRefusedWording(t *testing.T) {
	err := fmt.Errorf("send mail via smtp.example.com:587: %w: %w", ErrRejected, fmt.Errorf("smtp authenticate XOAUTH2 as a@example.com: %w", mailconn.ErrTokenRefused))
	if !errors.Is(err, ErrAuthRefused) {
		t.Fatalf("%v does not match ErrAuthRefused: the login backoff would not apply", err)
	}
	h := Status{PasswordRefused: true, PasswordRefusedBy: "smtp", LastError: err, LastErrorSending: true}.Health()
	if !strings.Contains(h.Err, "OAuth2 access token refused") || !strings.Contains(h.Err, "mail.oauth2") || strings.Contains(h.Err, "check mail.password") {
		t.Errorf("Health().Err = %q, want the token wording naming mail.oauth2", h.Err)
	}
}
