package mailconn

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2/imapclient"
)

// LoginIMAP connects to e (as DialIMAP does) and signs in with auth
// (Auth.IMAP: LOGIN with a password, AUTHENTICATE with an OAuth2 token).
// ctx bounds the whole of it: ending ctx closes the connection and
// LoginIMAP returns context.Cause(ctx). On success the client is logged
// in, independent of ctx, and the caller must Logout or Close it; on
// failure the connection is closed. A refused login wraps ErrAuthRefused
// and the server's *imap.Error (test its Code); a token source that needs a
// new sign-in gives ErrSignInNeeded; pass any error to Explain for a
// message that says what to fix.
func LoginIMAP(ctx context.Context, e Endpoint, auth Auth, opts *imapclient.Options) (*imapclient.Client, error) {
	if err := auth.Ready(ctx); err != nil {
		return nil, fmt.Errorf("imap server %s: %w", e.Addr(), &stageError{stageLogin, err})
	}
	c, err := DialIMAP(ctx, e, opts)
	if err != nil {
		return nil, err
	}
	err = auth.IMAP(ctx, c)
	if ctx.Err() != nil {
		c.Close()
		return nil, fmt.Errorf("imap server %s: sign in as %s: %w", e.Addr(), auth.User(), setupEndedAt(ctx, stageLogin))
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("imap server %s: %w", e.Addr(), &stageError{stageLogin, err})
	}
	return c, nil
}
