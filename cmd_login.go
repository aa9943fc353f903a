package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"ipsync/config"
	"ipsync/oauth"
	"ipsync/tray"
)

const loginSynopsis = `ipsync login [--config F] [--device | --browser] [--port N]

Signs in to the mail provider named in mail.oauth2 (mail.auth: oauth2) and
keeps the refresh token, so that the server and the client can sign in to
SMTP and IMAP without a password. Run it once per machine, and again when
ipsync says "sign-in needed" (the token was revoked or expired).

--browser opens the provider's sign-in page in the browser (authorization
code with PKCE; the page redirects back to ipsync listening on 127.0.0.1 —
the address reads localhost for Microsoft). The URL is
printed too, for when no browser opens.
--device prints a URL and a code to enter on any device with a browser (the
device-code flow): for a server reached over SSH. Google offers no device
flow for mail: use --browser with --port and an SSH tunnel (docs/oauth2.md).

Without either, ipsync uses the browser where one is at hand, and the device
flow otherwise: on Linux and BSD when neither DISPLAY nor WAYLAND_DISPLAY is
set, and on any system in an SSH session (SSH_CONNECTION or SSH_TTY) without
a display.

The refresh token goes to the OS keyring (Windows Credential Manager, macOS
Keychain, the Secret Service on Linux), or where there is none to a file
only its owner can read (mode 0600) in the state directory; login says which.
No token is ever printed.`

// loginTimeout bounds the wait for the user in the browser flow; the device
// flow ends when its code expires (15 minutes at Microsoft), or at this.
const loginTimeout = 15 * time.Minute

// errLoginTimeout is the cause when the user does not finish in time.
var errLoginTimeout = errors.New("the sign-in was not completed within 15 minutes; run ipsync login again")

// openBrowser opens a URL in the user's browser without waiting for it.
// Tests replace it with an HTTP client that follows the redirect.
var openBrowser = tray.Open

func runLogin(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("login", loginSynopsis, flagConfig)
	device := fs.Bool("device", false, "sign in with a code on another device (for SSH sessions)")
	browser := fs.Bool("browser", false, "sign in through the browser even without a display")
	port := fs.Int("port", 0, "receive the browser's redirect on this loopback `port` (0: any free one), e.g. to forward it over SSH")
	checkFlags := func() error {
		switch {
		case *device && *browser:
			return usageErr("login: choose --device or --browser, not both")
		case *port < 0 || *port > 65535:
			return usageErr("login: --port %d is out of range 0-65535", *port)
		case *port != 0 && *device:
			return usageErr("login: --port is for the browser flow; remove it or --device")
		}
		return nil
	}
	log, cfg, err := e.start(fs, args, startOpts{checkFlags: checkFlags})
	if err != nil {
		return err
	}
	mode := loginAuto
	switch {
	case *device:
		mode = loginDevice
	case *browser || *port != 0:
		mode = loginBrowser
	}
	_, err = signIn(ctx, cfg, log, e.stdout, signInOptions{mode: mode, port: *port, getenv: os.Getenv})
	return err
}

// loginMode chooses the sign-in flow.
type loginMode int

const (
	loginAuto    loginMode = iota // the browser if one is at hand, else the device flow
	loginBrowser                  // authorization code with PKCE and a loopback redirect
	loginDevice                   // device code
)

// signInOptions tune signIn.
type signInOptions struct {
	mode loginMode
	// port is the loopback port of the browser flow's redirect; 0 = any.
	port int
	// getenv reads the environment for loginAuto; nil = os.Getenv.
	getenv func(string) string
	// httpClient talks to the provider; nil = package oauth's default.
	httpClient *http.Client
}

// signIn runs one OAuth2 sign-in for cfg and keeps the refresh token. out
// receives the instructions for the user (URL, code) and where the token
// went; log the diagnostics; neither ever gets a token. It is the `login`
// verb's work, and what the tray's "Sign in…" runs (with mode loginBrowser
// and out going to the log). It returns the store the token is in. Errors
// carry main's exit codes.
func signIn(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer, o signInOptions) (oauth.Store, error) {
	if !cfg.IsOAuth2() {
		return nil, usageErr("%s: mail.auth is %s, so there is nothing to sign in to; set mail.auth: oauth2 and mail.oauth2 (docs/oauth2.md), or keep using mail.password", cfg.Path, cfg.Mail.Auth)
	}
	app, store, why, err := openOAuth(cfg, log, o.httpClient)
	if err != nil {
		return nil, err
	}
	getenv := o.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	hasDevice := deviceFlowOffered(cfg)
	mode := o.mode
	if mode == loginAuto {
		mode = loginBrowser
		if !browserAtHand(runtime.GOOS, getenv) {
			if hasDevice {
				mode = loginDevice
			} else {
				fmt.Fprintf(out, "No browser seems to be at hand here (no display), and %s offers no device-code sign-in for mail.\n"+
					"Open the URL below in a browser on this machine, or from another computer with an SSH tunnel:\n"+
					"run ipsync login --port 8765 here and ssh -L 8765:127.0.0.1:8765 this-server there, then open the URL there.\n\n", cfg.Mail.OAuth2.Provider)
			}
		}
	}
	if mode == loginDevice && !hasDevice {
		return nil, usageErr("%s: mail.oauth2: %v (provider %s); run ipsync login --browser (with --port and an SSH tunnel on a remote machine, see docs/oauth2.md)", cfg.Path, oauth.ErrNoDeviceFlow, cfg.Mail.OAuth2.Provider)
	}

	store = keepStore{store}
	where := store.String()
	fmt.Fprintf(out, "Signing in %s at %s. The refresh token will be kept in %s.\n", cfg.Mail.Username, cfg.Mail.OAuth2.Provider, where)
	if why != "" {
		fmt.Fprintf(out, "(No OS keyring: %s.)\n", why)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, loginTimeout, errLoginTimeout)
	defer cancel()
	if mode == loginDevice {
		err = app.SignInDevice(ctx, store, oauth.DeviceOptions{Out: out})
	} else {
		err = app.SignInBrowser(ctx, store, oauth.BrowserOptions{Open: openBrowser, Out: out, Port: o.port})
	}
	if err != nil {
		return nil, loginError(cfg, err)
	}
	fmt.Fprintf(out, "Signed in. The refresh token is kept in %s.\n", where)
	fmt.Fprintf(out, "Next: ipsync check%s tries it on the mail servers.\n", configFlag(cfg))
	return store, nil
}

// keepStore marks a failure to save the refresh token as this computer's
// (exit code 4), not the provider's.
type keepStore struct{ oauth.Store }

func (k keepStore) Save(refreshToken string) error {
	if err := k.Store.Save(refreshToken); err != nil {
		return withCode(exitInternal, err)
	}
	return nil
}

// loginError gives a failed sign-in its exit code and a hint: a refusal by
// the user or an expired code is "no result" (1), a provider that rejects
// the app's settings is a config error (2), a token that could not be kept
// is this computer's failure (4, marked by keepStore), anything else is the
// network's or the provider's (3).
func loginError(cfg *config.Config, err error) error {
	var pe *oauth.ProviderError
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, oauth.ErrAccessDenied), errors.Is(err, oauth.ErrDeviceCodeExpired), errors.Is(err, errLoginTimeout), errors.Is(err, context.Canceled):
		return withCode(exitNoResult, err)
	case errors.As(err, &pe) && (pe.Code == "invalid_client" || pe.Code == "unauthorized_client" || pe.Code == "invalid_scope" || pe.Code == "invalid_request"):
		return withCode(exitUsage, fmt.Errorf("%w; check mail.oauth2 in %s against the app registration (client_id, client_secret, tenant, scopes; docs/oauth2.md)", err, cfg.Path))
	}
	return withCode(exitNetwork, err)
}

// configFlag is " --config PATH" for messages, or "" for the default path.
func configFlag(cfg *config.Config) string {
	if def, err := defaultConfigPath(); err == nil && def == cfg.Path {
		return ""
	}
	return " --config " + cfg.Path
}

// browserAtHand reports whether a browser can be opened for the user: on
// Linux and the BSDs only with a graphical session (DISPLAY or
// WAYLAND_DISPLAY); elsewhere unless in an SSH session without a display.
func browserAtHand(goos string, getenv func(string) string) bool {
	display := getenv("DISPLAY") != "" || getenv("WAYLAND_DISPLAY") != ""
	if display {
		return true
	}
	if getenv("SSH_CONNECTION") != "" || getenv("SSH_TTY") != "" {
		return false
	}
	return goos == "windows" || goos == "darwin"
}

// deviceFlowOffered reports whether cfg's provider offers the device flow
// for mail.
func deviceFlowOffered(cfg *config.Config) bool {
	p := oauth.Provider(cfg.Mail.OAuth2.Provider)
	if p == oauth.Custom {
		return cfg.Mail.OAuth2.DeviceURL != ""
	}
	preset, ok := oauth.Presets(p)
	return ok && preset.DeviceFlow
}

// traySignIn returns the tray's Actions.SignIn for cfg: a click starts the
// browser sign-in in its own goroutine, unless one is running, in which case
// the click is ignored. The instructions (the URL, for when no browser
// opens) go to log at info level; done, if not nil, is called with the
// outcome from the flow's goroutine (on success the caller fetches or
// publishes at once, which ends the "sign-in needed" status). Ending ctx
// ends a running flow.
func traySignIn(ctx context.Context, cfg *config.Config, log *slog.Logger, done func(error)) func() {
	var running atomic.Bool
	return func() {
		if !running.CompareAndSwap(false, true) {
			log.Info("sign-in already in progress; finish it in the browser")
			return
		}
		go func() {
			_, err := signIn(ctx, cfg, log, logLines{log}, signInOptions{mode: loginBrowser})
			running.Store(false) // before done: a click from done's reaction counts
			if err != nil {
				log.Warn("sign-in failed", "err", err)
			}
			if done != nil {
				done(err)
			}
		}()
	}
}

// logLines writes each line it is given to a logger at info level.
type logLines struct{ log *slog.Logger }

func (l logLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			l.log.Info("sign-in: " + line)
		}
	}
	return len(p), nil
}
