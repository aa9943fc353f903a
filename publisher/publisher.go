package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"ipsync/codec"
	"ipsync/mailconn"
)

// Defaults for the zero values of Options.
const (
	DefaultCheckEvery     = 5 * time.Minute
	DefaultHeartbeatEvery = time.Hour
	DefaultRetryMin       = 15 * time.Second
	DefaultRetryMax       = 10 * time.Minute
	DefaultCheckTimeout   = 2 * time.Minute
	DefaultMissingChecks  = 3
)

// stateTimeout bounds one state update, most of it waiting for another
// process that holds the state file's lock.
const stateTimeout = 30 * time.Second

// Errors callers branch on.
var (
	// ErrNoDiscoverer: Run or RunOnce was called without Options.Discoverer.
	ErrNoDiscoverer = errors.New("no address discoverer configured")
	// ErrNoAddress: there is no address to publish yet (no check has
	// succeeded and none was published before).
	ErrNoAddress = errors.New("no public address known yet")
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("publisher loop is already running")
)

// errCheckTimeout is the cause of a check that ran out of CheckTimeout.
var errCheckTimeout = errors.New("address check timed out")

// errStateTimeout is the cause of a state update that ran out of
// stateTimeout.
var errStateTimeout = errors.New("state file update timed out")

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

// Discoverer finds the host's public addresses. It is satisfied by an
// adapter over ipsync/publisher/discover.
type Discoverer interface {
	Discover(ctx context.Context) (Addrs, error)
}

// RetentionOptions turns on mailbox retention: after each successful send
// the publisher deletes its own older messages over IMAP.
type RetentionOptions struct {
	// IMAP is the mailbox server of the From account.
	IMAP mailconn.Endpoint
	// Username logs in to IMAP; "" means Options.Username.
	Username string
	// Password goes with Username; "" means Options.Password. Never logged.
	Password string
	// Mailbox holds the published messages; "" means INBOX.
	Mailbox string
	// KeepMessages is how many of this server's newest messages to keep;
	// 0 means DefaultKeepMessages, a negative value turns retention off.
	KeepMessages int
	// Timeout bounds one retention session; 0 means DefaultRetentionTimeout.
	Timeout time.Duration
}

// Options configures a Publisher. The zero value of each field means its
// default; Name, From and Encode are required, and so is SMTP unless Mailer
// is set, and StatePath unless Store is set.
type Options struct {
	// Name identifies the server; it goes into every payload and the
	// NameHeader header.
	Name string
	// Subject is the neutral subject; "" means "ipsync <Name>". It must
	// never contain the address.
	Subject string
	// From is the account's address: the From header and envelope sender.
	From string
	// To are the recipients, all reached in one SMTP transaction without
	// seeing each other; nil means From alone.
	To []string
	// SMTP is the submission server (see SMTPOptions.Endpoint).
	SMTP mailconn.Endpoint
	// Username and Password log in to SMTP; "" Username means no AUTH.
	// The password is never logged.
	Username string
	Password string
	// SMTPTimeout bounds one SMTP session; 0 means DefaultSMTPTimeout.
	SMTPTimeout time.Duration
	// Mailer replaces the SMTP mailer built from SMTP, Username and
	// Password; nil means that one.
	Mailer Mailer
	// Encode turns a payload into the message body (codec.Seal or
	// codec.Legacy.Encode bound to their keys). Required.
	Encode func(codec.Payload) (string, error)
	// Discoverer finds the public address; nil is allowed only for callers
	// that use PublishAddrs alone.
	Discoverer Discoverer
	// CheckEvery is how often the address is checked; 0 means
	// DefaultCheckEvery.
	CheckEvery time.Duration
	// CheckTimeout bounds one check; 0 means DefaultCheckTimeout, capped
	// at CheckEvery.
	CheckTimeout time.Duration
	// MissingChecks is how many checks in a row may find no address for a
	// family (IPv4 or IPv6) that the current address has before that
	// family is dropped and the address without it published; until then
	// the last known address of that family is kept, so a brief failure
	// (e.g. its sources rate-limited) is not published as a change. A
	// family found with a different address is a change at once, and
	// failed checks neither count nor reset. 0 means DefaultMissingChecks;
	// 1 drops a missing family at the first check that lacks it.
	MissingChecks int
	// IPv4Off and IPv6Off say the family is switched off in the
	// configuration: an address of it (from the state file or an earlier
	// check) is dropped at the next check instead of being held for
	// MissingChecks checks.
	IPv4Off, IPv6Off bool
	// SeqFloor, when set, is the lowest sequence number a message sent at
	// now may carry: each message gets max(previous + 1, SeqFloor(now)).
	// With UnixSeq, a server whose state file was lost (a reinstall, a
	// restore from an old backup) still sends numbers above every one its
	// clients have accepted, instead of starting again at 1 and being
	// ignored. nil means no floor: sequences start at 1.
	SeqFloor func(now time.Time) uint64
	// HeartbeatEvery is how long after the last sent message an unchanged
	// address is published again; 0 means DefaultHeartbeatEvery. It is also
	// how long the publisher waits before trying again after ErrRejected.
	HeartbeatEvery time.Duration
	// RetryMin is the first wait after a failed send; 0 means
	// DefaultRetryMin. Waits double with each failure, with jitter.
	RetryMin time.Duration
	// RetryMax caps the wait between failed sends; 0 means DefaultRetryMax.
	RetryMax time.Duration
	// StatePath is the JSON state file (sequence numbers, last send, pause).
	StatePath string
	// Store replaces the FileStore at StatePath; nil means that one.
	Store Store
	// Retention, when set, prunes this server's old messages over IMAP.
	Retention *RetentionOptions
	// Now returns the current time for timestamps; nil means time.Now.
	// Waits use the time package (testing/synctest drives them in tests).
	Now func() time.Time
	// Rand draws the backoff jitter; nil means the math/rand/v2 global
	// source. Used only by the Run goroutine.
	Rand *rand.Rand
	// Logger receives the publisher's logs; nil discards them.
	Logger *slog.Logger
	// OnStatus, when set, is called with a snapshot after every change of
	// Status. Calls are serialised; the function must return quickly and
	// must not call SetPaused (PublishNow and Status are fine).
	OnStatus func(Status)
}

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
}

// Sent describes one message the mail server accepted.
type Sent struct {
	Addrs    Addrs
	Seq      uint64
	IssuedAt time.Time
}

// Publisher is the server-role loop. Its methods are safe for concurrent
// use; Run runs at most once at a time.
type Publisher struct {
	opts  Options // defaults applied
	to    []string
	mail  Mailer
	store Store
	log   *slog.Logger
	now   func() time.Time

	trigger chan struct{} // PublishNow, coalesced
	wake    chan struct{} // pause switch changed
	running atomic.Bool
	pruning atomic.Bool

	sendMu   sync.Mutex // serialises reserve → send → record
	saveMu   sync.Mutex // orders state saves
	notifyMu sync.Mutex // serialises OnStatus calls, guards reported
	reported Status     // last snapshot handed to OnStatus

	mu         sync.Mutex // guards the fields below
	st         State
	pauseDirty bool   // st.Paused was set here and not saved yet
	current    Addrs  // newest known address, with held families
	missing    [2]int // checks in a row without IPv4, IPv6 while held
	status     Status
	checkErr   error
	checkAt    time.Time
	sendErr    error
	sendAt     time.Time
}

// New validates opts, applies defaults and loads the saved state. It reads
// the state file but does no network I/O.
func New(opts Options) (*Publisher, error) {
	if opts.Name == "" {
		return nil, errors.New("publisher name is empty")
	}
	if opts.Subject == "" {
		opts.Subject = "ipsync " + opts.Name
	}
	from, err := mail.ParseAddress(opts.From)
	if err != nil {
		return nil, fmt.Errorf("from address %q: %w", opts.From, err)
	}
	to := opts.To
	if len(to) == 0 {
		to = []string{from.Address}
	}
	for _, t := range to {
		if _, err := mail.ParseAddress(t); err != nil {
			return nil, fmt.Errorf("recipient address %q: %w", t, err)
		}
	}
	if opts.Encode == nil {
		return nil, errors.New("no message encoder configured")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"check interval", &opts.CheckEvery, DefaultCheckEvery},
		{"check timeout", &opts.CheckTimeout, DefaultCheckTimeout},
		{"heartbeat interval", &opts.HeartbeatEvery, DefaultHeartbeatEvery},
		{"retry minimum", &opts.RetryMin, DefaultRetryMin},
		{"retry maximum", &opts.RetryMax, DefaultRetryMax},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("%s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	opts.CheckTimeout = min(opts.CheckTimeout, opts.CheckEvery)
	if opts.MissingChecks < 0 {
		return nil, fmt.Errorf("missing checks %d is negative", opts.MissingChecks)
	}
	if opts.MissingChecks == 0 {
		opts.MissingChecks = DefaultMissingChecks
	}
	if opts.RetryMax < opts.RetryMin {
		return nil, fmt.Errorf("retry maximum %v is below retry minimum %v", opts.RetryMax, opts.RetryMin)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mailer := opts.Mailer
	if mailer == nil {
		m, err := NewSMTPMailer(SMTPOptions{
			Endpoint: opts.SMTP,
			Username: opts.Username,
			Password: opts.Password,
			Timeout:  opts.SMTPTimeout,
			Logger:   log,
		})
		if err != nil {
			return nil, err
		}
		mailer = m
	}
	if r := opts.Retention; r != nil {
		rc := *r
		if err := rc.IMAP.Validate(); err != nil {
			return nil, fmt.Errorf("retention imap server: %w", err)
		}
		if rc.Mailbox == "" {
			rc.Mailbox = "INBOX"
		}
		if rc.KeepMessages == 0 {
			rc.KeepMessages = DefaultKeepMessages
		}
		if rc.Timeout < 0 {
			return nil, fmt.Errorf("retention timeout %v is negative", rc.Timeout)
		}
		if rc.Timeout == 0 {
			rc.Timeout = DefaultRetentionTimeout
		}
		if rc.Username == "" {
			rc.Username, rc.Password = opts.Username, opts.Password
		}
		if rc.KeepMessages < 0 {
			opts.Retention = nil
		} else {
			opts.Retention = &rc
		}
	}
	store := opts.Store
	if store == nil {
		if opts.StatePath == "" {
			return nil, errors.New("no state file configured")
		}
		store = FileStore{Path: opts.StatePath}
	}
	st, _, err := store.Load()
	if err != nil {
		return nil, fmt.Errorf("%w (fix or remove the file; a new file restarts sequence numbers, "+
			"and clients ignore messages until they pass the last one they accepted)", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	p := &Publisher{
		opts:    opts,
		to:      to,
		mail:    mailer,
		store:   store,
		log:     log,
		now:     now,
		trigger: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		st:      st,
		current: Addrs{IPv4: st.IPv4, IPv6: st.IPv6},
	}
	p.status = p.statusLocked()
	return p, nil
}

// Status returns a snapshot. It does not block on I/O.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Paused reports the pause switch.
func (p *Publisher) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Paused
}

// SetPaused sets the pause switch and saves it in the state file. While
// paused the loop keeps checking the address but sends nothing (not even
// for PublishNow); on resume, a change or overdue heartbeat is sent at
// once. RunOnce and PublishAddrs are explicit commands and ignore it. A
// failed save is logged; the switch still applies and is saved with the
// next state write.
func (p *Publisher) SetPaused(paused bool) {
	p.mu.Lock()
	if p.st.Paused == paused {
		p.mu.Unlock()
		return
	}
	p.st.Paused = paused
	p.pauseDirty = true
	p.mu.Unlock()
	if err := p.save(context.Background(), nil); err != nil {
		p.log.Warn("could not save the pause switch; it applies until restart", "paused", paused, "error", err)
	}
	p.log.Info("pause switch changed", "paused", paused)
	p.changed()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// PublishNow asks the running loop to check the address and publish it at
// once, even if unchanged and during a backoff wait. It never blocks;
// requests made while one is waiting are merged. Without a running loop it
// takes effect when Run starts. While paused it only triggers a check.
func (p *Publisher) PublishNow() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
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
	sent, err := p.publish(ctx, addrs)
	if err != nil {
		return Sent{}, err
	}
	p.prune(ctx)
	return sent, nil
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
	sent, err := p.publish(ctx, addrs)
	if err != nil {
		return Sent{}, err
	}
	p.prune(ctx)
	return sent, nil
}

// CheckSMTP connects to the SMTP server, negotiates TLS, authenticates and
// quits without sending mail (for `ipsync check`). It fails when
// Options.Mailer was replaced by one that cannot be checked.
func (p *Publisher) CheckSMTP(ctx context.Context) error {
	c, ok := p.mail.(interface{ Check(context.Context) error })
	if !ok {
		return fmt.Errorf("mailer %T cannot be checked", p.mail)
	}
	return c.Check(ctx)
}

// Run is the loop: it checks the address at once and then every
// CheckEvery, publishes on change, sends heartbeats, retries failures and
// serves PublishNow and the pause switch. It blocks until ctx ends, then
// waits for a running retention session and returns nil. It returns
// ErrNoDiscoverer without a Discoverer and ErrRunning if already running.
func (p *Publisher) Run(ctx context.Context) error {
	if p.opts.Discoverer == nil {
		return ErrNoDiscoverer
	}
	if !p.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer p.running.Store(false)
	var prunes sync.WaitGroup
	defer prunes.Wait()

	bo := &backoff.ExponentialBackOff{
		InitialInterval:     p.opts.RetryMin,
		RandomizationFactor: 0, // jitter below, from opts.Rand
		Multiplier:          2,
		MaxInterval:         p.opts.RetryMax,
	}
	bo.Reset()
	var (
		nextCheck = p.now()
		forced    bool      // PublishNow: send even if unchanged
		retryAt   time.Time // no attempt before this after a failure
		failed    bool      // the last attempt failed
	)
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
		checkNow := !now.Before(nextCheck)
		select {
		case <-p.trigger:
			checkNow, forced, retryAt = true, true, time.Time{}
		default:
		}
		if checkNow {
			changed, _ := p.check(ctx)
			if ctx.Err() != nil {
				return nil
			}
			now = p.now()
			nextCheck = now.Add(p.opts.CheckEvery)
			if changed {
				// A new address supersedes whatever waits: try at once.
				retryAt = time.Time{}
				bo.Reset()
			}
		}

		p.mu.Lock()
		paused := p.st.Paused
		due := p.dueLocked(now)
		p.mu.Unlock()
		if paused {
			forced = false
		}
		if !paused && (due || forced) && !now.Before(retryAt) {
			_, err := p.publishCurrent(ctx)
			switch {
			case ctx.Err() != nil:
				return nil
			case err == nil:
				forced, failed, retryAt = false, false, time.Time{}
				bo.Reset()
				p.startPrune(ctx, &prunes)
			case errors.Is(err, ErrNoAddress):
				forced = false
			case errors.Is(err, ErrRejected):
				failed, retryAt = true, p.now().Add(p.opts.HeartbeatEvery)
				p.log.Error("mail server refused the message permanently; not retrying until the address "+
					"changes, Publish now, or the next heartbeat time", "retry_at", retryAt, "error", err)
			default:
				failed = true
				retryAt = p.now().Add(p.jitter(bo.NextBackOff()))
				p.log.Warn("publishing failed; will retry", "retry_at", retryAt, "error", err)
			}
		}

		// Sleep until the next check, retry or heartbeat.
		p.mu.Lock()
		paused = p.st.Paused
		due = p.dueLocked(p.now())
		pending := failed && (due || forced) && !paused
		wakeAt := nextCheck
		switch {
		case paused:
		case pending:
			wakeAt = earliest(wakeAt, retryAt)
		case due || forced:
			wakeAt = p.now()
		case p.st.SentSeq != 0:
			wakeAt = earliest(wakeAt, p.heartbeatLocked())
		}
		p.status.NextCheck = nextCheck
		p.status.Pending = pending
		p.status.NextRetry = time.Time{}
		if pending {
			p.status.NextRetry = retryAt
		}
		p.mu.Unlock()
		p.changed()

		timer.Reset(wakeAt.Sub(p.now()))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.trigger:
			forced, retryAt = true, time.Time{}
			nextCheck = p.now() // check first, then publish
			timer.Stop()
		case <-p.wake:
			timer.Stop()
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// jitter spreads d over [d/2, 3d/2), capped at RetryMax.
func (p *Publisher) jitter(d time.Duration) time.Duration {
	f := rand.Float64
	if p.opts.Rand != nil {
		f = p.opts.Rand.Float64
	}
	return min(time.Duration(float64(d)*(0.5+f())), p.opts.RetryMax)
}

// dueLocked reports whether the schedule calls for a message at now: an
// address is known and it was never sent, differs from the last one sent,
// or the heartbeat time has come.
func (p *Publisher) dueLocked(now time.Time) bool {
	if p.current.IsZero() {
		return false
	}
	if p.st.SentSeq == 0 || p.current != (Addrs{IPv4: p.st.IPv4, IPv6: p.st.IPv6}) {
		return true
	}
	return !now.Before(p.heartbeatLocked())
}

// heartbeatLocked returns when the next heartbeat is due (zero if nothing
// was sent yet). A last-sent time in the future (clock moved back) makes
// it due at once.
func (p *Publisher) heartbeatLocked() time.Time {
	if p.st.SentSeq == 0 {
		return time.Time{}
	}
	if now := p.now(); p.st.SentAt.After(now) {
		return now
	}
	return p.st.SentAt.Add(p.opts.HeartbeatEvery)
}

// check asks the discoverer and records the result; changed reports a new
// address.
func (p *Publisher) check(ctx context.Context) (changed bool, err error) {
	return p.checkOnce(ctx, true)
}

// checkOnce is check; hold says whether a family missing from this check
// is held (the loop) or dropped at once (RunOnce).
func (p *Publisher) checkOnce(ctx context.Context, hold bool) (changed bool, err error) {
	if p.opts.Discoverer == nil {
		return false, ErrNoDiscoverer
	}
	cctx, cancel := context.WithTimeoutCause(ctx, p.opts.CheckTimeout, errCheckTimeout)
	addrs, err := p.opts.Discoverer.Discover(cctx)
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
			p.log.Warn("address check failed", "error", err)
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

// publish reserves a sequence number on disk, sends one message and
// records it. Without a durable reservation nothing is sent.
func (p *Publisher) publish(ctx context.Context, addrs Addrs) (Sent, error) {
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
	if err := p.save(ctx, func(st *State) { st.Seq = max(st.Seq+1, floor); seq = st.Seq }); err != nil {
		if seq == 0 {
			return Sent{}, p.sendFailed(fmt.Errorf("reserve sequence number: %w", err))
		}
		return Sent{}, p.sendFailed(fmt.Errorf("reserve sequence number %d: %w", seq, err))
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
		return Sent{}, p.sendFailed(fmt.Errorf("encode message %d: %w", seq, err))
	}
	msg := Message{
		From:    p.opts.From,
		To:      p.to,
		Subject: p.opts.Subject,
		Name:    p.opts.Name,
		Body:    body,
		Date:    issued,
	}
	if err := p.mail.Send(ctx, msg); err != nil {
		return Sent{}, p.sendFailed(fmt.Errorf("publish message %d: %w", seq, err))
	}

	p.mu.Lock()
	if seq > p.st.SentSeq { // else another process sent a newer one meanwhile
		p.st.SentSeq = seq
		p.st.SentAt = issued
		p.st.IPv4, p.st.IPv6 = addrs.IPv4, addrs.IPv6
	}
	p.sendErr = nil
	p.mu.Unlock()
	p.log.Info("published", "addrs", addrs.String(), "seq", seq, "recipients", len(p.to))
	// Record it even if ctx has just ended (shutdown right after sending).
	if err := p.save(context.WithoutCancel(ctx), nil); err != nil {
		// The message went out; only its record is late. The next save
		// carries it, and meanwhile the reserved number protects reuse.
		p.log.Warn("could not record the sent message in the state file", "seq", seq, "error", err)
	}
	p.changed()
	return Sent{Addrs: addrs, Seq: seq, IssuedAt: issued}, nil
}

// sendFailed records err as the outstanding send error and returns it.
func (p *Publisher) sendFailed(err error) error {
	p.mu.Lock()
	p.sendErr, p.sendAt = err, p.now()
	p.mu.Unlock()
	p.changed()
	return err
}

// save updates the saved state: under the Store's exclusion it merges this
// process's state with the saved one (see merge), applies change if set,
// keeps the result in memory and saves it. The in-memory state keeps the
// result even when saving fails, so a reservation made by change is never
// handed out twice. Saves in this process are ordered.
func (p *Publisher) save(ctx context.Context, change func(*State)) error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	ctx, cancel := context.WithTimeoutCause(ctx, stateTimeout, errStateTimeout)
	defer cancel()
	var wrotePause bool
	saved, err := p.store.Update(ctx, func(disk State, found bool) State {
		p.mu.Lock()
		defer p.mu.Unlock()
		st := p.st
		if found {
			st = merge(st, disk, p.pauseDirty)
		}
		if change != nil {
			change(&st)
		}
		p.st = st
		wrotePause = p.pauseDirty
		return st
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	if wrotePause && p.st.Paused == saved.Paused {
		p.pauseDirty = false
	}
	p.mu.Unlock()
	return nil
}

// changed refreshes the status snapshot and hands it to OnStatus if it
// differs from the last one handed over.
func (p *Publisher) changed() {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	p.mu.Lock()
	p.status = p.statusLocked()
	s := p.status
	p.mu.Unlock()
	if p.opts.OnStatus != nil && !sameStatus(p.reported, s) {
		p.reported = s
		p.opts.OnStatus(s)
	}
}

// statusLocked builds the status from the publisher's fields, keeping the
// loop's schedule fields.
func (p *Publisher) statusLocked() Status {
	s := p.status
	s.Addrs = p.current
	s.LastSent = p.st.SentAt
	s.LastSeq = p.st.SentSeq
	s.SentAddrs = Addrs{IPv4: p.st.IPv4, IPv6: p.st.IPv6}
	s.Paused = p.st.Paused
	s.NextHeartbeat = time.Time{}
	if s.Paused {
		s.Pending, s.NextRetry = false, time.Time{}
	} else if p.st.SentSeq != 0 {
		s.NextHeartbeat = p.heartbeatLocked()
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
	a.LastError, b.LastError = nil, nil
	if a != b || (ae == nil) != (be == nil) {
		return false
	}
	return ae == nil || ae.Error() == be.Error()
}
