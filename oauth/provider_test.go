package oauth_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"ipsync/oauth"
)

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	custom := oauth.Settings{Provider: oauth.Custom, ClientID: "id", Scopes: []string{"mail"}, AuthURL: "https://idp.example/auth", TokenURL: "https://idp.example/token"}
	tests := []struct {
		name string
		s    oauth.Settings
		want []string // "key: words" each problem must contain; nil = valid
	}{
		{"microsoft", oauth.Settings{Provider: oauth.Microsoft, ClientID: "0a1b"}, nil},
		{"microsoft-tenant", oauth.Settings{Provider: oauth.Microsoft, ClientID: "0a1b", Tenant: "contoso.onmicrosoft.com"}, nil},
		{"google-secret", oauth.Settings{Provider: oauth.Google, ClientID: "x.apps.googleusercontent.com", ClientSecret: "s"}, nil},
		{"custom", custom, nil},
		{"custom-loopback-http", oauth.Settings{Provider: oauth.Custom, ClientID: "id", Scopes: []string{"mail"}, AuthURL: "http://127.0.0.1:8080/a", TokenURL: "http://localhost/t"}, nil},
		{"empty", oauth.Settings{}, []string{"provider: is empty", "client_id: is empty"}},
		{"unknown-provider", oauth.Settings{Provider: "yahoo", ClientID: "id"}, []string{`provider: "yahoo" is not one of microsoft, google, custom`}},
		{"space-in-id", oauth.Settings{Provider: oauth.Google, ClientID: "a b", ClientSecret: "s"}, []string{"client_id: contains white space"}},
		{"google-no-secret", oauth.Settings{Provider: oauth.Google, ClientID: "x.apps.googleusercontent.com"}, []string{"client_secret: is empty"}},
		{"tenant-not-microsoft", oauth.Settings{Provider: oauth.Google, ClientID: "id", ClientSecret: "s", Tenant: "common"}, []string{"tenant: is only for provider microsoft"}},
		{"bad-tenant", oauth.Settings{Provider: oauth.Microsoft, ClientID: "id", Tenant: "a/../b"}, []string{`tenant: "a/../b" is not a tenant id or domain`}},
		{"urls-not-custom", oauth.Settings{Provider: oauth.Microsoft, ClientID: "id", TokenURL: "https://x/"}, []string{"token_url: is only for provider custom"}},
		{"bad-scope", oauth.Settings{Provider: oauth.Google, ClientID: "id", ClientSecret: "s", Scopes: []string{"a b"}}, []string{"scopes[0]: \"a b\" is empty or contains white space"}},
		{"custom-missing", oauth.Settings{Provider: oauth.Custom, ClientID: "id"}, []string{"auth_url: is empty", "token_url: is empty", "scopes: is empty"}},
		{"custom-http", oauth.Settings{Provider: oauth.Custom, ClientID: "id", Scopes: []string{"m"}, AuthURL: "http://idp.example/a", TokenURL: "https://idp.example/t", DeviceURL: "idp/device"},
			[]string{"auth_url: \"http://idp.example/a\" must use https", "device_url: \"idp/device\" is not an absolute URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.s.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := oauth.NewApp(tt.s, oauth.AppOptions{}); err != nil {
					t.Fatalf("NewApp() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			var fe *oauth.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("Validate() = %T, want a *FieldError inside", err)
			}
			if _, err := oauth.NewApp(tt.s, oauth.AppOptions{}); err == nil {
				t.Error("NewApp() = nil error for invalid settings")
			}
		})
	}
}

func TestPresets(t *testing.T) {
	t.Parallel()
	ms, ok := oauth.Presets(oauth.Microsoft)
	if !ok || ms.IMAP != (oauth.MailServer{Host: "outlook.office365.com", Port: 993, TLS: "implicit"}) ||
		ms.SMTP != (oauth.MailServer{Host: "smtp.office365.com", Port: 587, TLS: "starttls"}) || !ms.DeviceFlow {
		t.Errorf("Presets(microsoft) = %+v", ms)
	}
	for _, want := range []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send", "offline_access"} {
		if !slices.Contains(ms.Scopes, want) {
			t.Errorf("Presets(microsoft).Scopes = %v, want %s", ms.Scopes, want)
		}
	}
	g, ok := oauth.Presets(oauth.Google)
	if !ok || g.IMAP.Host != "imap.gmail.com" || g.SMTP.Host != "smtp.gmail.com" || g.DeviceFlow || !slices.Equal(g.Scopes, []string{"https://mail.google.com/"}) {
		t.Errorf("Presets(google) = %+v", g)
	}
	if _, ok := oauth.Presets("aol"); ok {
		t.Error("Presets(aol) ok = true, want false")
	}
}

// TestMicrosoftAuthURL checks the endpoint built from the tenant, the
// scopes and the loopback redirect, without contacting Microsoft: the
// browser stand-in records the URL and cancels.
func TestMicrosoftAuthURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		tenant, wantPath string
	}{
		{"", "/common/oauth2/v2.0/authorize"},
		{"consumers", "/consumers/oauth2/v2.0/authorize"},
	} {
		app, err := oauth.NewApp(oauth.Settings{Provider: oauth.Microsoft, ClientID: "0a1b", Tenant: tt.tenant}, oauth.AppOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		ctx, cancel := contextWithCancel(t)
		open := func(u string) error { got = u; cancel(); return nil }
		_ = app.SignInBrowser(ctx, oauth.FileStore{Path: t.TempDir() + "/t"}, oauth.BrowserOptions{Open: open})
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Host != "login.microsoftonline.com" || u.Path != tt.wantPath {
			t.Errorf("tenant %q: auth URL %s%s, want login.microsoftonline.com%s", tt.tenant, u.Host, u.Path, tt.wantPath)
		}
		if !strings.HasPrefix(q.Get("redirect_uri"), "http://localhost:") || q.Get("code_challenge_method") != "S256" ||
			q.Get("scope") != "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access" {
			t.Errorf("tenant %q: auth URL query %v", tt.tenant, q)
		}
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), testWait)
}
