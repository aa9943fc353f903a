package mailconn

// SASL client mechanisms for signing in with an OAuth2 access token, for
// go-imap v2's Client.Authenticate and (through SMTPAuth) go-mail.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
	gomailsmtp "github.com/wneessen/go-mail/smtp"
)

// SASL mechanism names.
const (
	MechXOAuth2     = "XOAUTH2"
	MechOAuthBearer = sasl.OAuthBearer // "OAUTHBEARER"
)

// BearerError is the JSON error a server sends as a challenge when it
// refuses a bearer token (RFC 7628 §3.2.2; Google's and Microsoft's
// XOAUTH2 use the same shape).
type BearerError struct {
	Status  string `json:"status"`  // "invalid_token", "insufficient_scope", or an HTTP status such as "401"
	Schemes string `json:"schemes"` // "bearer"
	Scope   string `json:"scope"`   // the scope the server wants, if it says
}

func (e *BearerError) Error() string {
	msg := "the server refused the access token (status " + e.Status
	if e.Scope != "" {
		msg += ", scope " + e.Scope
	}
	return msg + ")"
}

// TokenAuth is a SASL client mechanism (github.com/emersion/go-sasl's
// Client) that signs in with an OAuth2 access token: XOAUTH2 or
// OAUTHBEARER. Use it once, for one AUTHENTICATE or AUTH command.
//
// When the server refuses the token it sends a JSON error as a challenge
// and waits for a dummy response before its final failure reply; TokenAuth
// answers it (XOAUTH2: an empty response; OAUTHBEARER: "\x01", RFC 7628
// §3.2.3), so the connection stays usable, and keeps the error for
// Refusal.
//
// go-imap v2.0.0-beta.8's Client.Authenticate sends an empty response as
// "=" instead of an empty line (emersion/go-imap#760). Dovecot answers that
// XOAUTH2 dummy response with "BAD Invalid base64 data" rather than "NO";
// either way the command fails, Refusal is set, and the connection can
// authenticate again.
type TokenAuth struct {
	mech    string
	start   func() (string, []byte, error)
	refusal *BearerError
	answers int
}

var _ sasl.Client = (*TokenAuth)(nil)

// NewXOAuth2 returns the XOAUTH2 mechanism of Google and Microsoft:
// the initial response is "user=" user "\x01auth=Bearer " token "\x01\x01".
func NewXOAuth2(user, token string) *TokenAuth {
	return &TokenAuth{mech: MechXOAuth2, start: func() (string, []byte, error) {
		return MechXOAuth2, []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"), nil
	}}
}

// NewOAuthBearer returns the OAUTHBEARER mechanism (RFC 7628) with user as
// the authorization identity and, if not empty or zero, the server's host
// and port as the RFC suggests. The initial response is built by go-sasl.
func NewOAuthBearer(user, token, host string, port int) *TokenAuth {
	c := sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token, Host: host, Port: port})
	return &TokenAuth{mech: MechOAuthBearer, start: c.Start}
}

// Start implements sasl.Client.
func (a *TokenAuth) Start() (mech string, ir []byte, err error) {
	if a.start == nil {
		return "", nil, errors.New("sasl: TokenAuth used without NewXOAuth2 or NewOAuthBearer")
	}
	return a.start()
}

// Next implements sasl.Client. The only challenge these mechanisms expect
// is the server's error; a second one is a protocol error.
func (a *TokenAuth) Next(challenge []byte) ([]byte, error) {
	a.answers++
	if a.answers > 1 {
		return nil, fmt.Errorf("sasl %s: unexpected second challenge from the server", a.mech)
	}
	var be BearerError
	if err := json.Unmarshal(challenge, &be); err != nil || be.Status == "" {
		be = BearerError{Status: "unknown (the server's challenge is not the JSON error of RFC 7628)"}
	}
	a.refusal = &be
	if a.mech == MechOAuthBearer {
		return []byte{0x01}, nil
	}
	return []byte{}, nil
}

// Refusal returns the error the server sent as a challenge, or nil if it
// sent none (the sign-in succeeded, or failed without explaining).
func (a *TokenAuth) Refusal() *BearerError { return a.refusal }

// SMTPAuth adapts a SASL client mechanism to go-mail's smtp.Auth (for
// mail.WithSMTPAuthCustom). Like go-mail's PLAIN, it sends nothing unless
// the connection is under TLS or the server is on loopback.
func SMTPAuth(c sasl.Client) gomailsmtp.Auth { return smtpAuth{c} }

type smtpAuth struct{ c sasl.Client }

func (s smtpAuth) Start(server *gomailsmtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !IsLoopback(server.Name) {
		return "", nil, fmt.Errorf("refusing to send an access token to %s without TLS", server.Name)
	}
	mech, ir, err := s.c.Start()
	if err != nil {
		return "", nil, err
	}
	if len(server.Auth) > 0 && !hasFold(server.Auth, mech) {
		return "", nil, fmt.Errorf("the smtp server %s does not offer AUTH %s (it offers %s)", server.Name, mech, strings.Join(server.Auth, " "))
	}
	return mech, ir, nil
}

func (s smtpAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	return s.c.Next(fromServer)
}

func hasFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
