package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/zalando/go-keyring"

	"ipsync/config"
	"ipsync/internal/oauthtest"
	"ipsync/oauth"
)

// loginWait bounds each network step of the login tests.
const loginWait = 10 * time.Second

// loginConfig writes a config for a custom provider at idp (mail.auth:
// oauth2) and returns its path; the state directory is in the test's temp
// dir.
func loginConfig(t *testing.T, idp *oauthtest.Server, extra string) string {
	t.Helper()
	dir := t.TempDir()
	y := fmt.Sprintf(`name: office
state_dir: %s
mail:
  address: %s
  auth: oauth2
  oauth2:
    provider: custom
    client_id: %s
    scopes: [mail]
    auth_url: %s
    token_url: %s
    device_url: %s
  smtp:
    host: smtp.example.com
  imap:
    host: imap.example.com
%s`, filepath.Join(dir, "state"), idp.User(), idp.ClientID(), idp.AuthURL(), idp.TokenURL(), idp.DeviceURL(), extra)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noKeyring makes oauth.OpenStore choose the token file: no session bus.
func noKeyring(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
}

// fakeBrowser replaces openBrowser with an HTTP client that follows the
// provider's redirect back to ipsync, as a browser would, and counts the
// pages it opened.
func fakeBrowser(t *testing.T) *int {
	t.Helper()
	opened := new(int)
	old := openBrowser
	t.Cleanup(func() { openBrowser = old })
	openBrowser = func(u string) error {
		*opened++
		resp, err := (&http.Client{Timeout: loginWait}).Get(u)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	return opened
}

func startIDP(t *testing.T) *oauthtest.Server {
	t.Helper()
	idp, err := oauthtest.Start(t.Context(), oauthtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	return idp
}

// checkLoginToken checks that the refresh token is in file with mode 0600,
// that it works (one refresh at the provider), and that no token appears in
// texts.
func checkLoginToken(t *testing.T, idp *oauthtest.Server, cfgPath string, texts ...string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	file, err := cfg.OAuth2TokenFile()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %04o, want 0600", fi.Mode().Perm())
	}
	rt, err := oauth.FileStore{Path: file}.Load()
	if err != nil {
		t.Fatal(err)
	}
	auth, src, err := mailAuth(cfg, slog.New(slog.DiscardHandler))
	if err != nil || src == nil || !auth.IsToken() || auth.User() != idp.User() {
		t.Fatalf("mailAuth() = %v, %v, %v; want a token Auth for %s", auth, src, err, idp.User())
	}
	before := idp.Stats().Refreshes
	ctx, cancel := context.WithTimeout(t.Context(), loginWait)
	defer cancel()
	access, err := src.Token(ctx)
	if err != nil {
		t.Fatalf("Source.Token() after login = %v", err)
	}
	if got := idp.Stats().Refreshes; got != before+1 {
		t.Errorf("refreshes = %d, want %d", got, before+1)
	}
	if _, err := idp.CheckToken(access); err != nil {
		t.Errorf("the provider refuses the access token got with the stored refresh token: %v", err)
	}
	for _, txt := range texts {
		for _, tok := range []string{rt, access} {
			if strings.Contains(txt, tok) {
				t.Errorf("a token appears in the output: %q", txt)
			}
		}
	}
}

func TestLoginBrowser(t *testing.T) {
	noKeyring(t)
	for _, tt := range []struct {
		name    string
		args    []string
		display string
	}{
		{"--browser", []string{"--browser"}, ""},
		{"display chooses the browser", nil, ":0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DISPLAY", tt.display)
			t.Setenv("WAYLAND_DISPLAY", "")
			idp := startIDP(t)
			path := loginConfig(t, idp, "")
			opened := fakeBrowser(t)
			code, out, errOut := runCLI(t, append([]string{"login", "--config", path}, tt.args...)...)
			if code != exitOK {
				t.Fatalf("ipsync login = %d, stdout %q, stderr %q", code, out, errOut)
			}
			if *opened != 1 {
				t.Errorf("browser opened %d times, want 1", *opened)
			}
			for _, want := range []string{"open this page in a browser", idp.AuthURL() + "?", "code_challenge_method=S256", "Signed in.", "(mode 0600)", "No OS keyring", "ipsync check --config " + path} {
				if !strings.Contains(out, want) {
					t.Errorf("stdout %q lacks %q", out, want)
				}
			}
			if st := idp.Stats(); st.Authorizations != 1 || st.CodeExchanges != 1 {
				t.Errorf("provider stats = %+v, want 1 authorization and 1 code exchange", st)
			}
			checkLoginToken(t, idp, path, out, errOut)
		})
	}
}

func TestLoginBrowserDeclined(t *testing.T) {
	noKeyring(t)
	idp := startIDP(t)
	idp.SetConsent(false)
	path := loginConfig(t, idp, "")
	fakeBrowser(t)
	code, out, errOut := runCLI(t, "login", "--config", path, "--browser")
	if code != exitNoResult || !strings.Contains(errOut, "declined") {
		t.Errorf("ipsync login, declined = %d, stderr %q; want %d and a message that the sign-in was declined", code, errOut, exitNoResult)
	}
	if strings.Contains(out, "Signed in") {
		t.Errorf("stdout %q claims a sign-in", out)
	}
}

func TestLoginKeyring(t *testing.T) {
	keyring.MockInit()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus") // read only as "a bus exists"; the mock answers
	idp := startIDP(t)
	path := loginConfig(t, idp, "")
	fakeBrowser(t)
	code, out, errOut := runCLI(t, "login", "--config", path, "--port", "0", "--browser")
	if code != exitOK {
		t.Fatalf("ipsync login = %d, stdout %q, stderr %q", code, out, errOut)
	}
	want := fmt.Sprintf(`the OS keyring (service "ipsync", account "%s custom")`, idp.User())
	if !strings.Contains(out, want) || strings.Contains(out, "No OS keyring") {
		t.Errorf("stdout %q, want the keyring named: %s", out, want)
	}
	rt, err := keyring.Get(oauth.KeyringService, idp.User()+" custom")
	if err != nil || rt == "" || strings.Contains(out+errOut, rt) {
		t.Errorf("keyring entry = %v (empty %v, printed %v)", err, rt == "", strings.Contains(out+errOut, rt))
	}
}

// lockedBuffer is an io.Writer safe for the flow's goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// handlerTransport serves requests with an http.Handler, without sockets,
// so that a synctest bubble's clock runs while the device flow waits.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

var userCodeRE = regexp.MustCompile(`enter the code ([A-Z0-9]+)`)

// TestLoginDevice: without a display, login chooses the device flow,
// prints the URL and code, and keeps the token once the user approves.
func TestLoginDevice(t *testing.T) {
	noKeyring(t)
	synctest.Test(t, func(t *testing.T) {
		idp := oauthtest.New(oauthtest.Options{DeviceInterval: 5 * time.Second})
		idp.URL = "http://127.0.0.1:1" // never dialled: the transport serves the handler
		path := loginConfig(t, idp, "")
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		out := &lockedBuffer{}
		noDisplay := func(string) string { return "" }
		done := make(chan error, 1)
		go func() {
			_, err := signIn(t.Context(), cfg, slog.New(slog.DiscardHandler), out, signInOptions{
				getenv:     noDisplay,
				httpClient: &http.Client{Transport: handlerTransport{idp.Handler()}},
			})
			done <- err
		}()
		synctest.Wait()
		m := userCodeRE.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("login printed %q, want a URL and a code", out.String())
		}
		time.Sleep(12 * time.Second) // fake time: two polls answered pending
		synctest.Wait()
		if !idp.ApproveDevice(m[1]) {
			t.Fatal("ApproveDevice() = false")
		}
		if err := <-done; err != nil {
			t.Fatalf("signIn(device) = %v", err)
		}
		if st := idp.Stats(); st.DevicePending < 2 || st.DeviceSlowDown != 0 {
			t.Errorf("provider stats = %+v, want at least 2 pending polls and no slow_down", st)
		}
		if !strings.Contains(out.String(), idp.URL+"/device/verify") || !strings.Contains(out.String(), "Signed in.") {
			t.Errorf("login printed %q", out.String())
		}
		file, _ := cfg.OAuth2TokenFile()
		rt, err := oauth.FileStore{Path: file}.Load()
		if err != nil || rt == "" {
			t.Fatalf("token file after device login: %v", err)
		}
		if strings.Contains(out.String(), rt) {
			t.Error("the refresh token was printed")
		}
	})
}

func TestLoginUsage(t *testing.T) {
	noKeyring(t)
	idp := startIDP(t)
	custom := loginConfig(t, idp, "")
	dir := t.TempDir()
	password := filepath.Join(dir, "password.yaml")
	if err := os.WriteFile(password, []byte("name: office\nmail:\n  address: a@example.com\n  password: env:X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	google := filepath.Join(dir, "google.yaml")
	if err := os.WriteFile(google, []byte("name: office\nstate_dir: "+dir+"\nmail:\n  address: a@example.com\n  auth: oauth2\n  oauth2:\n    provider: google\n    client_id: 1-a.apps.googleusercontent.com\n    client_secret: env:IPSYNC_TEST_GOOGLE_SECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IPSYNC_TEST_GOOGLE_SECRET", "GOCSPX-not-a-real-secret")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: office\nmail:\n  address: a@example.com\n  auth: oauth2\n  oauth2:\n    provider: microsoft\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"password config", []string{"--config", password}, exitUsage, "mail.auth is password, so there is nothing to sign in to"},
		{"both flows", []string{"--config", custom, "--device", "--browser"}, exitUsage, "choose --device or --browser"},
		{"port with device", []string{"--config", custom, "--device", "--port", "8765"}, exitUsage, "--port is for the browser flow"},
		{"bad port", []string{"--config", custom, "--port", "70000"}, exitUsage, "out of range"},
		{"argument", []string{"--config", custom, "now"}, exitUsage, "takes no arguments"},
		{"google device", []string{"--config", google, "--device"}, exitUsage, "does not offer the device-code flow"},
		{"no client id", []string{"--config", bad}, exitUsage, "mail.oauth2.client_id: is empty"},
		{"help", []string{"--help"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"login"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.err) {
				t.Errorf("ipsync login %q = %d, stderr %q; want %d with %q", tt.args, code, errOut, tt.code, tt.err)
			}
			if strings.Contains(out+errOut, "GOCSPX") {
				t.Errorf("the client secret was printed: %q %q", out, errOut)
			}
		})
	}
}

func TestBrowserAtHand(t *testing.T) {
	tests := []struct {
		goos string
		env  map[string]string
		want bool
	}{
		{"linux", nil, false},
		{"linux", map[string]string{"DISPLAY": ":0"}, true},
		{"linux", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, true},
		{"linux", map[string]string{"SSH_CONNECTION": "10.0.0.2 5555 10.0.0.1 22", "DISPLAY": "localhost:10.0"}, true}, // X forwarding
		{"freebsd", nil, false},
		{"windows", nil, true},
		{"darwin", nil, true},
		{"darwin", map[string]string{"SSH_TTY": "/dev/ttys001"}, false},
		{"windows", map[string]string{"SSH_CONNECTION": "10.0.0.2 5555 10.0.0.1 22"}, false},
	}
	for _, tt := range tests {
		got := browserAtHand(tt.goos, func(k string) string { return tt.env[k] })
		if got != tt.want {
			t.Errorf("browserAtHand(%s, %v) = %v, want %v", tt.goos, tt.env, got, tt.want)
		}
	}
}

// TestTraySignIn: the tray's Sign in… runs the browser flow once at a time
// and reports the outcome; the URL goes to the log, no token does.
func TestTraySignIn(t *testing.T) {
	noKeyring(t)
	idp := startIDP(t)
	path := loginConfig(t, idp, "")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	old := openBrowser
	t.Cleanup(func() { openBrowser = old })
	openBrowser = func(u string) error {
		started <- struct{}{}
		<-release
		resp, err := (&http.Client{Timeout: loginWait}).Get(u)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	results := make(chan error, 4)
	click := traySignIn(t.Context(), cfg, log, func(err error) { results <- err })

	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(loginWait):
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	click()
	wait("the browser to open", started)
	click() // while the first runs: ignored
	close(release)
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("tray sign-in = %v", err)
		}
	case <-time.After(loginWait):
		t.Fatal("tray sign-in did not finish")
	}
	if st := idp.Stats(); st.Authorizations != 1 || st.CodeExchanges != 1 {
		t.Errorf("provider stats = %+v, want 1 authorization: the second click is ignored", st)
	}
	// Once it has finished, a click signs in again.
	click()
	wait("the second sign-in", started)
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("second tray sign-in = %v", err)
		}
	case <-time.After(loginWait):
		t.Fatal("second tray sign-in did not finish")
	}
	if len(results) != 0 || len(started) != 0 {
		t.Errorf("%d more results, %d more browser opens; want none", len(results), len(started))
	}
	if !strings.Contains(logs.String(), "sign-in already in progress") || !strings.Contains(logs.String(), idp.AuthURL()) {
		t.Errorf("log %q lacks the ignored click or the URL", logs.String())
	}
	checkLoginToken(t, idp, path, logs.String())
}

// TestLoginTokenNotKept: a refresh token that cannot be stored is this
// computer's failure (exit 4), named as such.
func TestLoginTokenNotKept(t *testing.T) {
	noKeyring(t)
	idp := startIDP(t)
	path := loginConfig(t, idp, "")
	blocker := filepath.Join(filepath.Dir(path), "state")
	if err := os.WriteFile(blocker, []byte("a file where the state directory should be\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fakeBrowser(t)
	code, out, errOut := runCLI(t, "login", "--config", path, "--browser")
	if code != exitInternal || !strings.Contains(errOut, "keep the refresh token") || strings.Contains(out, "Signed in.") {
		t.Errorf("ipsync login with an unwritable state dir = %d, stdout %q, stderr %q; want %d naming the token store", code, out, errOut, exitInternal)
	}
}
