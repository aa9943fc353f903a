package publisher

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"ipsync/codec"
)

// Addrs is a server's public address pair. The zero Addr means none for
// that family.
type Addrs struct {
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// IsZero reports whether a holds no address at all.
func (a Addrs) IsZero() bool { return !a.IPv4.IsValid() && !a.IPv6.IsValid() }

// String returns the addresses for logs, e.g. "203.0.113.7 2001:db8::7",
// or "none".
func (a Addrs) String() string {
	switch {
	case a.IsZero():
		return "none"
	case !a.IPv6.IsValid():
		return a.IPv4.String()
	case !a.IPv4.IsValid():
		return a.IPv6.String()
	}
	return a.IPv4.String() + " " + a.IPv6.String()
}

// validate checks that IPv4 holds an IPv4 address and IPv6 an IPv6 one
// (4in6 forms are unmapped first) and that at least one is set.
func (a Addrs) validate() (Addrs, error) {
	if a.IPv4.IsValid() {
		a.IPv4 = a.IPv4.Unmap()
		if !a.IPv4.Is4() {
			return Addrs{}, fmt.Errorf("ipv4 address %s is not IPv4", a.IPv4)
		}
	}
	if a.IPv6.IsValid() && (!a.IPv6.Is6() || a.IPv6.Is4In6()) {
		return Addrs{}, fmt.Errorf("ipv6 address %s is not IPv6", a.IPv6)
	}
	if a.IsZero() {
		return Addrs{}, errors.New("no address given")
	}
	return a, nil
}

// Sent describes one message the mail server accepted.
type Sent struct {
	Addrs    Addrs
	Seq      uint64
	IssuedAt time.Time
	// To are the recipients the server accepted; Refused the ones it
	// refused (the message went to the others).
	To      []string
	Refused []Refusal
}

// RunOnce checks the address and publishes it now, once, ignoring the
// pause switch and the schedule (for `ipsync publish --once`). It does not
// retry: the error says what failed. It publishes what this check found:
// a one-off run has no earlier checks to tell a brief failure from a family
// that is gone (Options.MissingChecks is for the loop), and holding a
// family in every run would keep it forever. Retention, if configured,
// runs after a successful send; its failure is only logged.
func (p *Publisher) RunOnce(ctx context.Context) (Sent, error) {
	if _, err := p.checkOnce(ctx, false); err != nil {
		return Sent{}, err
	}
	p.mu.Lock()
	addrs := p.current
	p.mu.Unlock()
	return p.publishOnce(ctx, addrs)
}

// PublishAddrs publishes addrs now without detection (for `ipsync publish
// --ip`), ignoring the pause switch; addrs becomes the newest known address.
// It does not retry. Retention runs after a successful send, as in RunOnce.
func (p *Publisher) PublishAddrs(ctx context.Context, addrs Addrs) (Sent, error) {
	addrs, err := addrs.validate()
	if err != nil {
		return Sent{}, fmt.Errorf("publish address: %w", err)
	}
	p.mu.Lock()
	p.current = addrs
	p.missing = [2]int{}
	p.mu.Unlock()
	return p.publishOnce(ctx, addrs)
}

// publishOnce is the end of the one-off commands: publish addrs, then run
// retention in the foreground.
func (p *Publisher) publishOnce(ctx context.Context, addrs Addrs) (Sent, error) {
	sent, err := p.publish(ctx, addrs)
	if err != nil {
		return Sent{}, err
	}
	p.prune(ctx)
	return sent, nil
}

// publishCurrent publishes the newest known address.
func (p *Publisher) publishCurrent(ctx context.Context) (Sent, error) {
	p.mu.Lock()
	addrs := p.current
	p.mu.Unlock()
	if addrs.IsZero() {
		return Sent{}, ErrNoAddress
	}
	return p.publish(ctx, addrs)
}

// UnixSeq is a SeqFloor: the Unix time in seconds. A server sends far fewer
// than one message a second, so numbers drawn this way stay ahead of any
// earlier run's, even one that started counting from the clock long ago.
func UnixSeq(now time.Time) uint64 { return uint64(max(now.Unix(), 0)) }

// publish sends one message with addrs (see send) and then reports the
// new status, with no lock held.
func (p *Publisher) publish(ctx context.Context, addrs Addrs) (Sent, error) {
	sent, err := p.send(ctx, addrs)
	p.changed()
	return sent, err
}

// send reserves a sequence number in the Store, sends one message and
// records it. Without a durable reservation nothing is sent. Sends are
// serialised.
func (p *Publisher) send(ctx context.Context, addrs Addrs) (Sent, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()

	// The number follows the highest one reserved by this process or by
	// any other sharing the state. A failed save leaves it burnt in
	// memory: the next attempt reserves the one after, so a number that
	// may be on disk is never sent twice.
	var seq uint64
	floor := uint64(0)
	if p.opts.SeqFloor != nil {
		floor = p.opts.SeqFloor(p.now())
	}
	if err := p.save(ctx, func(r *Record) { r.Seq = max(r.Seq+1, floor); seq = r.Seq }); err != nil {
		if seq == 0 {
			return Sent{}, p.sendFailed(fmt.Errorf("reserve sequence number: %w", err))
		}
		return Sent{}, p.sendFailed(fmt.Errorf("reserve sequence number: %w (seq %d)", err, seq))
	}

	issued := p.now()
	payload := codec.Payload{
		Name:      p.opts.Name,
		IPv4:      addrs.IPv4,
		IPv6:      addrs.IPv6,
		Seq:       seq,
		IssuedAt:  issued.UTC(),
		Heartbeat: p.opts.HeartbeatEvery,
	}
	body, err := p.opts.Encode(payload)
	if err != nil {
		return Sent{}, p.sendFailed(fmt.Errorf("encode the message: %w (seq %d)", err, seq))
	}
	msg := Message{
		From:      p.opts.From,
		To:        p.opts.To,
		Subject:   p.opts.Subject,
		Name:      p.opts.Name,
		Body:      body,
		Date:      issued,
		MessageID: newMessageID(p.opts.From),
	}
	// A refused recipient does not fail the message: it went to the
	// others (see RecipientError), and the refused ones are retried on
	// their own.
	err = p.opts.Mailer.Send(ctx, msg)
	var rerr *RecipientError
	if errors.As(err, &rerr) && len(rerr.Delivered) == 0 {
		p.mu.Lock()
		p.recipientsSentLocked(msg, rerr, p.now())
		p.mu.Unlock()
		rerr = nil
	}
	if err != nil && rerr == nil {
		// What failed and its fix lead (Mailer errors say both); the
		// number, which a failed message leaves unused, comes last.
		return Sent{}, p.sendFailed(fmt.Errorf("%w (message seq %d)", err, seq))
	}

	p.mu.Lock()
	if seq > p.rec.SentSeq { // else another process sent a newer one meanwhile
		p.rec.SentSeq = seq
		p.rec.SentAt = issued
		p.rec.IPv4, p.rec.IPv6 = addrs.IPv4, addrs.IPv6
	}
	p.last = &resendable{seq: seq, msg: msg}
	p.recipientsSentLocked(msg, rerr, p.now())
	p.recordSentIDLocked(msg, issued)
	p.sendErr = nil
	p.mu.Unlock()
	out := Sent{Addrs: addrs, Seq: seq, IssuedAt: issued, To: msg.To}
	if rerr != nil {
		out.To, out.Refused = rerr.Delivered, rerr.Refused
	}
	p.log.Info("published", "addrs", addrs.String(), "seq", seq, "recipients", len(out.To), "refused", len(out.Refused))
	// Record it even if ctx has just ended (shutdown right after sending).
	if err := p.save(context.WithoutCancel(ctx), nil); err != nil {
		// The message went out; only its record is late. The next save
		// carries it, and meanwhile the reserved number protects reuse.
		p.log.Warn("could not record the sent message in the state file", "seq", seq, "err", err)
	}
	return out, nil
}

// sendFailed records err as the outstanding send error and returns it.
func (p *Publisher) sendFailed(err error) error {
	p.mu.Lock()
	p.sendErr, p.sendAt = err, p.now()
	p.mu.Unlock()
	return err
}
