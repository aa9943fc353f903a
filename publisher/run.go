package publisher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"ipsync/mailconn"
)

// errCheckTimeout is the cause of a check that ran out of CheckTimeout.
var errCheckTimeout = errors.New("address check timed out")

// Run is the loop: it checks the address at once and then every
// CheckEvery, publishes on change, sends heartbeats, retries failures and
// serves PublishNow and the pause switch (see schedule). It blocks until
// ctx ends, then waits for a running retention session and a background
// save of the pause switch, and returns nil. It returns ErrNoFinder without
// a Finder and ErrRunning if already running.
func (p *Publisher) Run(ctx context.Context) error {
	if p.opts.Finder == nil {
		return ErrNoFinder
	}
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	defer p.waitPauseSaved()
	var prunes sync.WaitGroup
	defer prunes.Wait()

	s := newSchedule(p.opts, p.now())
	var bounceCheck time.Time // a retention session to look for bounces
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	timer.Stop()
	defer func() {
		p.mu.Lock()
		p.status.NextCheck, p.status.Pending, p.status.NextRetry = time.Time{}, false, time.Time{}
		p.mu.Unlock()
		p.changed()
	}()

	for {
		now := p.now()
		select {
		case <-p.trigger:
			s.publishNow(now)
		default:
		}
		if s.checkDue(now) {
			p.adoptSaved()
			changed, _ := p.check(ctx)
			if ctx.Err() != nil {
				return nil
			}
			now = p.now()
			s.checked(now, changed)
		}
		if s.sendDue(now, p.sendState()) {
			if p.attempt(ctx, s, &prunes) && p.opts.Pruner != nil {
				bounceCheck = p.now().Add(bounceCheckAfter)
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		if !bounceCheck.IsZero() && !p.now().Before(bounceCheck) {
			bounceCheck = time.Time{}
			p.startPrune(ctx, &prunes)
		}
		if !s.auth.blocked(p.now()) {
			// Refused recipients whose retry has come.
			switch tried, err := p.resend(ctx); {
			case errors.Is(err, ErrAuthRefused), errors.Is(err, ErrSignInNeeded):
				s.sent(p.now(), err, p.draw)
			case tried && err == nil:
				s.auth.reset() // the login works
			}
			if ctx.Err() != nil {
				return nil
			}
		}

		wake := p.plan(s)
		if !bounceCheck.IsZero() {
			wake = earliest(wake, bounceCheck)
		}
		timer.Reset(wake.Sub(p.now()))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.trigger:
			s.publishNow(p.now()) // check first, then publish
			timer.Stop()
		case <-p.wake:
			timer.Stop()
		}
	}
}

// bounceCheckAfter is how long after a send retention runs again to look
// for bounces of that message, which usually come back within minutes.
const bounceCheckAfter = 10 * time.Minute

// attempt publishes the newest known address and records the outcome in s
// (unless ctx has ended); after a successful send it starts retention,
// tracked by prunes, and reports true.
func (p *Publisher) attempt(ctx context.Context, s *schedule, prunes *sync.WaitGroup) (sent bool) {
	_, err := p.publishCurrent(ctx)
	if ctx.Err() != nil {
		return false
	}
	wasSignIn := s.signIn
	s.sent(p.now(), err, p.draw)
	switch {
	case err == nil:
		p.startPrune(ctx, prunes)
	case errors.Is(err, ErrNoAddress):
	case errors.Is(err, ErrSignInNeeded):
		if !wasSignIn {
			p.log.Error("sign-in needed: the mail provider no longer accepts the stored sign-in; not logging in until you run `ipsync login` "+
				"(or Sign in… in the tray); a new sign-in is noticed within minutes, Publish now looks at once", "err", err)
		}
	case errors.Is(err, mailconn.ErrTokenRefused):
		p.log.Error("mail server refused the OAuth2 access token, a refreshed one too; not logging in again before retry_at "+
			"(check the app's mail scopes in mail.oauth2 and that the mailbox allows SMTP AUTH; Publish now tries at once)",
			"retry_at", s.auth.until, "err", err)
	case errors.Is(err, ErrAuthRefused):
		p.log.Error("mail server refused the password; not logging in again before retry_at "+
			"(the wait grows to hours so the account is not locked; Publish now tries at once)",
			"retry_at", s.auth.until, "err", err)
	case errors.Is(err, ErrRejected):
		p.log.Error("mail server refused the message permanently; not retrying until the address "+
			"changes, Publish now, or the next heartbeat time", "retry_at", s.retryAt, "err", err)
	default:
		p.log.Warn("publishing failed; will retry", "retry_at", s.retryAt, "err", err)
	}
	return err == nil
}

// plan shows s in the status and returns when the loop wakes up next.
func (p *Publisher) plan(s *schedule) (wake time.Time) {
	p.mu.Lock()
	wake, pending := s.next(p.now(), p.sendStateLocked())
	p.mu.Unlock()
	if r := p.resendWake(); !r.IsZero() {
		wake = earliest(wake, r)
	}
	p.mu.Lock()
	p.status.NextCheck = s.nextCheck
	p.status.Pending = pending
	p.status.NextRetry = time.Time{}
	p.authUntil = s.auth.until
	if pending {
		p.status.NextRetry = later(s.retryAt, s.auth.until)
	}
	p.mu.Unlock()
	p.changed()
	return wake
}

// sendState returns what the schedule needs to know of p.
func (p *Publisher) sendState() sendState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sendStateLocked()
}

func (p *Publisher) sendStateLocked() sendState {
	return sendState{
		addrs:   p.current,
		sent:    Addrs{IPv4: p.rec.IPv4, IPv6: p.rec.IPv6},
		sentSeq: p.rec.SentSeq,
		sentAt:  p.rec.SentAt,
		paused:  p.rec.Paused,
	}
}

// draw returns a uniform number in [0, 1) from Options.Rand.
func (p *Publisher) draw() float64 {
	if p.opts.Rand != nil {
		return p.opts.Rand.Float64()
	}
	return rand.Float64()
}

// PublishNow asks the running loop to check the address and publish it at
// once, even if unchanged and during a backoff wait. It never blocks;
// requests made while one is waiting are merged. Without a running loop it
// takes effect when Run starts. While paused it only triggers a check.
func (p *Publisher) PublishNow() {
	p.mu.Lock()
	p.pruneAuth.reset() // the user asks: try the retention login again too
	p.mu.Unlock()
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// SetPaused sets the pause switch. While paused the loop keeps checking the
// address but sends nothing (not even for PublishNow); on resume, a change
// or overdue heartbeat is sent at once. RunOnce and PublishAddrs are
// explicit commands and ignore it.
//
// SetPaused does no I/O and returns at once (the tray calls it on its event
// goroutine). The switch applies at once and is saved to the Store in the
// background, one save after another, so that the saved switch ends as the
// one last set; Run waits for that save before it returns. A failed save is
// logged; the switch still applies and is saved with the next state write.
func (p *Publisher) SetPaused(paused bool) {
	p.mu.Lock()
	if p.rec.Paused == paused {
		p.mu.Unlock()
		return
	}
	p.rec.Paused = paused
	p.pauseDirty = true
	start := p.pauseSaving == nil
	if start {
		p.pauseSaving = make(chan struct{})
	}
	p.mu.Unlock()
	if start {
		go p.savePause()
	}
	p.log.Info("pause switch changed", "paused", paused)
	p.changed()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// savePause saves the state until the saved pause switch is the one last
// set, or a save fails.
func (p *Publisher) savePause() {
	for {
		err := p.save(context.Background(), nil)
		p.mu.Lock()
		if err == nil && p.pauseDirty {
			p.mu.Unlock() // SetPaused changed it again during the save
			continue
		}
		done, paused := p.pauseSaving, p.rec.Paused
		p.pauseSaving = nil
		p.mu.Unlock()
		close(done)
		if err != nil {
			p.log.Warn("could not save the pause switch; it applies until restart", "paused", paused, "err", err)
		}
		return
	}
}

// waitPauseSaved waits for a background save of the pause switch, if one
// runs.
func (p *Publisher) waitPauseSaved() {
	p.mu.Lock()
	done := p.pauseSaving
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// adoptSaved reads the state file and adopts a newer message sent by
// another process sharing it (a one-off `ipsync publish --once --ip X`
// beside the service). The check that follows then finds the true address;
// when it differs from what that message carried, it is due at once and
// published with a higher sequence number, so a manual test message is
// corrected within one check interval. A failed read is logged; the loop
// goes on with what it knows.
func (p *Publisher) adoptSaved() {
	saved, found, err := p.opts.Store.Load()
	if err != nil {
		p.log.Warn("could not read the state file to look for messages sent by another process", "err", err)
		return
	}
	if !found {
		return
	}
	p.mu.Lock()
	newer := saved.SentSeq > p.rec.SentSeq
	p.rec = merge(p.rec, saved, p.pauseDirty, p.now())
	p.mu.Unlock()
	if newer {
		p.log.Info("another process published a message; checking the address and publishing the true one if it differs",
			"seq", saved.SentSeq, "addrs", Addrs{IPv4: saved.IPv4, IPv6: saved.IPv6}.String())
		p.changed()
	}
}

// check asks the Finder and records the result; changed reports a new
// address.
func (p *Publisher) check(ctx context.Context) (changed bool, err error) {
	return p.checkOnce(ctx, true)
}

// checkOnce is check; hold says whether a family missing from this check
// is held (the loop) or dropped at once (RunOnce).
func (p *Publisher) checkOnce(ctx context.Context, hold bool) (changed bool, err error) {
	if p.opts.Finder == nil {
		return false, ErrNoFinder
	}
	cctx, cancel := context.WithTimeoutCause(ctx, p.opts.CheckTimeout, errCheckTimeout)
	addrs, err := p.opts.Finder.Find(cctx)
	if err == nil {
		addrs, err = addrs.validate()
	} else if errors.Is(context.Cause(cctx), errCheckTimeout) {
		err = fmt.Errorf("%w (%w)", errCheckTimeout, err)
	}
	cancel()
	now := p.now()

	p.mu.Lock()
	p.status.LastCheck = now
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: not a failure worth showing.
		err = fmt.Errorf("check public address: %w", err)
	case err != nil:
		err = fmt.Errorf("check public address: %w", err)
		p.checkErr, p.checkAt = err, now
	default:
		p.checkErr = nil
		if hold {
			addrs = p.holdMissingLocked(addrs)
		}
		changed = addrs != p.current
		old := p.current
		p.current = addrs
		if changed {
			p.log.Info("public address changed", "old", old.String(), "new", addrs.String())
		}
	}
	p.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("address check failed", "err", err)
		}
	} else {
		p.log.Debug("address checked", "addrs", addrs.String())
	}
	p.changed()
	return changed, err
}

// holdMissingLocked returns found with each family that it lacks but the
// current address has filled in from the current address, until that
// family has been missing for MissingChecks checks in a row.
func (p *Publisher) holdMissingLocked(found Addrs) Addrs {
	for i, f := range []struct {
		name  string
		found *netip.Addr
		cur   netip.Addr
		off   bool
	}{
		{"ipv4", &found.IPv4, p.current.IPv4, p.opts.IPv4Off},
		{"ipv6", &found.IPv6, p.current.IPv6, p.opts.IPv6Off},
	} {
		switch {
		case f.found.IsValid() || !f.cur.IsValid() || f.off:
			p.missing[i] = 0
		case p.missing[i]+1 < p.opts.MissingChecks:
			p.missing[i]++
			*f.found = f.cur
			p.log.Info("no "+f.name+" address found in this check; keeping the last known one",
				"addr", f.cur.String(), "missing_checks", p.missing[i], "limit", p.opts.MissingChecks)
		default:
			p.missing[i] = 0
			p.log.Warn("no "+f.name+" address found for several checks in a row; dropping it",
				"last", f.cur.String(), "missing_checks", p.opts.MissingChecks)
		}
	}
	return found
}
