package publisher

import (
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// sendState is what the schedule needs to know of the publisher: the newest
// known address, the last message sent and the pause switch.
type sendState struct {
	addrs   Addrs     // newest known address; zero: none yet
	sent    Addrs     // what the last accepted message carried
	sentSeq uint64    // that message's sequence number; 0: none yet
	sentAt  time.Time // when it was issued
	paused  bool      // the user's pause switch
}

// schedule decides when the loop checks the address, when a message is due,
// and how long it waits after a failed send. It does no I/O and reads no
// clock: the time, the publisher's state and the random draw for the
// jitter come in as arguments. Only the Run goroutine uses it.
type schedule struct {
	checkEvery     time.Duration
	heartbeatEvery time.Duration
	retryMax       time.Duration
	bo             backoff.ExponentialBackOff // no jitter of its own

	nextCheck time.Time   // when the address is checked next
	forced    bool        // PublishNow: send even if unchanged
	retryAt   time.Time   // no attempt before this after a failure
	failed    bool        // the last attempt failed
	auth      authBackoff // logins refused for the password
	signIn    bool        // the last attempt found an OAuth2 sign-in needed
}

// authBackoff spaces logins after the mail server refused the password, so
// that a wrong password does not get the account locked: the waits grow
// from authRetryMin, doubling, to authRetryMax, whatever happens meanwhile
// (address changes, heartbeats, retries), until PublishNow, a success, or
// a new Publisher (a restart or a reload of the configuration).
type authBackoff struct {
	fails int       // refusals in a row
	until time.Time // no login before this
}

// Waits after a refused login: 5m, 10m, 20m, … up to 4h, each spread up to
// a quarter longer by jitter. At most 5 logins fall in any first hour.
const (
	authRetryMin = 5 * time.Minute
	authRetryMax = 4 * time.Hour
)

// signInRecheck is how often, while an OAuth2 sign-in is needed, a due
// publication asks the token source again: the source answers from the
// token store without contacting the provider or the mail servers until
// the user has signed in again, so this finds a new `ipsync login` within
// minutes at no cost. PublishNow asks at once.
const signInRecheck = 5 * time.Minute

// refused records a refused login at now and returns when the next may
// be; r is a uniform draw from [0, 1) for the jitter.
func (a *authBackoff) refused(now time.Time, r float64) time.Time {
	a.fails++
	d := authRetryMax
	if a.fails <= 16 {
		d = min(authRetryMin<<(a.fails-1), authRetryMax)
	}
	a.until = now.Add(d + time.Duration(float64(d)*r/4))
	return a.until
}

// reset ends the backoff: the next login may happen at once.
func (a *authBackoff) reset() { *a = authBackoff{} }

// blocked reports whether no login may happen at now.
func (a *authBackoff) blocked(now time.Time) bool { return now.Before(a.until) }

// newSchedule returns the schedule of o (defaults applied) with a check
// due at now.
func newSchedule(o Options, now time.Time) *schedule {
	s := &schedule{
		checkEvery:     o.CheckEvery,
		heartbeatEvery: o.HeartbeatEvery,
		retryMax:       o.RetryMax,
		bo: backoff.ExponentialBackOff{
			InitialInterval:     o.RetryMin,
			RandomizationFactor: 0, // see jitter
			Multiplier:          2,
			MaxInterval:         o.RetryMax,
		},
		nextCheck: now,
	}
	s.bo.Reset()
	return s
}

// publishNow serves PublishNow: check at once, then send even if the
// address is unchanged, without waiting for a pending retry.
func (s *schedule) publishNow(now time.Time) {
	s.nextCheck = earliest(s.nextCheck, now)
	s.forced = true
	s.retryAt = time.Time{}
	s.auth.reset()
}

// checkDue reports whether the address is to be checked at now.
func (s *schedule) checkDue(now time.Time) bool { return !now.Before(s.nextCheck) }

// checked records a check that ended at now; changed says it found a new
// address, which supersedes whatever waits for a retry: it is tried at once.
func (s *schedule) checked(now time.Time, changed bool) {
	s.nextCheck = now.Add(s.checkEvery)
	if changed {
		s.retryAt = time.Time{}
		s.bo.Reset()
	}
}

// sendDue reports whether to publish at now: not paused, a message is due
// (see due) or asked for, and no retry wait is running. While paused it
// drops a PublishNow request, which then only checked the address.
func (s *schedule) sendDue(now time.Time, st sendState) bool {
	if st.paused {
		s.forced = false
		return false
	}
	return (s.due(now, st) || s.forced) && !now.Before(s.retryAt) && !s.auth.blocked(now)
}

// sent records the outcome err of a publication that ended at now. After a
// transient failure the next try waits the backoff interval, spread by
// jitter with a draw of rand (uniform in [0, 1), called only then); after
// ErrAuthRefused (the password was refused) it waits the login backoff
// (authBackoff), which address changes do not shorten; after
// ErrSignInNeeded it waits signInRecheck; after another
// ErrRejected it waits a heartbeat interval; ErrNoAddress (nothing to
// send) waits for no retry.
func (s *schedule) sent(now time.Time, err error, rand func() float64) {
	s.signIn = errors.Is(err, ErrSignInNeeded)
	switch {
	case err == nil:
		s.forced, s.failed, s.retryAt = false, false, time.Time{}
		s.bo.Reset()
		s.auth.reset()
	case errors.Is(err, ErrNoAddress):
		s.forced = false
	case errors.Is(err, ErrSignInNeeded):
		// No server was contacted: the token source said so first. Look
		// again later for a new sign-in (a local read of the token store).
		s.failed, s.retryAt = true, now.Add(signInRecheck)
	case errors.Is(err, ErrAuthRefused):
		s.failed, s.retryAt = true, s.auth.refused(now, rand())
	case errors.Is(err, ErrRejected):
		s.failed, s.retryAt = true, now.Add(s.heartbeatEvery)
	default:
		s.failed, s.retryAt = true, now.Add(s.jitter(s.bo.NextBackOff(), rand()))
	}
}

// next returns when the loop wakes up after it has acted at now: at the
// next check, or earlier for a retry, a due message or a heartbeat.
// pending reports that a publication that failed waits for its retry at
// s.retryAt.
func (s *schedule) next(now time.Time, st sendState) (wake time.Time, pending bool) {
	due := s.due(now, st)
	pending = s.failed && (due || s.forced) && !st.paused
	wake = s.nextCheck
	switch {
	case st.paused:
	case pending:
		wake = earliest(wake, later(s.retryAt, s.auth.until))
	case due || s.forced:
		wake = now
	case st.sentSeq != 0:
		wake = earliest(wake, heartbeatAt(st.sentSeq, st.sentAt, now, s.heartbeatEvery))
	}
	return wake, pending
}

// due reports whether a message is called for at now: an address is known
// and it was never sent, differs from the last one sent, or the heartbeat
// time has come.
func (s *schedule) due(now time.Time, st sendState) bool {
	if st.addrs.IsZero() {
		return false
	}
	if st.sentSeq == 0 || st.addrs != st.sent {
		return true
	}
	return !now.Before(heartbeatAt(st.sentSeq, st.sentAt, now, s.heartbeatEvery))
}

// jitter spreads d over [d/2, 3d/2) by r, a uniform draw from [0, 1),
// capped at the retry maximum.
func (s *schedule) jitter(d time.Duration, r float64) time.Duration {
	return min(time.Duration(float64(d)*(0.5+r)), s.retryMax)
}

// heartbeatAt returns when an unchanged address is published again: every
// after sentAt, the issue time of message sentSeq. It is zero when nothing
// was sent yet (sentSeq 0), and now when sentAt is after now (the clock
// moved back), so that a heartbeat goes out at once.
func heartbeatAt(sentSeq uint64, sentAt, now time.Time, every time.Duration) time.Time {
	if sentSeq == 0 {
		return time.Time{}
	}
	if sentAt.After(now) {
		return now
	}
	return sentAt.Add(every)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// earliest returns the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
