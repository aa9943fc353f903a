package publisher

import (
	"errors"
	"reflect"
	"time"
)

// Status is a snapshot of the publisher for the tray and logs.
type Status struct {
	// Addrs is the newest known address: the last one detected, or, before
	// any check succeeded, the last one published.
	Addrs Addrs
	// LastCheck is when the last check finished (zero: none yet).
	LastCheck time.Time
	// NextCheck is when the loop checks next (zero when Run is not active).
	NextCheck time.Time
	// LastSent is when the last accepted message was issued (zero: never).
	LastSent time.Time
	// LastSeq is the sequence number of that message.
	LastSeq uint64
	// SentAddrs is the address that message carried.
	SentAddrs Addrs
	// NextHeartbeat is when an unchanged address is published again
	// (zero: nothing sent yet, or paused).
	NextHeartbeat time.Time
	// Pending is set while a publication waits for a retry.
	Pending bool
	// NextRetry is when that retry happens.
	NextRetry time.Time
	// LastError is the outstanding failure: the last send error until a
	// send succeeds, else the last check error until a check succeeds;
	// nil when all is well. errors.Is(LastError, ErrRejected) means the
	// mail server refused permanently (fix the configuration).
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// LastErrorSending is true when LastError is a send failure (the mail
	// server), false when it is a failed address check (the sources).
	LastErrorSending bool
	// Paused is the user's pause switch (persisted).
	Paused bool
	// PasswordRefused is set while a mail server refuses the account's
	// password: SMTP 535, 534 or 530 when sending (LastError holds the
	// reply), or IMAP NO [AUTHENTICATIONFAILED] for retention
	// (RetentionError holds it). It is not a network error: mail.password
	// (or the account's settings, e.g. an app password) must change.
	// Logins are retried after waits that grow from 5 minutes to 4 hours,
	// or at once on PublishNow; a success ends it.
	PasswordRefused bool
	// SignInNeeded is set while the OAuth2 sign-in is no longer accepted
	// (mail.auth: oauth2; the refresh token was revoked or expired, or none
	// is stored) for sending (LastError matches ErrSignInNeeded) or for
	// retention (RetentionError does). No mail server is contacted until
	// the user signs in again (`ipsync login`, the tray's "Sign in…"); a new
	// sign-in is noticed within minutes, at once on PublishNow.
	SignInNeeded bool
	// PasswordRefusedBy is "smtp" or "imap" while PasswordRefused.
	PasswordRefusedBy string
	// NextLogin is when the refused login is tried again.
	NextLogin time.Time
	// RetentionError is the last failure of mailbox retention (nil: the
	// last session succeeded, or none ran); retention failures never stop
	// publishing.
	RetentionError error
	// Recipients are the recipients of Options.To that did not get the
	// newest message while the others did (refused by the server, or a
	// bounce came back), sorted by address; nil when all is well. The
	// tray shows each one's String.
	Recipients []RecipientProblem
}

// Status returns a snapshot. It does not block on I/O.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Paused reports the pause switch. It does not block on I/O.
func (p *Publisher) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rec.Paused
}

// changed refreshes the status snapshot and hands it to OnStatus if it
// differs from the last one handed over. OnStatus is called with no lock
// held, one call at a time: while another goroutine is handing snapshots
// over, changed leaves the newest one to it and returns at once.
func (p *Publisher) changed() {
	p.mu.Lock()
	p.status = p.statusLocked()
	if p.opts.OnStatus == nil || p.notifying {
		p.mu.Unlock()
		return
	}
	p.notifying = true
	for !sameStatus(p.reported, p.status) {
		s := p.status
		p.reported = s
		p.mu.Unlock()
		p.opts.OnStatus(s)
		p.mu.Lock()
	}
	p.notifying = false
	p.mu.Unlock()
}

// statusLocked builds the status from the publisher's fields, keeping the
// loop's schedule fields.
func (p *Publisher) statusLocked() Status {
	s := p.status
	s.Addrs = p.current
	s.LastSent = p.rec.SentAt
	s.LastSeq = p.rec.SentSeq
	s.SentAddrs = Addrs{IPv4: p.rec.IPv4, IPv6: p.rec.IPv6}
	s.Paused = p.rec.Paused
	s.Recipients = p.recipientProblemsLocked()
	s.NextHeartbeat = time.Time{}
	if s.Paused {
		s.Pending, s.NextRetry = false, time.Time{}
	} else {
		s.NextHeartbeat = heartbeatAt(p.rec.SentSeq, p.rec.SentAt, p.now(), p.opts.HeartbeatEvery)
	}
	s.PasswordRefused, s.PasswordRefusedBy, s.NextLogin = false, "", time.Time{}
	s.RetentionError = p.pruneErr
	s.SignInNeeded = errors.Is(p.sendErr, ErrSignInNeeded) || errors.Is(p.pruneErr, ErrSignInNeeded)
	switch {
	case errors.Is(p.sendErr, ErrAuthRefused):
		s.PasswordRefused, s.PasswordRefusedBy, s.NextLogin = true, "smtp", p.authUntil
	case errors.Is(p.pruneErr, ErrAuthRefused):
		s.PasswordRefused, s.PasswordRefusedBy, s.NextLogin = true, "imap", p.pruneAuth.until
	}
	switch {
	case p.sendErr != nil:
		s.LastError, s.LastErrorAt, s.LastErrorSending = p.sendErr, p.sendAt, true
	case p.checkErr != nil:
		s.LastError, s.LastErrorAt, s.LastErrorSending = p.checkErr, p.checkAt, false
	default:
		s.LastError, s.LastErrorAt, s.LastErrorSending = nil, time.Time{}, false
	}
	return s
}

// sameStatus compares snapshots; errors compare by message (an error's
// dynamic type need not be comparable).
func sameStatus(a, b Status) bool {
	ae, be := a.LastError, b.LastError
	ar, br := a.RetentionError, b.RetentionError
	a.LastError, b.LastError, a.RetentionError, b.RetentionError = nil, nil, nil, nil
	return reflect.DeepEqual(a, b) && sameError(ae, be) && sameError(ar, br)
}

// sameError compares errors by message.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}
