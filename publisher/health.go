package publisher

import (
	"errors"
	"strings"
	"time"

	"ipsync/health"
	"ipsync/mailconn"
)

// Health is what the tray shows for s. SignInNeeded is handed on (the tray
// offers "Sign in…"); with it, sending shows Error. Its states mean, for the server:
// AuthRefused, the SMTP server refused the password (announced once, with
// the setting to fix); Error, mail cannot be sent; Unreachable, the address sources fail or disagree; Stale,
// the current address waits for delivery; Unknown, no address known yet;
// Current, the current address is published. Problems that do not stop
// publishing are shown in Err in any state: a password refused for
// retention (ErrKind "password") or recipients that did not get the
// message (ErrKind "recipient", one RecipientProblem.String each).
func (s Status) Health() health.Status {
	h := health.Status{
		State:         health.Current,
		IPv4:          s.Addrs.IPv4,
		IPv6:          s.Addrs.IPv6,
		LastCheck:     s.LastCheck,
		LastSent:      s.LastSent,
		NextHeartbeat: s.NextHeartbeat,
		Seq:           s.LastSeq,
		Paused:        s.Paused,
	}
	h.SignInNeeded = s.SignInNeeded
	switch {
	case s.SignInNeeded && s.LastError != nil && s.LastErrorSending:
		h.State = health.Error
		h.Err, h.ErrKind = "sign-in needed: run ipsync login, or Sign in… here ("+s.LastError.Error()+")", "signin"
	case s.PasswordRefused && s.PasswordRefusedBy == "smtp":
		h.State = health.AuthRefused
		h.Err, h.ErrKind = passwordRefused("sending", s.LastError, s.NextLogin), "password"
	case s.LastError != nil && s.LastErrorSending:
		h.State = health.Error
		h.Err, h.ErrKind = s.LastError.Error(), "send"
		if errors.Is(s.LastError, ErrRejected) {
			h.ErrKind = "rejected"
		}
	case s.LastError != nil:
		h.State = health.Unreachable
		h.Err, h.ErrKind = s.LastError.Error(), "sources"
	case s.Addrs.IsZero():
		h.State = health.Unknown
	case s.Pending || s.Addrs != s.SentAddrs:
		h.State = health.Stale
	}
	// Problems that do not stop publishing, shown when nothing worse is.
	switch {
	case h.Err != "":
	case s.SignInNeeded:
		h.Err, h.ErrKind = "sign-in needed for mailbox retention: run ipsync login, or Sign in… here", "signin"
		if s.RetentionError != nil {
			h.Err += " (" + s.RetentionError.Error() + ")"
		}
	case s.PasswordRefused && s.PasswordRefusedBy == "imap":
		h.Err, h.ErrKind = passwordRefused("mailbox retention", s.RetentionError, s.NextLogin), "password"
	case len(s.Recipients) > 0:
		lines := make([]string, len(s.Recipients))
		for i, r := range s.Recipients {
			lines[i] = r.String()
		}
		h.Err, h.ErrKind = strings.Join(lines, "; "), "recipient"
	}
	return h
}

// passwordRefused is the user's message for a refused login: what it
// stops, the server's reply, what to fix and when ipsync tries again.
func passwordRefused(what string, err error, next time.Time) string {
	msg := "password refused for " + what + ": check mail.password (Gmail, Yahoo, iCloud and Outlook need an app password)"
	var me *mailconn.Error
	switch {
	case errors.Is(err, mailconn.ErrTokenRefused):
		msg = "OAuth2 access token refused for " + what + ", a refreshed one too: check the app's mail scopes in mail.oauth2 and that the mailbox allows IMAP and SMTP AUTH (docs/oauth2.md)"
		msg += " — " + err.Error()
	case errors.As(err, &me) && me.Problem == mailconn.ProblemAuth:
		// Explained already: the server, the login, its reply, the fix.
		msg = "password refused for " + what + ": " + strings.TrimPrefix(me.Msg, me.Setting+": ")
	case err != nil:
		msg += " — " + err.Error()
	}
	if !next.IsZero() {
		msg += "; next try " + next.Format("15:04") + " (or Publish now)"
	}
	return msg
}
