package oauth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/internal/oauthtest"
	"ipsync/oauth"
)

// handlerTransport serves requests with an http.Handler in the calling
// goroutine: no sockets, so a synctest bubble's clock can advance while the
// device flow waits between polls.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// lines collects what the flow prints.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var userCodeRE = regexp.MustCompile(`enter the code ([A-Z0-9]+)`)

// deviceRun starts SignInDevice in the bubble against an in-memory
// oauthtest server and returns the server, the user code and the result.
func deviceRun(t *testing.T, opts oauthtest.Options) (*oauthtest.Server, string, oauth.FileStore, <-chan error, *lines) {
	t.Helper()
	srv := oauthtest.New(opts)
	srv.URL = "http://127.0.0.1:1" // never dialled: the transport serves the handler
	app, err := oauth.NewApp(oauth.Settings{
		Provider: oauth.Custom, ClientID: srv.ClientID(), Scopes: []string{"mail"},
		AuthURL: srv.AuthURL(), TokenURL: srv.TokenURL(), DeviceURL: srv.DeviceURL(),
	}, oauth.AppOptions{HTTPClient: &http.Client{Transport: handlerTransport{srv.Handler()}}})
	if err != nil {
		t.Fatal(err)
	}
	store := oauth.FileStore{Path: filepath.Join(t.TempDir(), "token")}
	out := &lines{}
	done := make(chan error, 1)
	go func() { done <- app.SignInDevice(t.Context(), store, oauth.DeviceOptions{Out: out}) }()
	synctest.Wait()
	m := userCodeRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("SignInDevice printed %q, want a URL and a code", out.String())
	}
	if !strings.Contains(out.String(), srv.URL+"/device/verify") {
		t.Errorf("SignInDevice printed %q, want the verification URL", out.String())
	}
	return srv, m[1], store, done, out
}

func TestSignInDeviceStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, code, store, done, _ := deviceRun(t, oauthtest.Options{DeviceInterval: 5 * time.Second})
		step := func(d time.Duration, want oauthtest.Stats) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			got := srv.Stats()
			if got.DevicePolls != want.DevicePolls || got.DevicePending != want.DevicePending || got.DeviceSlowDown != want.DeviceSlowDown {
				t.Fatalf("after %v: polls/pending/slow_down = %d/%d/%d, want %d/%d/%d", d,
					got.DevicePolls, got.DevicePending, got.DeviceSlowDown, want.DevicePolls, want.DevicePending, want.DeviceSlowDown)
			}
		}
		step(5*time.Second, oauthtest.Stats{DevicePolls: 1, DevicePending: 1})
		// The provider gets busy and wants 8 s between polls.
		if !srv.SlowDownDevice(code, 8*time.Second) {
			t.Fatal("SlowDownDevice() = false")
		}
		step(5*time.Second, oauthtest.Stats{DevicePolls: 2, DevicePending: 1, DeviceSlowDown: 1})
		// The client now waits 5+5 s (RFC 8628 §3.5): no poll at +5 s.
		step(5*time.Second, oauthtest.Stats{DevicePolls: 2, DevicePending: 1, DeviceSlowDown: 1})
		step(5*time.Second, oauthtest.Stats{DevicePolls: 3, DevicePending: 2, DeviceSlowDown: 1})
		if !srv.ApproveDevice(code) {
			t.Fatal("ApproveDevice() = false")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("SignInDevice() = %v", err)
			}
		default:
			t.Fatal("SignInDevice() still running after approval and a poll")
		}
		if rt, err := store.Load(); err != nil || rt == "" {
			t.Errorf("store.Load() = %v, want the refresh token", err)
		}
	})
}

func TestSignInDeviceDenied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, code, _, done, _ := deviceRun(t, oauthtest.Options{})
		srv.DenyDevice(code)
		if err := <-done; !errors.Is(err, oauth.ErrAccessDenied) {
			t.Fatalf("SignInDevice() = %v, want ErrAccessDenied", err)
		}
	})
}

func TestSignInDeviceExpired(t *testing.T) {
	t.Run("server-says-expired_token", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv, code, _, done, _ := deviceRun(t, oauthtest.Options{})
			srv.ExpireDevice(code)
			err := <-done
			if !errors.Is(err, oauth.ErrDeviceCodeExpired) || !strings.Contains(err.Error(), "expired_token") {
				t.Fatalf("SignInDevice() = %v, want ErrDeviceCodeExpired from expired_token", err)
			}
		})
	})
	t.Run("code-lifetime-ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			_, _, _, done, _ := deviceRun(t, oauthtest.Options{DeviceCodeTTL: 2 * time.Minute})
			err := <-done
			if !errors.Is(err, oauth.ErrDeviceCodeExpired) {
				t.Fatalf("SignInDevice() = %v, want ErrDeviceCodeExpired", err)
			}
			if took := time.Since(start); took != 2*time.Minute {
				t.Errorf("SignInDevice() gave up after %v, want 2m0s (the code's lifetime)", took)
			}
		})
	})
}

func TestSignInDeviceUnavailable(t *testing.T) {
	t.Parallel()
	app, err := oauth.NewApp(oauth.Settings{Provider: oauth.Google, ClientID: "x.apps.googleusercontent.com", ClientSecret: "s"}, oauth.AppOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = app.SignInDevice(t.Context(), oauth.FileStore{Path: filepath.Join(t.TempDir(), "t")}, oauth.DeviceOptions{})
	if !errors.Is(err, oauth.ErrNoDeviceFlow) || !strings.Contains(err.Error(), "browser") {
		t.Fatalf("SignInDevice() for google = %v, want ErrNoDeviceFlow pointing to the browser flow", err)
	}
}
