package config

import (
	"errors"
	"strings"
	"testing"

	"ipsync/oauth"
)

// oauthYAML signs in to Microsoft 365 with OAuth2 and leaves the hosts to
// the preset.
const oauthYAML = `role: client
name: office
mail:
  address: ipsync@contoso.example
  auth: oauth2
  oauth2:
    provider: microsoft
    client_id: 11111111-2222-3333-4444-555555555555
codec:
  key: env:IPSYNC_TEST_KEY
`

func TestOAuth2PresetFillsHosts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		yaml     string
		smtp     Server
		imapHost string
		imapPort int
		imapTLS  string
	}{
		{"microsoft", oauthYAML, Server{Host: "smtp.office365.com", Port: 587, TLS: "starttls"}, "outlook.office365.com", 993, "implicit"},
		{"google", strings.Replace(strings.Replace(oauthYAML, "provider: microsoft", "provider: google", 1),
			"client_id: 11111111-2222-3333-4444-555555555555", "client_id: 123-abc.apps.googleusercontent.com\n    client_secret: env:IPSYNC_TEST_CLIENT_SECRET", 1),
			Server{Host: "smtp.gmail.com", Port: 465, TLS: "implicit"}, "imap.gmail.com", 993, "implicit"},
		{"own hosts kept", strings.Replace(oauthYAML, "codec:", "  smtp:\n    host: smtp.contoso.example\n    tls: starttls\n  imap:\n    host: imap.contoso.example\ncodec:", 1),
			Server{Host: "smtp.contoso.example", Port: 587, TLS: "starttls"}, "imap.contoso.example", 993, "implicit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse("c.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if c.Mail.SMTP != tt.smtp {
				t.Errorf("mail.smtp = %+v, want %+v", c.Mail.SMTP, tt.smtp)
			}
			if i := c.Mail.IMAP; i.Host != tt.imapHost || i.Port != tt.imapPort || i.TLS != tt.imapTLS {
				t.Errorf("mail.imap = %+v, want %s:%d %s", i, tt.imapHost, tt.imapPort, tt.imapTLS)
			}
			if !c.IsOAuth2() {
				t.Error("IsOAuth2() = false")
			}
			// No mail.password needed with oauth2.
			for _, role := range []Role{RoleClient, RoleServer} {
				if err := c.Require(role); err != nil {
					t.Errorf("Require(%s) = %v", role, err)
				}
			}
			if len(c.Warnings) != 0 {
				t.Errorf("Warnings = %q", c.Warnings)
			}
		})
	}
}

func TestAuthDefaultsToPassword(t *testing.T) {
	t.Parallel()
	c, err := Parse("c.yaml", []byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mail.Auth != AuthPassword || c.IsOAuth2() {
		t.Errorf("mail.auth = %q, want password", c.Mail.Auth)
	}
	c, err = Parse("c.yaml", []byte(strings.Replace(validYAML, "  password: env:IPSYNC_TEST_PASSWORD\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Require(RoleClient); err == nil || !strings.Contains(err.Error(), "mail.password: missing") {
		t.Errorf("Require(client) without a password = %v, want mail.password missing", err)
	}
}

// TestOAuth2Problems checks every message names its key and line, and says
// what to do; package oauth's own rules come through.
func TestOAuth2Problems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(string) string
		key  string
		line int
		want string
	}{
		{"bad auth", rep("auth: oauth2", "auth: token"), "mail.auth", 5, "password or oauth2"},
		{"oauth2 without auth", rep("  auth: oauth2\n", ""), "mail.oauth2", 5, "set mail.auth: oauth2"},
		{"no provider", rep("    provider: microsoft\n", ""), "mail.oauth2.provider", 6, "microsoft (Microsoft 365, Outlook.com), google"},
		{"unknown provider", rep("provider: microsoft", "provider: yahoo"), "mail.oauth2.provider", 7, "not one of microsoft, google, custom"},
		{"no client id", rep("    client_id: 11111111-2222-3333-4444-555555555555\n", ""), "mail.oauth2.client_id", 6, "register an app"},
		{"client id with space", rep("client_id: 11111111-2222-3333-4444-555555555555", "client_id: '1111 2222'"), "mail.oauth2.client_id", 8, "white space"},
		{"no oauth2 block", rep("  oauth2:\n    provider: microsoft\n    client_id: 11111111-2222-3333-4444-555555555555\n", ""), "mail.oauth2.provider", 3, "missing"},
		{"google needs secret", rep("provider: microsoft", "provider: google"), "mail.oauth2.client_secret", 6, "Desktop app"},
		{"bad secret ref", rep("    client_id:", "    client_secret: 'env:'\n    client_id:"), "mail.oauth2.client_secret", 8, "variable name"},
		{"bad tenant", rep("    client_id:", "    tenant: 'my tenant'\n    client_id:"), "mail.oauth2.tenant", 8, "not a tenant id or domain"},
		{"tenant for google", rep("provider: microsoft\n", "provider: google\n    client_secret: env:X\n    tenant: common\n"), "mail.oauth2.tenant", 9, "only for provider microsoft"},
		{"bad scope", rep("    client_id:", "    scopes: ['a b']\n    client_id:"), "mail.oauth2.scopes[0]", 8, "white space"},
		{"url for microsoft", rep("    client_id:", "    token_url: https://login.example/token\n    client_id:"), "mail.oauth2.token_url", 8, "only for provider custom"},
		{"custom without urls", rep("provider: microsoft", "provider: custom"), "mail.oauth2.auth_url", 6, "https URL"},
		{"custom plain http", rep("provider: microsoft\n", "provider: custom\n    scopes: [mail]\n    auth_url: http://idp.example/auth\n    token_url: https://idp.example/token\n"), "mail.oauth2.auth_url", 9, "must use https"},
		{"custom no scopes", rep("provider: microsoft\n", "provider: custom\n    auth_url: https://idp.example/auth\n    token_url: https://idp.example/token\n"), "mail.oauth2.scopes", 6, "scopes your mail server wants"},
		{"unknown key", rep("    client_id:", "    clientid: x\n    client_id:"), "mail.oauth2.clientid", 8, `did you mean "client_id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("c.yaml", []byte(tt.edit(oauthYAML)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse() = %v, want *Error", err)
			}
			for _, p := range ce.Problems {
				if p.Key == tt.key && strings.Contains(p.Msg, tt.want) {
					if p.Line != tt.line {
						t.Errorf("problem %q at line %d, want %d", p, p.Line, tt.line)
					}
					return
				}
			}
			t.Errorf("Parse() problems = %q, want key %q with %q", err, tt.key, tt.want)
		})
	}
}

func TestOAuth2Settings(t *testing.T) {
	t.Setenv("IPSYNC_TEST_CLIENT_SECRET", "GOCSPX-secret-value")
	y := strings.Replace(strings.Replace(oauthYAML, "provider: microsoft", "provider: google", 1),
		"client_id: 11111111-2222-3333-4444-555555555555", "client_id: 123-abc.apps.googleusercontent.com\n    client_secret: env:IPSYNC_TEST_CLIENT_SECRET\n    scopes: [https://mail.google.com/]", 1)
	y = strings.Replace(y, "  auth: oauth2\n", "  auth: oauth2\n  password: env:IPSYNC_TEST_PASSWORD\n", 1)
	c, err := Parse("/etc/ipsync/c.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.OAuth2Settings()
	if err != nil {
		t.Fatal(err)
	}
	want := oauth.Settings{Provider: oauth.Google, ClientID: "123-abc.apps.googleusercontent.com", ClientSecret: "GOCSPX-secret-value", Scopes: []string{"https://mail.google.com/"}}
	if s.Provider != want.Provider || s.ClientID != want.ClientID || s.ClientSecret != want.ClientSecret || strings.Join(s.Scopes, " ") != "https://mail.google.com/" {
		t.Errorf("OAuth2Settings() = %+v, want %+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("OAuth2Settings().Validate() = %v", err)
	}
	if got := c.SecretEnvNames(); strings.Join(got, ",") != "IPSYNC_TEST_PASSWORD,IPSYNC_TEST_CLIENT_SECRET,IPSYNC_TEST_KEY" {
		t.Errorf("SecretEnvNames() = %q, want the client secret's variable too", got)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "line 6: mail.password is not used with mail.auth: oauth2") {
		t.Errorf("Warnings = %q, want one about the unused mail.password at line 6", c.Warnings)
	}
	if got := c.OAuth2TokenAccount(); got != "ipsync@contoso.example google" {
		t.Errorf("OAuth2TokenAccount() = %q", got)
	}

	t.Setenv("IPSYNC_TEST_CLIENT_SECRET", "")
	if _, err := c.OAuth2Settings(); err == nil || !strings.Contains(err.Error(), "mail.oauth2.client_secret") || strings.Contains(err.Error(), "GOCSPX") {
		t.Errorf("OAuth2Settings() with the secret unset = %v, want an error naming mail.oauth2.client_secret", err)
	}
}

func TestOAuth2TokenFile(t *testing.T) {
	t.Parallel()
	c, err := Parse("/etc/ipsync/c.yaml", []byte(oauthYAML+"state_dir: /var/lib/ipsync\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.OAuth2TokenFile()
	if want := "/var/lib/ipsync/oauth2-ipsync@contoso.example-microsoft.token"; err != nil || got != want {
		t.Errorf("OAuth2TokenFile() = %q, %v; want %q", got, err, want)
	}
	c.Mail.Username = "../../evil name"
	if got, _ := c.OAuth2TokenFile(); got != "/var/lib/ipsync/oauth2-.._.._evil_name-microsoft.token" {
		t.Errorf("OAuth2TokenFile() with an odd login = %q, want it kept in the state dir", got)
	}
}
