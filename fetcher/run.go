package fetcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/emersion/go-imap/v2"

	"ipsync/codec"
)

// Backoff after mail errors: from errorBackoffMin doubling to
// errorBackoffMax, each wait jittered between 50% and 100%.
const (
	errorBackoffMin = time.Second
	errorBackoffMax = 5 * time.Minute
	limitBackoffMax = 30 * time.Second
	// A refused password: from authBackoffMin doubling to authBackoffMax
	// (jittered like the others), so that a wrong password on many PCs
	// does not get the account locked; FetchNow retries at once.
	authBackoffMin = 5 * time.Minute
	authBackoffMax = 4 * time.Hour
	// signInRecheck is how often Run, while an OAuth2 sign-in is needed,
	// asks the token source whether the user has signed in again (a new
	// refresh token in the store): no mail server is contacted until then,
	// and FetchNow asks at once.
	signInRecheck = 5 * time.Minute
	probeTimeout  = 5 * time.Second
	idleSettle    = 250 * time.Millisecond
	// healthyIdle is how long IDLE must have run (or IdleRefresh, if
	// shorter) for a session's end to be followed by an immediate
	// reconnect rather than the error backoff.
	healthyIdle = time.Minute
)

var errDropped = errors.New("imap connection closed by the server")

// runner is the state of one Run; it lives on the Run goroutine.
type runner struct {
	f *Fetcher
	c Consumer

	mode      string
	lastCheck time.Time
	mailErr   error // last mail error (State Error); nil when reading works
	probeErr  error // last probe failure (State Unreachable)
	stale     bool
	previous  codec.Payload

	probing   bool
	nextProbe time.Time
	probeRes  chan error
	fetchAsk  bool // a failed probe asks for a fetch

	failures      int       // consecutive mail errors
	authFailures  int       // consecutive refused logins
	futureAsked   time.Time // the future-dated due time a fetch was asked for
	problem       string    // the last Problem reported
	limitFailures int       // consecutive connection-limit refusals
	quickRetry    bool      // the last session ended after a short IDLE and was retried at once
	fetching      bool      // the last Update had Fetching set
	shared        bool
	nextIdleTry   time.Time
	noIdleCap     bool
}

// event is why runner.wait returned.
type event int

const (
	evDue    event = iota // the deadline passed
	evFetch               // FetchNow, new mail (IDLE) or a failed probe
	evClosed              // the connection closed
	evDone                // ctx ended
)

// Run watches the mailbox until ctx ends, reporting to c (nil discards).
// It first reports the state saved by an earlier run, then connects; it
// never gives up on errors (it backs off and retries, reporting State
// Error), and returns nil when ctx ends, after any on_change command it
// started has finished.
func (f *Fetcher) Run(ctx context.Context, c Consumer) error {
	if c == nil {
		c = ConsumerFunc(func(Update) {})
	}
	f.loadState()
	r := &runner{f: f, c: c, probeRes: make(chan error, 1)}
	defer f.bg.Wait()
	r.stale = r.isStale(f.o.Clock.Now())
	r.emit(false, nil)
	for ctx.Err() == nil {
		now := f.o.Clock.Now()
		var delay time.Duration
		if r.wantIdle(now) {
			idleSince, err := r.idleSession(ctx)
			if ctx.Err() != nil {
				break
			}
			delay = r.after(err, idleSince)
		} else {
			delay = r.after(r.pollSession(ctx), time.Time{})
		}
		if ctx.Err() != nil {
			break
		}
		if delay <= 0 {
			continue
		}
		switch r.wait(ctx, f.o.Clock.Now().Add(delay), nil, false) {
		case evDone:
			return nil
		case evFetch:
			// Fetch now (or a due future-dated message) retries a
			// refused login at once, and restarts its backoff.
			r.authFailures = 0
		}
	}
	return nil
}

func (r *runner) wantIdle(now time.Time) bool {
	o := &r.f.o
	switch {
	case o.Idle == IdleOff, r.noIdleCap:
		return false
	case o.Idle == IdleOn, !r.shared:
		return true
	}
	return !now.Before(r.nextIdleTry)
}

// after records the outcome of a session and returns how long to wait
// before the next one. idleSince is when the session was ready to IDLE
// (zero if it never was). The reconnect is immediate only after a healthy
// IDLE session: one that lasted healthyIdle (or IdleRefresh if shorter), or
// a first short one (a server restart, a cut connection). A short one right
// after another short one (e.g. a server that refuses IDLE) waits out the
// error backoff without State Error, since the mailbox was read; a session
// that failed before it was ready (login, search, fetch) waits it out and
// sets State Error.
// It always leaves the consumer with an Update that is not Fetching.
func (r *runner) after(err error, idleSince time.Time) time.Duration {
	f := r.f
	defer func() {
		if r.fetching {
			r.emit(false, nil)
		}
	}()
	jitter := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * (0.5 + 0.5*f.o.Rand()))
	}
	now := f.o.Clock.Now()
	long := !idleSince.IsZero() && now.Sub(idleSince) >= min(healthyIdle, f.o.IdleRefresh)
	switch {
	case err == nil:
		r.failures, r.limitFailures, r.authFailures, r.quickRetry = 0, 0, 0, false
		// A poll session, or an IDLE session that chose to poll.
		return time.Duration(float64(f.o.PollEvery) * (0.75 + 0.25*f.o.Rand()))
	case errors.Is(err, errLimit):
		r.limitFailures++
		if !r.shared {
			f.log.Info("mail server refused the connection (connection limit): polling with short sessions", "err", err)
		}
		r.enterShared()
		if r.mailErr != nil {
			r.mailErr = nil
			r.emit(false, nil)
		}
		base := min(f.o.PollEvery/10, limitBackoffMax)
		for i := 1; i < r.limitFailures && base < f.o.PollEvery; i++ {
			base *= 2
		}
		return jitter(min(base, f.o.PollEvery))
	case errors.Is(err, ErrSignInNeeded):
		// Nothing was sent to the mail server (the token source said so
		// first); it stays that way until the user signs in again.
		if !errors.Is(r.mailErr, ErrSignInNeeded) {
			f.log.Warn("sign-in needed: the mail provider no longer accepts the stored sign-in; not logging in until you run `ipsync login` (or Sign in… in the tray)",
				"user", f.o.Auth.User(), "err", err)
		}
		r.mailErr = err
		r.emit(false, nil)
		return signInRecheck
	case errors.Is(err, ErrAuthRefused):
		r.authFailures++
		backoff := authBackoffMin
		for i := 1; i < r.authFailures && backoff < authBackoffMax; i++ {
			backoff *= 2
		}
		backoff = jitter(min(backoff, authBackoffMax))
		r.mailErr = err
		hint := "mail server refused the login; check the user name and mail.password"
		if f.o.Auth.IsToken() {
			hint = "mail server refused the login; check mail.username and the app's mail scopes in mail.oauth2"
		}
		f.log.Warn(hint, "user", f.o.Auth.User(), "err", err, "retry_in", backoff.Round(time.Second))
		r.emit(false, nil)
		return backoff
	case long || (!idleSince.IsZero() && !r.quickRetry):
		if long {
			r.failures = 0
		}
		r.quickRetry = !long
		f.log.Info("imap connection lost; reconnecting", "err", err)
		return 0
	}
	r.failures++
	backoff := errorBackoffMin
	for i := 1; i < r.failures && backoff < errorBackoffMax; i++ {
		backoff *= 2
	}
	backoff = jitter(min(backoff, errorBackoffMax))
	if !idleSince.IsZero() {
		// The session read the mailbox, then dropped again soon (or the
		// server refuses IDLE): the address is still current, so this is
		// not an error for the user, but reconnect more slowly.
		f.log.Warn("imap connection keeps dropping soon after it is made; backing off", "err", err, "retry_in", backoff)
		return backoff
	}
	r.mailErr = err
	f.log.Warn("cannot read the mailbox", "err", err, "retry_in", backoff)
	r.emit(false, nil)
	return backoff
}

func (r *runner) enterShared() {
	r.shared = true
	r.mode = ModePollShared
	r.nextIdleTry = r.f.o.Clock.Now().Add(time.Duration(float64(r.f.o.IdleRetry) * (0.75 + 0.25*r.f.o.Rand())))
}

// idleSession connects and IDLEs until the connection ends or ctx does.
// It returns nil without IDLE when the server does not offer IDLE or (Idle
// auto) has no room for one more connection; in both cases it fetched once.
// idleSince is when the session was established for IDLE: logged in, the
// mailbox read, about to IDLE. It is zero if the session failed before that
// (login, search, fetch) or chose to poll; a connection lost after it
// (even while starting IDLE) is a drop, not a failing server.
func (r *runner) idleSession(ctx context.Context) (idleSince time.Time, err error) {
	f := r.f
	f.log.Debug("idle session")
	s, err := f.connect(ctx, f.exists)
	if err != nil {
		return time.Time{}, err
	}
	defer s.logout(ctx)
	if !s.caps.Has(imap.CapIdle) {
		f.log.Info("mail server does not offer IDLE; polling", "every", f.o.PollEvery)
		r.noIdleCap = true
		r.mode = ModePoll
		return time.Time{}, r.fetch(ctx, s)
	}
	if f.o.Idle == IdleAuto {
		// Hold an IDLE connection only while the server has room for one
		// more: on a shared mailbox at its connection limit, pollers need
		// that room. A refused probe means we poll too.
		p, perr := dial(ctx, &f.o, nil)
		switch {
		case errors.Is(perr, errLimit):
			if !r.shared {
				f.log.Info("mailbox is at its connection limit: polling with short sessions instead of IDLE", "every", f.o.PollEvery)
			}
			r.enterShared()
			return time.Time{}, r.fetch(ctx, s)
		case perr != nil:
			f.log.Debug("spare-connection check failed; idling anyway", "err", perr)
		default:
			p.logout(ctx)
		}
	}
	// The server admitted this connection with room to spare; mail errors
	// are reset only once the session has proved healthy (see after).
	r.shared = false
	r.mode = ModeIdle
	r.limitFailures = 0
	if err := r.fetch(ctx, s); err != nil {
		return time.Time{}, err
	}
	idleSince = f.o.Clock.Now()
	refresh := f.o.Clock.Now().Add(f.o.IdleRefresh)
	// A server may hold back changes made between a command's response and
	// the start of IDLE until the next command (go-imap's imapserver does):
	// a NOOP idleSettle after each fetch collects them.
	settle := f.o.Clock.Now().Add(idleSettle)
	for {
		var idle interface {
			Close() error
			Wait() error
		}
		if err := s.do(ctx, "start idle", func() error {
			cmd, err := s.c.Idle()
			idle = cmd
			return err
		}); err != nil {
			return idleSince, err
		}
		due := refresh
		if !settle.IsZero() && settle.Before(due) {
			due = settle
		}
		ev := r.wait(ctx, due, s.c.Closed(), true)
		if ev == evClosed {
			return idleSince, errDropped
		}
		if ev == evDone {
			// End IDLE so that the deferred LOGOUT can be sent.
			_ = s.do(context.WithoutCancel(ctx), "stop idle", idle.Close)
			return idleSince, nil
		}
		if err := s.do(ctx, "stop idle", func() error {
			if err := idle.Close(); err != nil {
				return err
			}
			return idle.Wait()
		}); err != nil {
			return idleSince, err
		}
		if ev == evDue {
			// Liveness check (and collection of held-back changes).
			if err := s.noop(ctx); err != nil {
				return idleSince, err
			}
			if now := f.o.Clock.Now(); !now.Before(refresh) {
				refresh = now.Add(f.o.IdleRefresh)
			}
			settle = time.Time{}
			continue
		}
		if err := r.fetch(ctx, s); err != nil {
			return idleSince, err
		}
		settle = f.o.Clock.Now().Add(idleSettle)
	}
}

// pollSession connects, reads the mailbox and logs out.
func (r *runner) pollSession(ctx context.Context) error {
	f := r.f
	f.log.Debug("poll session")
	s, err := f.connect(ctx, nil)
	if err != nil {
		return err
	}
	defer s.logout(ctx)
	if r.noIdleCap && s.caps.Has(imap.CapIdle) {
		r.noIdleCap = false
	}
	if r.shared {
		r.mode = ModePollShared
	} else {
		r.mode = ModePoll
	}
	return r.fetch(ctx, s)
}

// fetch scans the mailbox on s and reports the outcome. On an error it
// reports nothing more: the caller passes the error to after, which reports
// it (ending the Fetching Update).
func (r *runner) fetch(ctx context.Context, s *session) error {
	f := r.f
	// Requests made so far are served by this fetch.
	select {
	case <-f.exists:
	default:
	}
	select {
	case <-f.fetchNow:
	default:
	}
	r.emit(true, nil)
	var out scanOutcome
	for {
		var err error
		if out, err = f.scan(ctx, s); err != nil {
			return err
		}
		if out.Complete {
			break
		}
		// The round spent its byte budget with candidates left: go on at
		// once, reporting progress in between.
		r.emit(true, nil)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := f.probeOtherNames(ctx, s); err != nil {
		return err
	}
	now := f.o.Clock.Now()
	r.lastCheck = now
	r.mailErr = nil
	if out.Accepted {
		r.previous = out.Previous
		if out.Changed {
			r.probeErr = nil
			r.nextProbe = now
			f.runHook(ctx, out.Previous, out.Payload)
		}
	}
	r.stale = r.isStale(now)
	r.emit(false, &out)
	return nil
}

// wait blocks until due (zero: no deadline), a fetch request, the closing
// of closed (nil: none) or the end of ctx, while keeping the staleness and
// probe state up to date. newMail selects whether IDLE's new-mail signal
// counts as a fetch request. It arms at most one Clock timer at a time.
func (r *runner) wait(ctx context.Context, due time.Time, closed <-chan struct{}, newMail bool) event {
	f := r.f
	var exists chan struct{}
	if newMail {
		exists = f.exists
	}
	for {
		now := f.o.Clock.Now()
		if stale := r.isStale(now); stale != r.stale {
			r.stale = stale
			if stale {
				f.log.Warn("no new message from the server within the stale limit", "name", f.o.Name)
			}
			r.emit(false, nil)
		}
		if r.problemNow(now) != r.problem {
			r.emit(false, nil)
		}
		r.maybeProbe(ctx, now)
		if due := f.nextFutureDue(); !due.IsZero() && !now.Before(due) && !due.Equal(r.futureAsked) {
			// A message dated ahead may now be accepted.
			r.futureAsked = due
			return evFetch
		}
		if r.fetchAsk {
			r.fetchAsk = false
			return evFetch
		}
		if !due.IsZero() && !now.Before(due) {
			return evDue
		}
		next := due
		earliest := func(t time.Time) {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if !r.stale {
			earliest(r.staleAt())
		}
		earliest(r.overdueAt(now))
		if r.probeEnabled() && !r.probing {
			earliest(r.nextProbe)
		}
		if due := f.nextFutureDue(); !due.Equal(r.futureAsked) {
			earliest(due)
		}
		var timer Timer
		var tc <-chan time.Time
		if !next.IsZero() {
			timer = f.o.Clock.NewTimer(max(0, next.Sub(now)))
			tc = timer.C()
		}
		ev := event(-1)
		select {
		case <-ctx.Done():
			ev = evDone
		case <-f.fetchNow:
			ev = evFetch
		case <-exists:
			ev = evFetch
		case <-closed:
			ev = evClosed
		case err := <-r.probeRes:
			r.probeDone(err)
		case <-tc:
		}
		if timer != nil {
			timer.Stop()
		}
		if ev >= 0 {
			return ev
		}
	}
}

// staleAt is when the last accepted message goes stale; zero if there is
// none.
func (r *runner) staleAt() time.Time {
	p, _, _, ok := r.f.snapshot()
	if !ok {
		return time.Time{}
	}
	limit := r.f.o.StaleAfter
	if limit == 0 {
		hb := p.Heartbeat
		if hb <= 0 {
			hb = DefaultHeartbeat
		}
		limit = 2*hb + DefaultStaleGrace
	}
	return p.IssuedAt.Add(limit)
}

// overdueAt is when the last accepted message becomes overdue (one
// heartbeat plus the grace, when rejected messages become a Problem);
// zero if there is none or it is overdue already.
func (r *runner) overdueAt(now time.Time) time.Time {
	p, _, _, ok := r.f.snapshot()
	r.f.mu.Lock()
	rej := r.f.st.Rejected
	r.f.mu.Unlock()
	if !ok || len(rej.OtherKey)+len(rej.OtherName)+len(rej.Junk) == 0 {
		return time.Time{} // nothing would be reported
	}
	hb := p.Heartbeat
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	at := p.IssuedAt.Add(hb + DefaultStaleGrace + time.Second)
	if !now.Before(at) {
		return time.Time{}
	}
	return at
}

func (r *runner) problemNow(now time.Time) string {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	return r.f.problemLocked(now)
}

func (r *runner) isStale(now time.Time) bool {
	at := r.staleAt()
	return !at.IsZero() && !now.Before(at)
}

func (r *runner) probeEnabled() bool {
	if r.f.o.ProbePort == 0 && r.f.o.ProbeTarget == nil {
		return false
	}
	_, _, _, ok := r.f.snapshot()
	return ok
}

// maybeProbe starts a TCP probe of the server's address when one is due.
func (r *runner) maybeProbe(ctx context.Context, now time.Time) {
	if !r.probeEnabled() || r.probing || now.Before(r.nextProbe) {
		return
	}
	p, _, _, _ := r.f.snapshot()
	target := r.probeTarget(p)
	r.probing = true
	r.f.bg.Add(1)
	go func() {
		defer r.f.bg.Done()
		r.probeRes <- probe(ctx, target)
	}()
}

func (r *runner) probeTarget(p codec.Payload) netip.AddrPort {
	if r.f.o.ProbeTarget != nil {
		return r.f.o.ProbeTarget(p)
	}
	addr := p.IPv4
	if !addr.IsValid() {
		addr = p.IPv6
	}
	return netip.AddrPortFrom(addr, uint16(r.f.o.ProbePort))
}

// probe opens and closes a TCP connection to target.
func probe(ctx context.Context, target netip.AddrPort) error {
	if !target.IsValid() {
		return fmt.Errorf("probe: no address to probe")
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", target.String())
	if err != nil {
		return fmt.Errorf("probe %s: %w", target, err)
	}
	conn.Close()
	return nil
}

func (r *runner) probeDone(err error) {
	f := r.f
	r.probing = false
	r.nextProbe = f.o.Clock.Now().Add(f.o.ProbeEvery)
	switch {
	case err != nil && r.probeErr == nil:
		f.log.Warn("server unreachable; checking the mailbox for a new address", "err", err)
		r.probeErr = err
		r.fetchAsk = true
		r.emit(false, nil)
	case err != nil:
		r.probeErr = err
	case r.probeErr != nil:
		f.log.Info("server reachable again")
		r.probeErr = nil
		r.emit(false, nil)
	}
}

// emit reports the current state to the consumer.
func (r *runner) emit(fetching bool, out *scanOutcome) {
	p, format, received, ok := r.f.snapshot()
	u := Update{
		Payload:    p,
		Previous:   r.previous,
		Format:     format,
		ReceivedAt: received,
		LastCheck:  r.lastCheck,
		Mode:       r.mode,
		Fetching:   fetching,
	}
	if out != nil && out.Accepted {
		u.Changed = out.Changed
	}
	u.Problem = r.problemNow(r.f.o.Clock.Now())
	if u.Problem != r.problem {
		if u.Problem != "" {
			r.f.log.Warn("no current address for this client", "problem", u.Problem)
		} else {
			r.f.log.Info("the problem reported before is solved")
		}
		r.problem = u.Problem
	}
	switch {
	case errors.Is(r.mailErr, ErrSignInNeeded):
		u.State, u.Err, u.SignInNeeded = Error, r.mailErr, true
	case errors.Is(r.mailErr, ErrAuthRefused):
		u.State, u.Err = AuthRefused, r.mailErr
	case r.mailErr != nil:
		u.State, u.Err = Error, r.mailErr
	case !ok:
		u.State = Unknown
	case r.probeErr != nil:
		u.State, u.Err = Unreachable, r.probeErr
	case r.stale:
		u.State = Stale
	default:
		u.State = Current
	}
	r.fetching = fetching
	r.c.Update(u)
}
