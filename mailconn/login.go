package mailconn

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Credentials say how to sign in to a mail server. Today that is a user
// name and a password; this type is where another way (an OAuth2 token
// source) will go, so that nothing else needs to know how ipsync signs in.
type Credentials struct {
	// Username is the login name.
	Username string
	// Password goes with Username. It is never logged or part of an error.
	Password string
}

// LoginIMAP connects to e (as DialIMAP does) and logs in with cred. ctx
// bounds the whole of it: ending ctx closes the connection and LoginIMAP
// returns context.Cause(ctx). On success the client is logged in,
// independent of ctx, and the caller must Logout or Close it; on failure
// the connection is closed. A refused login is an *imap.Error (test its
// Code); pass any error to Explain for a message that says what to fix.
func LoginIMAP(ctx context.Context, e Endpoint, cred Credentials, opts *imapclient.Options) (*imapclient.Client, error) {
	c, err := DialIMAP(ctx, e, opts)
	if err != nil {
		return nil, err
	}
	// go-imap has no ctx: closing the connection unblocks the command.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = c.Login(cred.Username, cred.Password).Wait()
	if !stop() {
		c.Close()
		return nil, fmt.Errorf("imap server %s: log in as %s: %w", e.Addr(), cred.Username, setupEndedAt(ctx, stageLogin))
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("imap server %s: %w", e.Addr(), &stageError{stageLogin, fmt.Errorf("log in as %s: %w", cred.Username, err)})
	}
	return c, nil
}
