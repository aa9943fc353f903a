// Package oauth gets and refreshes the OAuth2 tokens ipsync signs in to
// mail servers with (Microsoft 365 / Outlook.com, Google, or any provider
// whose endpoints are given).
//
// Settings names the provider and the user's own registered app; NewApp
// checks them and knows each provider's endpoints, scopes and mail hosts.
// An App signs the user in once, with the authorization-code flow with PKCE
// and a loopback redirect (SignInBrowser) or the device-code flow
// (SignInDevice), and keeps only the refresh token, in a Store: the OS
// keyring, or a 0600 file where there is none. A Source then hands out
// access tokens, refreshing them before they expire and once more after a
// server refuses one. A refresh token the provider no longer accepts
// (revoked, expired) yields ErrSignInNeeded, and the Source asks the
// provider no more until a new sign-in stores a new refresh token.
//
// Tokens are secrets: no error or log line of this package contains one.
// The package uses golang.org/x/oauth2 for the protocol.
package oauth

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/oauth2"
)

// Provider names an OAuth2 provider preset.
type Provider string

// The providers.
const (
	Microsoft Provider = "microsoft" // Microsoft Entra ID: Microsoft 365 and Outlook.com
	Google    Provider = "google"    // Google accounts: Gmail and Google Workspace
	Custom    Provider = "custom"    // any provider; Settings gives the endpoints
)

// DefaultMicrosoftTenant is the tenant used when Settings.Tenant is empty:
// work, school and personal Microsoft accounts can all sign in.
const DefaultMicrosoftTenant = "common"

// MailServer is a provider's mail server for one protocol; TLS is
// "implicit" or "starttls", as in ipsync's config.
type MailServer struct {
	Host string
	Port int
	TLS  string
}

// Preset is what ipsync knows about a provider.
type Preset struct {
	// Scopes are requested when Settings.Scopes is empty.
	Scopes []string
	// IMAP and SMTP are the provider's mail servers; zero for Custom.
	IMAP, SMTP MailServer
	// DeviceFlow reports whether the provider allows the device-code flow
	// with the mail scopes. Google does not: its device flow is limited to
	// a few scopes that exclude https://mail.google.com/.
	DeviceFlow bool
}

// Presets returns the preset of p, and false for an unknown provider.
// For Custom only DeviceFlow (true when Settings.DeviceURL is set) applies.
func Presets(p Provider) (Preset, bool) {
	switch p {
	case Microsoft:
		return Preset{
			Scopes: []string{
				"https://outlook.office.com/IMAP.AccessAsUser.All",
				"https://outlook.office.com/SMTP.Send",
				"offline_access",
			},
			IMAP:       MailServer{Host: "outlook.office365.com", Port: 993, TLS: "implicit"},
			SMTP:       MailServer{Host: "smtp.office365.com", Port: 587, TLS: "starttls"},
			DeviceFlow: true,
		}, true
	case Google:
		return Preset{
			Scopes: []string{"https://mail.google.com/"},
			IMAP:   MailServer{Host: "imap.gmail.com", Port: 993, TLS: "implicit"},
			SMTP:   MailServer{Host: "smtp.gmail.com", Port: 465, TLS: "implicit"},
		}, true
	case Custom:
		return Preset{}, true
	}
	return Preset{}, false
}

// Settings are the OAuth2 part of ipsync's config: the provider and the
// app the user registered with it (no client id or secret ships in ipsync).
type Settings struct {
	// Provider is "microsoft", "google" or "custom". Required.
	Provider Provider
	// ClientID is the registered app's id (Entra ID: "Application (client)
	// ID"; Google: "Client ID"). Required.
	ClientID string
	// ClientSecret is the app's secret, if it has one. Google's "Desktop
	// app" clients have one, which Google requires (it is not confidential
	// there); Entra ID public clients have none. "" sends none.
	ClientSecret string
	// Tenant is the Entra ID tenant (Microsoft only): "common" (the
	// default), "organizations", "consumers", a tenant id or a domain.
	Tenant string
	// Scopes replace the provider's default scopes when not empty.
	Scopes []string
	// AuthURL, TokenURL and DeviceURL are the authorization, token and
	// device authorization endpoints (Custom only; DeviceURL is optional and
	// enables SignInDevice).
	AuthURL, TokenURL, DeviceURL string
}

// FieldError is a problem with one setting. Key is the setting's name as
// in the config, relative to the OAuth2 section (for example "client_id").
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)

// Validate checks the settings and returns every problem found, each a
// *FieldError (joined with errors.Join), or nil. It does no I/O.
func (s Settings) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch s.Provider {
	case Microsoft, Google, Custom:
	case "":
		bad("provider", "is empty; set it to microsoft, google or custom")
	default:
		bad("provider", "%q is not one of microsoft, google, custom", string(s.Provider))
	}
	if strings.TrimSpace(s.ClientID) == "" {
		bad("client_id", "is empty; register an app with your provider (docs/oauth2.md) and put its client id here")
	} else if strings.ContainsAny(s.ClientID, " \t\r\n") {
		bad("client_id", "contains white space; copy the id again without spaces")
	}
	if s.Provider == Google && s.ClientSecret == "" {
		bad("client_secret", "is empty; Google's token endpoint wants the client secret of your Desktop app client (Google Cloud console, Clients; for desktop apps it is not confidential)")
	}
	if s.Tenant != "" && s.Provider != Microsoft {
		bad("tenant", "is only for provider microsoft; remove it")
	} else if s.Tenant != "" && !tenantRE.MatchString(s.Tenant) {
		bad("tenant", "%q is not a tenant id or domain; use common, organizations, consumers, your tenant id or your domain", s.Tenant)
	}
	for i, sc := range s.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			bad(fmt.Sprintf("scopes[%d]", i), "%q is empty or contains white space; give one scope per list item", sc)
		}
	}
	endpoints := []struct {
		key, val string
		need     bool
	}{
		{"auth_url", s.AuthURL, true},
		{"token_url", s.TokenURL, true},
		{"device_url", s.DeviceURL, false},
	}
	for _, e := range endpoints {
		switch {
		case s.Provider != Custom && e.val != "":
			if s.Provider == Microsoft || s.Provider == Google {
				bad(e.key, "is only for provider custom (%s's endpoints are built in); remove it", s.Provider)
			}
		case s.Provider == Custom && e.val == "" && e.need:
			bad(e.key, "is empty; provider custom needs the %s endpoint's https URL", strings.TrimSuffix(e.key, "_url"))
		case s.Provider == Custom && e.val != "":
			if err := checkEndpoint(e.val); err != nil {
				bad(e.key, "%v", err)
			}
		}
	}
	if s.Provider == Custom && len(s.Scopes) == 0 {
		bad("scopes", "is empty; provider custom needs the scopes your mail server wants")
	}
	return errors.Join(errs...)
}

// checkEndpoint accepts https URLs, and http ones on loopback (tests, local
// proxies).
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry a user or password", u.Redacted())
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q must use https (plain http is allowed for loopback hosts only)", raw)
}

// config builds the oauth2 configuration; s must be valid.
func (s Settings) config() (cfg oauth2.Config, authOpts []oauth2.AuthCodeOption, redirectHost string) {
	preset, _ := Presets(s.Provider)
	cfg = oauth2.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret, Scopes: preset.Scopes}
	if len(s.Scopes) > 0 {
		cfg.Scopes = append([]string(nil), s.Scopes...)
	}
	redirectHost = "127.0.0.1"
	switch s.Provider {
	case Microsoft:
		tenant := s.Tenant
		if tenant == "" {
			tenant = DefaultMicrosoftTenant
		}
		base := "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/"
		cfg.Endpoint = oauth2.Endpoint{
			AuthURL:       base + "authorize",
			TokenURL:      base + "token",
			DeviceAuthURL: base + "devicecode",
			AuthStyle:     oauth2.AuthStyleInParams,
		}
		// Entra ID matches "http://localhost" for public clients on any port.
		redirectHost = "localhost"
	case Google:
		cfg.Endpoint = oauth2.Endpoint{
			AuthURL:   "https://accounts.google.com/o/oauth2/v2/auth",
			TokenURL:  "https://oauth2.googleapis.com/token",
			AuthStyle: oauth2.AuthStyleInParams,
		}
		// Without these Google returns a refresh token only on first consent.
		authOpts = []oauth2.AuthCodeOption{oauth2.AccessTypeOffline, oauth2.ApprovalForce}
	case Custom:
		cfg.Endpoint = oauth2.Endpoint{AuthURL: s.AuthURL, TokenURL: s.TokenURL, DeviceAuthURL: s.DeviceURL}
		if s.ClientSecret == "" {
			// A public client sends its id in the form. (Auto-detection
			// would send every refused request twice, and a device-code
			// poll answered authorization_pending is a refusal.)
			cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		}
	}
	return cfg, authOpts, redirectHost
}

// isLoopbackHost reports whether h is localhost or a loopback IP literal.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.Unmap().IsLoopback()
}
