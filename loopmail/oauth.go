package loopmail

// Server side of the OAuth2 SASL mechanisms XOAUTH2 (Google, Microsoft) and
// OAUTHBEARER (RFC 7628), for SMTP AUTH and IMAP AUTHENTICATE.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Mechanism names.
const (
	mechXOAuth2     = "XOAUTH2"
	mechOAuthBearer = "OAUTHBEARER"
)

// tokenCheckTimeout bounds one Options.CheckToken call.
const tokenCheckTimeout = 30 * time.Second

// errTokenRefused ends an exchange whose token was refused; the protocol
// layers turn it into their authentication-failed reply.
var errTokenRefused = errors.New("token refused")

// bearerServer is one XOAUTH2 or OAUTHBEARER exchange. It calls auth with
// the user the client names ("" when an OAUTHBEARER client names none) and
// the token; auth returns nil once the user is signed in, errTokenRefused
// for a bad token, or another error to end the exchange with.
//
// A refusal follows RFC 7628 §3.2.2: a JSON error challenge, then, after
// the client's dummy response (XOAUTH2: empty; OAUTHBEARER: "\x01"), the
// failure.
type bearerServer struct {
	mech string
	auth func(user, token string) error
	step int // 0: want the initial response; 1: sent the error, want the dummy; 2: done
}

func (b *bearerServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch b.step {
	case 0:
		if response == nil {
			// Ask for the initial response with an empty challenge: nil,
			// which imapserver sends as "+ " ([]byte{} would be "+ =").
			return nil, false, nil
		}
		b.step = 1
		user, token, perr := parseBearer(b.mech, response)
		if perr != nil {
			return bearerChallenge("invalid_request"), false, nil
		}
		if err := b.auth(user, token); errors.Is(err, errTokenRefused) {
			return bearerChallenge("invalid_token"), false, nil
		} else if err != nil {
			return nil, false, err // a refusal with its own reply (connection cap)
		}
		b.step = 2
		return nil, true, nil
	case 1:
		b.step = 2
		want := []byte{}
		if b.mech == mechOAuthBearer {
			want = []byte{0x01}
		}
		if !bytes.Equal(response, want) {
			return nil, false, errors.New("malformed response to the error challenge")
		}
		return nil, false, errTokenRefused
	}
	return nil, false, errors.New("unexpected client response")
}

func bearerChallenge(status string) []byte {
	b, _ := json.Marshal(map[string]string{"status": status, "schemes": "bearer", "scope": "mail"})
	return b
}

// parseBearer reads the initial response:
//
//	XOAUTH2:     "user=" user "\x01auth=Bearer " token "\x01\x01"
//	OAUTHBEARER: "n," ["a=" user] "," ("\x01" key "=" value)* "\x01auth=Bearer " token "\x01\x01"
func parseBearer(mech string, resp []byte) (user, token string, err error) {
	s := string(resp)
	var kvs string
	switch mech {
	case mechXOAuth2:
		kvs = "\x01" + s
	case mechOAuthBearer:
		gs2, rest, ok := strings.Cut(s, ",")
		if !ok || gs2 != "n" {
			return "", "", errors.New("bad gs2 header")
		}
		authzid, rest, ok := strings.Cut(rest, ",")
		if !ok {
			return "", "", errors.New("bad gs2 header")
		}
		if authzid != "" {
			u, ok := strings.CutPrefix(authzid, "a=")
			if !ok {
				return "", "", errors.New("bad authzid")
			}
			user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(u)
		}
		kvs = rest
	default:
		return "", "", errors.New("unknown mechanism")
	}
	body, ok := strings.CutSuffix(kvs, "\x01\x01")
	if !ok || !strings.HasPrefix(body, "\x01") {
		return "", "", errors.New("missing separators")
	}
	for _, kv := range strings.Split(body[1:], "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", "", errors.New("bad key=value")
		}
		switch k {
		case "user":
			if mech == mechXOAuth2 {
				user = v
			}
		case "auth":
			scheme, tok, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
				return "", "", errors.New("auth is not a bearer token")
			}
			token = tok
		}
	}
	if token == "" || (mech == mechXOAuth2 && user == "") {
		return "", "", errors.New("user or token missing")
	}
	return user, token, nil
}

// checkToken asks Options.CheckToken and returns the account the token
// belongs to if it is the user the client named (any, if none), and the
// token's expiry (zero if unknown).
func (s *Server) checkToken(user, token string) (*account, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenCheckTimeout)
	defer cancel()
	login, expires, err := s.opts.CheckToken(ctx, token)
	if err != nil {
		s.log.Debug("loopmail: access token refused", "user", user, "err", err)
		return nil, time.Time{}, errTokenRefused
	}
	if user != "" && !strings.EqualFold(user, login) {
		s.log.Debug("loopmail: access token of another user", "user", user, "token_user", login)
		return nil, time.Time{}, errTokenRefused
	}
	acc := s.accounts[strings.ToLower(login)]
	if acc == nil {
		s.log.Debug("loopmail: access token of an unknown user", "token_user", login)
		return nil, time.Time{}, errTokenRefused
	}
	return acc, expires, nil
}

// tokenExpiredText is the BYE text of Exchange Online when the access token
// of an IMAP session expires.
const tokenExpiredText = "Session invalidated - AccessTokenExpired"

// EndExpiredTokenSessions ends, with "* BYE Session invalidated -
// AccessTokenExpired" as Exchange Online does, every IMAP session signed in
// with an access token whose expiry (as told by Options.CheckToken) is not
// after Options.Now, mid-IDLE included. Sessions signed in with a password
// or a token of unknown expiry stay. It returns how many sessions it ended.
// Tests call it after moving their clock, to see clients survive a token
// expiring under a long session.
func (s *Server) EndExpiredTokenSessions() int {
	now := s.now()
	s.mu.Lock()
	var ended []*imapSession
	for ss, exp := range s.tokenSess {
		if !exp.IsZero() && !now.Before(exp) {
			ended = append(ended, ss)
			delete(s.tokenSess, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range ended {
		if err := ss.imapConn.Bye(tokenExpiredText); err != nil {
			s.log.Debug("loopmail: BYE to a session whose token expired", "err", err)
		}
	}
	return len(ended)
}
