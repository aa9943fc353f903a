package mailconn

// The credentials seam: how ipsync signs in to its mail servers.

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomail "github.com/wneessen/go-mail"
)

// ErrAuthRefused means the server refused the credentials: a wrong
// password, or an access token refused even after one refresh. Retrying
// with the same settings does not help. (A token source that can no longer
// get tokens gives ErrSignInNeeded instead.)
var ErrAuthRefused = errors.New("the mail server refused the sign-in")

// ErrTokenRefused is the ErrAuthRefused of a token sign-in: the server
// refused an OAuth2 access token, and a freshly refreshed one too. It
// matches ErrAuthRefused (errors.Is), so the roles back off alike; messages
// test it to name the app registration and the mailbox's settings rather
// than a password.
var ErrTokenRefused error = tokenRefused{}

type tokenRefused struct{}

func (tokenRefused) Error() string        { return "the mail server refused the access token" }
func (tokenRefused) Is(target error) bool { return target == ErrAuthRefused }

// ErrSignInNeeded matches an error of Auth.IMAP or Auth.SMTP when the token
// source can no longer get tokens and the user must sign in again
// (`ipsync login`): the refresh token was revoked or expired, or none is
// stored. Retrying does not help. The source's own error stays in the chain
// (oauth.ErrSignInNeeded matches too).
var ErrSignInNeeded = errors.New("sign-in needed")

// TokenSource hands out OAuth2 access tokens. *oauth.Source implements it.
type TokenSource interface {
	// Token returns a token that is valid now (refreshing it if needed).
	// An error with a method SignInNeeded() bool that reports true means
	// the user must sign in again (see ErrSignInNeeded).
	Token(ctx context.Context) (string, error)
	// Refused is told that a server refused token, and returns a fresh
	// one; its errors are read as Token's are.
	Refused(ctx context.Context, token string) (string, error)
}

// sourceError marks an error of the token source that says the user must
// sign in again as ErrSignInNeeded, keeping its message.
func sourceError(err error) error {
	var sn interface{ SignInNeeded() bool }
	if errors.As(err, &sn) && sn.SignInNeeded() {
		return &signInError{err}
	}
	return err
}

type signInError struct{ err error }

func (e *signInError) Error() string   { return e.err.Error() }
func (e *signInError) Unwrap() []error { return []error{ErrSignInNeeded, e.err} }

// Auth says how to sign in to the mail servers: with a password, or with an
// OAuth2 access token. It holds no secret itself: each login asks the
// password func or the token source for the credential, uses it for that
// one login and forgets it, so a changed password file or a refreshed token
// is picked up at the next login. The zero Auth signs in as nobody and
// every login fails; build one with PasswordAuth or TokenAuthSource. An
// Auth is safe for concurrent use if its func or source is.
type Auth struct {
	user     string
	password func(ctx context.Context) (string, error)
	tokens   TokenSource
}

// PasswordAuth signs in as user with the password that password returns at
// each login (IMAP LOGIN; SMTP PLAIN or LOGIN).
func PasswordAuth(user string, password func(ctx context.Context) (string, error)) Auth {
	return Auth{user: user, password: password}
}

// TokenAuthSource signs in as user with OAuth2 access tokens from src
// (IMAP AUTHENTICATE XOAUTH2 or OAUTHBEARER; SMTP AUTH XOAUTH2). When a
// server refuses a token, the login tells src (Refused) and retries once
// with the token it returns.
func TokenAuthSource(user string, src TokenSource) Auth {
	return Auth{user: user, tokens: src}
}

// User returns the user name logins use.
func (a Auth) User() string { return a.user }

// IsToken reports whether a signs in with OAuth2 tokens.
func (a Auth) IsToken() bool { return a.tokens != nil }

// String describes the method for messages and logs, never the secret.
func (a Auth) String() string {
	if a.tokens != nil {
		return "OAuth2 token for " + a.user
	}
	return "password for " + a.user
}

// IsZero reports whether a is the zero Auth (no sign-in method): callers
// that may go without signing in (an SMTP relay on loopback) test it.
func (a Auth) IsZero() bool { return a.password == nil && a.tokens == nil }

// Ready reports, without touching a mail server, whether a login can be
// tried: for a token, it gets one from the source (refreshing it if
// needed), so an error matching ErrSignInNeeded says the user must sign in
// again before any server is dialled; for a password it returns nil (the
// password is read at the login itself). A *oauth.Source that has seen its
// refresh token refused answers from memory and the token store, so a
// role that waits for a new sign-in can call Ready on a timer without
// asking the provider or the mail servers anything.
func (a Auth) Ready(ctx context.Context) error {
	if err := a.check(); err != nil {
		return err
	}
	if a.tokens == nil {
		return nil
	}
	if _, err := a.tokens.Token(ctx); err != nil {
		return fmt.Errorf("sign-in as %s: %w", a.user, sourceError(err))
	}
	return nil
}

func (a Auth) check() error {
	if a.password == nil && a.tokens == nil {
		return errors.New("no sign-in method configured (a zero mailconn.Auth)")
	}
	return nil
}

// IMAP signs c in: the sign-in step of every IMAP session (LoginIMAP, the
// fetcher, the publisher's retention). A password is sent with
// LOGIN. A token is sent with AUTHENTICATE XOAUTH2 when the server
// advertises it, as Microsoft 365, Outlook.com, Gmail and Dovecot do, else
// with OAUTHBEARER (RFC 7628); a server advertising neither fails the login
// at once without sending the token. If the server refuses the token, IMAP
// asks the source for a fresh one and retries once on the same connection.
//
// A refusal of the credentials wraps ErrAuthRefused (and the server's
// *imap.Error); an error of the token source is wrapped, and matches
// ErrSignInNeeded when the user must sign in again. go-imap has no context:
// if ctx ends during the login, IMAP closes c to unblock it.
func (a Auth) IMAP(ctx context.Context, c *imapclient.Client) error {
	if err := a.check(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err := a.loginIMAP(ctx, c)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("imap sign-in as %s: %w", a.user, context.Cause(ctx))
	}
	return err
}

func (a Auth) loginIMAP(ctx context.Context, c *imapclient.Client) error {
	if a.tokens == nil {
		pw, err := a.password(ctx)
		if err != nil {
			return fmt.Errorf("imap sign-in as %s: get the password: %w", a.user, err)
		}
		if err := c.Login(a.user, pw).Wait(); err != nil {
			if isIMAPRefusal(err) {
				return fmt.Errorf("log in as %s: %w: %w", a.user, ErrAuthRefused, err)
			}
			return fmt.Errorf("log in as %s: %w", a.user, err)
		}
		return nil
	}

	mech, err := IMAPTokenMech(c.Caps())
	if err != nil {
		return fmt.Errorf("imap sign-in as %s: %w", a.user, err)
	}
	tok, err := a.tokens.Token(ctx)
	if err != nil {
		return fmt.Errorf("imap sign-in as %s: %w", a.user, sourceError(err))
	}
	refused, err := a.authenticate(c, mech, tok)
	if err == nil {
		return nil
	}
	if !refused {
		return fmt.Errorf("imap authenticate %s as %s: %w", mech, a.user, err)
	}
	// The token expired early or was revoked with the session: one fresh
	// token, one more try.
	tok, err = a.tokens.Refused(ctx, tok)
	if err != nil {
		return fmt.Errorf("imap sign-in as %s: the server refused the access token: %w", a.user, sourceError(err))
	}
	refused, err = a.authenticate(c, mech, tok)
	switch {
	case err == nil:
		return nil
	case refused:
		return fmt.Errorf("imap authenticate %s as %s: %w (a freshly refreshed one too; check that the app has the mail scopes and that IMAP is enabled for the mailbox): %w", mech, a.user, ErrTokenRefused, err)
	}
	return fmt.Errorf("imap authenticate %s as %s: %w", mech, a.user, err)
}

// authenticate runs one AUTHENTICATE and reports whether a failure was the
// server refusing the token.
func (a Auth) authenticate(c *imapclient.Client, mech, tok string) (refused bool, err error) {
	var sc *TokenAuth
	if mech == MechOAuthBearer {
		sc = NewOAuthBearer(a.user, tok, "", 0)
	} else {
		sc = NewXOAuth2(a.user, tok)
	}
	err = c.Authenticate(sc)
	if err == nil {
		return false, nil
	}
	if be := sc.Refusal(); be != nil {
		return true, fmt.Errorf("%w: %w", be, err)
	}
	return isIMAPRefusal(err), err
}

// isIMAPRefusal reports whether err is the server's NO refusing the
// credentials of a login: no response code (servers differ), or one of the
// RFC 5530 codes of a refused login ([AUTHENTICATIONFAILED],
// [AUTHORIZATIONFAILED], [EXPIRED], [CONTACTADMIN], [PRIVACYREQUIRED]). A
// NO with another code, such as [UNAVAILABLE] or [LIMIT] (a connection
// limit or throttling), is not a refusal: retrying later may work.
func isIMAPRefusal(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return false
	}
	switch ie.Code {
	case "", imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed,
		imap.ResponseCodeExpired, imap.ResponseCodeContactAdmin, imap.ResponseCodePrivacyRequired:
		return true
	}
	return false
}

// IMAPTokenMech picks the SASL mechanism for a token sign-in from the
// server's capabilities: XOAUTH2 when advertised (every large provider
// offers it; Microsoft offers only it), else OAUTHBEARER.
func IMAPTokenMech(caps imap.CapSet) (string, error) {
	mechs := caps.AuthMechanisms()
	switch {
	case hasFold(mechs, MechXOAuth2):
		return MechXOAuth2, nil
	case hasFold(mechs, MechOAuthBearer):
		return MechOAuthBearer, nil
	}
	return "", fmt.Errorf("the imap server offers neither AUTH=XOAUTH2 nor AUTH=OAUTHBEARER (it offers %q), so it cannot take an OAuth2 token; use mail.auth: password", mechs)
}

// SMTP signs in to an SMTP server through go-mail: it calls send with the
// go-mail options that make a client sign in (add them to the client's
// other options, build the client and send). For a token, XOAUTH2 is used,
// the mechanism Microsoft and Google take; if the server refuses the token
// (SMTP 535, or an RFC 7628 error challenge), SMTP asks the source for a
// fresh one and calls send once more. For a password, PLAIN or LOGIN
// (whichever the server offers; noTLS selects the variants go-mail allows
// without TLS, for loopback servers).
//
// The options must be used only within send: they carry the credential of
// this one attempt. A refusal of the credentials wraps ErrAuthRefused; an
// error of the token source is wrapped, and matches ErrSignInNeeded when
// the user must sign in again; any other error of send is returned as it
// is.
func (a Auth) SMTP(ctx context.Context, noTLS bool, send func(opts []gomail.Option) error) error {
	if err := a.check(); err != nil {
		return err
	}
	if a.tokens == nil {
		pw, err := a.password(ctx)
		if err != nil {
			return fmt.Errorf("smtp sign-in as %s: get the password: %w", a.user, err)
		}
		mechs := []gomail.SMTPAuthType{gomail.SMTPAuthPlain, gomail.SMTPAuthLogin}
		if noTLS {
			mechs = []gomail.SMTPAuthType{gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc}
		}
		err = send([]gomail.Option{gomail.WithOpportunisticSMTPAuth(mechs...), gomail.WithUsername(a.user), gomail.WithPassword(pw)})
		if err != nil && isSMTPAuthRefusal(err) {
			return fmt.Errorf("smtp login as %s: %w: %w", a.user, ErrAuthRefused, err)
		}
		return err
	}

	tok, err := a.tokens.Token(ctx)
	if err != nil {
		return fmt.Errorf("smtp sign-in as %s: %w", a.user, sourceError(err))
	}
	refused, err := a.sendToken(tok, send)
	if err == nil || !refused {
		return err
	}
	tok, err = a.tokens.Refused(ctx, tok)
	if err != nil {
		return fmt.Errorf("smtp sign-in as %s: the server refused the access token: %w", a.user, sourceError(err))
	}
	refused, err = a.sendToken(tok, send)
	if refused {
		return fmt.Errorf("smtp authenticate XOAUTH2 as %s: %w (a freshly refreshed one too; check that the app has the SMTP scope and that SMTP AUTH is enabled for the mailbox): %w", a.user, ErrTokenRefused, err)
	}
	return err
}

func (a Auth) sendToken(tok string, send func([]gomail.Option) error) (refused bool, err error) {
	sc := NewXOAuth2(a.user, tok)
	err = send([]gomail.Option{gomail.WithSMTPAuthCustom(SMTPAuth(sc))})
	if err == nil {
		return false, nil
	}
	if be := sc.Refusal(); be != nil {
		return true, fmt.Errorf("%w: %w", be, err)
	}
	return isSMTPAuthRefusal(err), err
}

// isSMTPAuthRefusal reports whether err carries an SMTP reply refusing the
// sign-in (RFC 4954): 535 credentials invalid, 534 mechanism too weak
// (e.g. an app password is required), 530 authentication required. go-mail
// wraps them.
func isSMTPAuthRefusal(err error) bool {
	code := 0
	var tpErr *textproto.Error
	var sendErr *gomail.SendError
	switch {
	case errors.As(err, &tpErr):
		code = tpErr.Code
	case errors.As(err, &sendErr):
		code = sendErr.ErrorCode()
	}
	return code == 530 || code == 534 || code == 535
}
