package mailconn_test

import (
	"bytes"
	"strings"
	"testing"

	gomailsmtp "github.com/wneessen/go-mail/smtp"

	"ipsync/mailconn"
)

func TestTokenAuthInitialResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		auth     *mailconn.TokenAuth
		wantMech string
		wantIR   string
	}{
		{
			// developers.google.com/gmail/imap/xoauth2-protocol
			name:     "xoauth2",
			auth:     mailconn.NewXOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
			wantMech: "XOAUTH2",
			wantIR:   "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01",
		},
		{
			// RFC 7628 §4.1
			name:     "oauthbearer",
			auth:     mailconn.NewOAuthBearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143),
			wantMech: "OAUTHBEARER",
			wantIR:   "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01",
		},
		{
			name:     "oauthbearer-minimal",
			auth:     mailconn.NewOAuthBearer("", "T", "", 0),
			wantMech: "OAUTHBEARER",
			wantIR:   "n,,\x01auth=Bearer T\x01\x01",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mech, ir, err := tt.auth.Start()
			if err != nil || mech != tt.wantMech || string(ir) != tt.wantIR {
				t.Errorf("Start() = %q, %q, %v; want %q, %q", mech, ir, err, tt.wantMech, tt.wantIR)
			}
		})
	}
}

func TestTokenAuthErrorChallenge(t *testing.T) {
	t.Parallel()
	// RFC 7628 §4.3
	challenge := []byte(`{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}`)
	tests := []struct {
		name      string
		auth      *mailconn.TokenAuth
		challenge []byte
		wantResp  []byte
		want      mailconn.BearerError
	}{
		{"xoauth2", mailconn.NewXOAuth2("u", "T"), challenge, []byte{}, mailconn.BearerError{Status: "invalid_token", Scope: "example_scope"}},
		{"oauthbearer", mailconn.NewOAuthBearer("u", "T", "", 0), challenge, []byte{0x01}, mailconn.BearerError{Status: "invalid_token", Scope: "example_scope"}},
		{"google-401", mailconn.NewXOAuth2("u", "T"), []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), []byte{}, mailconn.BearerError{Status: "401", Schemes: "bearer", Scope: "https://mail.google.com/"}},
		{"not-json", mailconn.NewOAuthBearer("u", "T", "", 0), []byte("go away"), []byte{0x01}, mailconn.BearerError{Status: "unknown (the server's challenge is not the JSON error of RFC 7628)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := tt.auth.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.auth.Refusal() != nil {
				t.Fatal("Refusal() before any challenge != nil")
			}
			resp, err := tt.auth.Next(tt.challenge)
			if err != nil || resp == nil || !bytes.Equal(resp, tt.wantResp) {
				t.Fatalf("Next(%q) = %q, %v; want %q", tt.challenge, resp, err, tt.wantResp)
			}
			if got := tt.auth.Refusal(); got == nil || *got != tt.want {
				t.Errorf("Refusal() = %+v, want %+v", got, tt.want)
			}
			if _, err := tt.auth.Next(tt.challenge); err == nil {
				t.Error("Next() a second time = nil error, want a protocol error")
			}
			if err := tt.auth.Refusal(); strings.Contains(err.Error(), "T\x01") {
				t.Errorf("Refusal().Error() = %q contains the token", err)
			}
		})
	}
}

func TestSMTPAuthRefusesPlaintext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		server gomailsmtp.ServerInfo
		ok     bool
	}{
		{"tls", gomailsmtp.ServerInfo{Name: "smtp.office365.com", TLS: true, Auth: []string{"LOGIN", "XOAUTH2"}}, true},
		{"loopback-plain", gomailsmtp.ServerInfo{Name: "127.0.0.1", Auth: []string{"XOAUTH2"}}, true},
		{"remote-plain", gomailsmtp.ServerInfo{Name: "smtp.example.com", Auth: []string{"XOAUTH2"}}, false},
		{"not-offered", gomailsmtp.ServerInfo{Name: "smtp.example.com", TLS: true, Auth: []string{"PLAIN", "LOGIN"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := mailconn.SMTPAuth(mailconn.NewXOAuth2("u", "secret-token"))
			mech, ir, err := a.Start(&tt.server)
			if (err == nil) != tt.ok {
				t.Fatalf("Start(%+v) = %q, %v; want ok=%v", tt.server, mech, err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "secret-token") {
				t.Errorf("Start() error %q contains the token", err)
			}
			if tt.ok && (mech != "XOAUTH2" || !bytes.Contains(ir, []byte("auth=Bearer secret-token"))) {
				t.Errorf("Start() = %q, %q", mech, ir)
			}
		})
	}
}

func FuzzTokenAuthNext(f *testing.F) {
	f.Add([]byte(`{"status":"invalid_token"}`), true)
	f.Add([]byte(""), false)
	f.Add([]byte("\x00{"), true)
	f.Fuzz(func(t *testing.T, challenge []byte, bearer bool) {
		a := mailconn.NewXOAuth2("u", "T")
		want := []byte{}
		if bearer {
			a, want = mailconn.NewOAuthBearer("u", "T", "h", 1), []byte{0x01}
		}
		resp, err := a.Next(challenge)
		if err != nil || !bytes.Equal(resp, want) || a.Refusal() == nil || a.Refusal().Status == "" {
			t.Errorf("Next(%q) = %q, %v, refusal %+v; want %q and a refusal", challenge, resp, err, a.Refusal(), want)
		}
	})
}
