package publisher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Recipient problem kinds.
const (
	// ProblemRefused: the mail server refused the recipient at RCPT TO.
	ProblemRefused = "refused"
	// ProblemBounced: a delivery-status report (a bounce) came back for a
	// message sent to the recipient.
	ProblemBounced = "bounced"
)

// RecipientProblem is a recipient of Options.To that did not get the
// newest message while the others did.
type RecipientProblem struct {
	// Addr is the recipient's address.
	Addr string
	// Kind is ProblemRefused or ProblemBounced.
	Kind string
	// Reply is the server's reply or the report's status, e.g.
	// "550 5.1.1 No such user here".
	Reply string
	// Since is when the problem was first seen (it stays while the
	// recipient keeps failing).
	Since time.Time
	// NextRetry is when the newest message is sent to it again (zero: with
	// the next regular message).
	NextRetry time.Time
}

// String returns the line the tray and `check` show, e.g.
// "office-pc3@example.com: refused 550 5.1.1 No such user here since 10:42".
func (r RecipientProblem) String() string {
	return fmt.Sprintf("%s: %s %s since %s", r.Addr, r.Kind, r.Reply, r.Since.Format("15:04"))
}

// rcptState is what the publisher knows of a failing recipient.
type rcptState struct {
	problem  RecipientProblem
	wait     time.Duration // the last wait before a retry
	bounceOf time.Time     // ProblemBounced: when the bounced message was sent
}

// resendable is the last message this process sent, kept to send again to
// a recipient that was refused.
type resendable struct {
	seq uint64
	msg Message
}

// recipientsSent records the outcome of a send of msg at now: every
// recipient the server accepted is well again, every refused one is
// recorded with its next retry. Called with p.mu held.
func (p *Publisher) recipientsSentLocked(msg Message, rerr *RecipientError, now time.Time) {
	delivered := msg.To
	if rerr != nil {
		delivered = rerr.Delivered
	}
	for _, addr := range delivered {
		// Accepted at RCPT TO: a refusal is over. A bounce is not: the
		// provider accepted the bounced message too (see bounced).
		if st, ok := p.rcpts[addr]; ok && st.problem.Kind == ProblemRefused {
			delete(p.rcpts, addr)
			p.log.Info("recipient accepted the message again", "to", addr, "was", st.problem.String())
		}
	}
	if rerr == nil {
		return
	}
	for _, r := range rerr.Refused {
		p.recipientFailedLocked(r.Rcpt, ProblemRefused, r.String(), r.Permanent(), now)
	}
}

// recipientFailedLocked records that addr failed at now (refused or
// bounced) and schedules its retry: a temporary refusal (4xx) waits
// RetryMin, doubling up to RetryMax; a permanent one waits RetryMax,
// doubling up to HeartbeatEvery. Called with p.mu held.
func (p *Publisher) recipientFailedLocked(addr, kind, reply string, permanent bool, now time.Time) {
	if p.rcpts == nil {
		p.rcpts = make(map[string]*rcptState)
	}
	lo, hi := p.opts.RetryMin, p.opts.RetryMax
	if permanent {
		lo, hi = p.opts.RetryMax, max(p.opts.HeartbeatEvery, p.opts.RetryMax)
	}
	st, ok := p.rcpts[addr]
	if !ok {
		st = &rcptState{problem: RecipientProblem{Addr: addr, Since: now}}
		p.rcpts[addr] = st
	}
	st.wait = min(max(st.wait*2, lo), hi)
	st.problem.Kind, st.problem.Reply = kind, reply
	st.problem.NextRetry = now.Add(st.wait)
	p.log.Warn("recipient did not get the message; the others did", "to", addr, "problem", kind,
		"reply", reply, "since", st.problem.Since, "retry_at", st.problem.NextRetry)
}

// recipientProblemsLocked returns the failing recipients sorted by
// address. Called with p.mu held.
func (p *Publisher) recipientProblemsLocked() []RecipientProblem {
	if len(p.rcpts) == 0 {
		return nil
	}
	out := make([]RecipientProblem, 0, len(p.rcpts))
	for _, st := range p.rcpts {
		out = append(out, st.problem)
	}
	slices.SortFunc(out, func(a, b RecipientProblem) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// resendDue returns the failing recipients whose retry has come at now,
// with the message to send them: the last one this process sent, if it is
// still the newest one sent. nil when there is nothing to do.
func (p *Publisher) resendDue(now time.Time) (Message, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil || p.last.seq != p.rec.SentSeq || p.rec.Paused || p.current != p.lastAddrs() {
		return Message{}, nil
	}
	var due []string
	for addr, st := range p.rcpts {
		if st.problem.Kind == ProblemRefused && !now.Before(st.problem.NextRetry) {
			due = append(due, addr)
		}
	}
	slices.Sort(due)
	return p.last.msg, due
}

// lastAddrs returns the address of the last sent message. Called with p.mu
// held.
func (p *Publisher) lastAddrs() Addrs { return Addrs{IPv4: p.rec.IPv4, IPv6: p.rec.IPv6} }

// resendWake returns when the next recipient retry is due (zero: none).
func (p *Publisher) resendWake() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil || p.last.seq != p.rec.SentSeq || p.rec.Paused {
		return time.Time{}
	}
	var wake time.Time
	for _, st := range p.rcpts {
		if st.problem.Kind != ProblemRefused {
			continue
		}
		if wake.IsZero() || st.problem.NextRetry.Before(wake) {
			wake = st.problem.NextRetry
		}
	}
	return wake
}

// resend sends the newest message again to the recipients whose retry has
// come, with a new Message-ID, and records the outcome. It serialises with
// send. tried reports that it logged in to send; err is the error of a
// session that failed as a whole.
func (p *Publisher) resend(ctx context.Context) (tried bool, err error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	msg, due := p.resendDue(p.now())
	if len(due) == 0 {
		return false, nil
	}
	msg.To = due
	msg.MessageID = newMessageID(msg.From)
	err = p.opts.Mailer.Send(ctx, msg)
	if ctx.Err() != nil {
		return false, nil
	}
	now := p.now()
	var rerr *RecipientError
	p.mu.Lock()
	switch {
	case err == nil || errors.As(err, &rerr):
		if errors.Is(p.sendErr, ErrAuthRefused) || errors.Is(p.sendErr, ErrSignInNeeded) {
			p.sendErr = nil // the login works again
		}
		p.recipientsSentLocked(msg, rerr, now)
		if rerr == nil || len(rerr.Delivered) > 0 {
			p.recordSentIDLocked(msg, now)
		}
	default:
		// The session failed as a whole: each recipient waits again.
		for _, addr := range due {
			if st, ok := p.rcpts[addr]; ok && st.problem.Kind == ProblemRefused {
				p.recipientFailedLocked(addr, st.problem.Kind, st.problem.Reply, true, now)
			}
		}
	}
	p.mu.Unlock()
	if err != nil && rerr == nil {
		p.log.Warn("sending again to refused recipients failed", "to", due, "err", err)
		if errors.Is(err, ErrAuthRefused) || errors.Is(err, ErrSignInNeeded) {
			p.sendFailed(fmt.Errorf("send again to refused recipients: %w", err))
		}
	}
	p.changed()
	if rerr != nil {
		return true, nil
	}
	return true, err
}
