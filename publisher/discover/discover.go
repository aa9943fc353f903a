// Package discover finds the host's public IPv4 and IPv6 addresses by asking
// several independent echo services (HTTPS text answers and DNS names that
// echo the asker) in parallel, validating every answer strictly against the
// public-address rule (CheckPublic) and accepting an address only when
// enough independent operators agree and at least one of them answered over
// an authenticated channel (HTTPS, DNS over TLS): anyone on the host's
// network can forge plain DNS, so plain DNS corroborates but never decides.
//
// Services that rate-limit or put up bot walls are benched with a growing
// cooldown while the others carry on. For IPv6 the host's stable address in
// the observed /64 is preferred over the temporary (privacy) address the
// services see. The package does no I/O until Discover or Check is called.
package discover

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Family is an address family.
type Family int

// The two address families.
const (
	V4 Family = 4
	V6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	switch f {
	case V4:
		return "IPv4"
	case V6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// Mode says whether a family is discovered and whether failing is an error.
type Mode string

// The modes. The empty Mode means Auto.
const (
	Auto Mode = "auto" // discover; publish if agreed, warn otherwise
	On   Mode = "on"   // discover; no agreement is an error
	Off  Mode = "off"  // never ask
)

// Defaults used for zero Options fields.
const (
	DefaultAgree         = 2
	defaultSourceTimeout = 5 * time.Second
	defaultTimeout       = 15 * time.Second
)

// ErrNoAgreement is wrapped by Discover's error when a family in mode On
// (or every family asked) gets no address agreed by enough operators.
var ErrNoAgreement = errors.New("no agreed public address")

// Named causes of cancellation, so errors say which limit was hit.
var (
	errSourceTimeout  = errors.New("source timed out")
	errOverallTimeout = errors.New("overall discovery deadline reached")
	errAgreed         = errors.New("agreement already reached")
)

// LocalAddr is an address on one of the host's interfaces. Temporary and
// Deprecated are the kernel's IFA_F_TEMPORARY and IFA_F_DEPRECATED flags;
// both are false where the OS does not tell.
type LocalAddr struct {
	Addr       netip.Addr
	Temporary  bool
	Deprecated bool
}

// Options configures a Discoverer. The zero value asks the default sources
// for both families in Auto mode.
type Options struct {
	// Sources are source specs (see ParseSource); nil = DefaultSources().
	Sources []string
	// Agree is how many distinct operators must report the same address,
	// at least one of them over an authenticated channel; 0 = DefaultAgree
	// (2).
	Agree int
	// IPv4 and IPv6 are the family modes; "" = Auto. Both Off is an error.
	IPv4, IPv6 Mode
	// IPv6Suffix, e.g. "::10", sets the interface id published within the
	// observed /64; "" = prefer the host's stable address in that /64.
	IPv6Suffix string
	// SourceTimeout bounds each source's lookup; 0 = 5s.
	SourceTimeout time.Duration
	// Timeout bounds one whole Discover or Check call; 0 = 15s.
	Timeout time.Duration
	// UserAgent is sent with HTTP requests; "" = UserAgent("dev"). Build it
	// with UserAgent(version).
	UserAgent string
	// HTTPClient is used for all HTTPS sources; nil = per-family clients
	// that force IPv4/IPv6 connections, TLS 1.2+, and ignore proxies.
	HTTPClient *http.Client
	// RootCAs verifies DNS-over-TLS resolvers; nil = the system roots. For
	// tests.
	RootCAs *x509.CertPool
	// Dial opens connections for DNS sources and the default HTTP clients
	// (network "tcp4", "udp6", ...); nil = a net.Dialer. For tests.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Allow relaxes the public-address rule (see CheckPublic) for answers.
	// TESTS AND THE DEMO ONLY: production leaves it 0.
	Allow Exceptions
	// LocalAddrs lists the host's interface addresses for the IPv6 stable
	// address choice; nil = read the host's interfaces.
	LocalAddrs func() ([]LocalAddr, error)
	// Now is the clock for cooldowns; nil = time.Now.
	Now func() time.Time
	// Logger receives disagreements, rejections, timeouts and benching;
	// nil = discard.
	Logger *slog.Logger
}

// Discoverer asks sources for the public addresses. It is safe for
// concurrent use; benching state is shared between calls.
type Discoverer struct {
	sources       map[Family][]Source
	modes         map[Family]Mode
	agree         int
	suffix        netip.Addr // zero = none
	sourceTimeout time.Duration
	timeout       time.Duration
	localAddrs    func() ([]LocalAddr, error)
	now           func() time.Time
	// afterFunc runs f after dur on the clock of the timeouts and returns
	// a func that stops it; time.AfterFunc but for tests.
	afterFunc func(dur time.Duration, f func()) (stop func() bool)
	log       *slog.Logger
	allow     Exceptions

	mu    sync.Mutex
	bench map[benchKey]*benchState
}

// Vote is what one source said during a Discover call.
type Vote struct {
	Source        string        // source name
	Operator      string        // who runs it
	Authenticated bool          // reached over HTTPS or DNS over TLS
	Addr          netip.Addr    // the validated answer; zero when Err != nil
	Err           error         // why there is no answer (timeout, rejected, refused, benched)
	Took          time.Duration // time the lookup took; 0 for benched sources
}

// String formats the vote as "NAME said ADDR" or "NAME: ERROR".
func (v Vote) String() string {
	if v.Err != nil {
		return v.Source + ": " + v.Err.Error()
	}
	return v.Source + " said " + v.Addr.String()
}

// Result is the outcome of Discover. A family that was off or not agreed
// has a zero address.
type Result struct {
	IPv4, IPv6 netip.Addr
	// Votes holds, per family asked, who said what. Sources cancelled
	// because agreement was already reached are not listed.
	Votes map[Family][]Vote
}

// New validates opts, expands presets and returns a Discoverer. It does no
// I/O. Errors name the bad setting or spec. A family whose sources can
// never agree (too few operators, or no authenticated source) is an error
// in mode On and is left out with a warning in mode Auto.
func New(opts Options) (*Discoverer, error) {
	d, err := newDiscoverer(opts)
	if err != nil {
		return nil, err
	}
	specs := opts.Sources
	if specs == nil {
		specs = DefaultSources()
	}
	sopts := SourceOptions{UserAgent: opts.UserAgent, HTTPClient: opts.HTTPClient, RootCAs: opts.RootCAs, Dial: opts.Dial, Allow: opts.Allow}
	d.sources, err = buildSources(specs, d.modes, sopts)
	if err != nil {
		return nil, err
	}
	for _, fam := range []Family{V4, V6} {
		if d.modes[fam] == Off {
			continue
		}
		if why := cannotAgree(d.sources[fam], d.agree); why != "" {
			if d.modes[fam] == On {
				return nil, fmt.Errorf("%s: %s", fam, why)
			}
			d.log.Warn("family cannot reach agreement and will not be asked", "family", fam.String(), "reason", why)
			d.sources[fam] = nil
		}
	}
	if len(d.sources[V4]) == 0 && len(d.sources[V6]) == 0 {
		return nil, fmt.Errorf("no family has sources that can agree (%d operators, one of them authenticated)", d.agree)
	}
	return d, nil
}

// newDiscoverer checks the settings of opts other than the sources and
// fills in the defaults.
func newDiscoverer(opts Options) (*Discoverer, error) {
	d := &Discoverer{
		modes:         map[Family]Mode{},
		agree:         opts.Agree,
		sourceTimeout: opts.SourceTimeout,
		timeout:       opts.Timeout,
		localAddrs:    opts.LocalAddrs,
		now:           opts.Now,
		afterFunc:     func(dur time.Duration, f func()) func() bool { return time.AfterFunc(dur, f).Stop },
		log:           opts.Logger,
		allow:         opts.Allow,
		bench:         map[benchKey]*benchState{},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.localAddrs == nil {
		d.localAddrs = hostLocalAddrs
	}
	switch {
	case d.agree == 0:
		d.agree = DefaultAgree
	case d.agree < 0:
		return nil, fmt.Errorf("agree %d: must be at least 1", opts.Agree)
	}
	if d.sourceTimeout == 0 {
		d.sourceTimeout = defaultSourceTimeout
	}
	if d.timeout == 0 {
		d.timeout = defaultTimeout
	}
	if d.sourceTimeout < 0 || d.timeout < 0 {
		return nil, errors.New("timeouts must not be negative")
	}
	for fam, m := range map[Family]Mode{V4: opts.IPv4, V6: opts.IPv6} {
		switch m {
		case "":
			m = Auto
		case Auto, On, Off:
		default:
			return nil, fmt.Errorf("%s mode %q: want auto, on or off", fam, m)
		}
		d.modes[fam] = m
	}
	if d.modes[V4] == Off && d.modes[V6] == Off {
		return nil, errors.New("IPv4 and IPv6 are both off: nothing to discover")
	}
	if opts.IPv6Suffix != "" {
		s, err := parseSuffix(opts.IPv6Suffix)
		if err != nil {
			return nil, err
		}
		d.suffix = s
	}
	return d, nil
}

// buildSources expands specs into the sources of each family whose mode
// is not Off, in spec order. A spec listed twice, or one that serves none
// of those families, is an error.
func buildSources(specs []string, modes map[Family]Mode, opts SourceOptions) (map[Family][]Source, error) {
	if len(specs) == 0 {
		return nil, errors.New("no sources configured")
	}
	sources := map[Family][]Source{}
	seen := map[string]bool{}
	for _, spec := range specs {
		if seen[spec] {
			return nil, fmt.Errorf("source %q listed twice", spec)
		}
		seen[spec] = true
		n := 0
		for _, fam := range []Family{V4, V6} {
			if modes[fam] == Off {
				continue
			}
			ss, err := ParseSource(spec, fam, opts)
			if err != nil {
				return nil, err
			}
			sources[fam] = append(sources[fam], ss...)
			n += len(ss)
		}
		if n == 0 {
			return nil, fmt.Errorf("source %q serves none of the enabled families", spec)
		}
	}
	return sources, nil
}

// cannotAgree says why sources ss can never agree on an address under the
// rule (agree distinct operators, at least one source authenticated), or
// returns "" when they can.
func cannotAgree(ss []Source, agree int) string {
	if ops := len(operators(ss)); ops < agree {
		return fmt.Sprintf("%d independent operator(s) among the sources, but agree is %d: add sources of other operators or lower agree", ops, agree)
	}
	if !slices.ContainsFunc(ss, Source.Authenticated) {
		return "no authenticated source (https:// or dns+tls://) among the sources, and plain DNS can only corroborate: add one"
	}
	return ""
}

// operators returns the distinct operators of ss.
func operators(ss []Source) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s.Operator()] = true
	}
	return m
}

// withTimeout is context.WithTimeoutCause on the Discoverer's clock.
func (d *Discoverer) withTimeout(ctx context.Context, dur time.Duration, cause error) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := d.afterFunc(dur, func() { cancel(cause) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// Sources returns the sources asked for fam, in configuration order.
func (d *Discoverer) Sources(fam Family) []Source {
	return slices.Clone(d.sources[fam])
}

// Discover asks the sources of every family that is not off, in parallel,
// and returns the agreed addresses. It blocks until each family is agreed
// or its sources are exhausted, or Options.Timeout passes, or ctx ends.
// A family in mode On that is not agreed makes the error wrap
// ErrNoAgreement; so does the case where no family is agreed at all. An
// Auto family that is not agreed is left zero and a warning is logged.
func (d *Discoverer) Discover(ctx context.Context) (Result, error) {
	ctx, cancel := d.withTimeout(ctx, d.timeout, errOverallTimeout)
	defer cancel()

	type famResult struct {
		fam   Family
		addr  netip.Addr
		votes []Vote
	}
	var fams []Family
	for _, fam := range []Family{V4, V6} {
		if len(d.sources[fam]) > 0 {
			fams = append(fams, fam)
		}
	}
	out := make(chan famResult, len(fams))
	for _, fam := range fams {
		go func() {
			a, votes := d.discoverFamily(ctx, fam)
			out <- famResult{fam, a, votes}
		}()
	}
	res := Result{Votes: map[Family][]Vote{}}
	for range fams {
		r := <-out
		res.Votes[r.fam] = r.votes
		switch r.fam {
		case V4:
			res.IPv4 = r.addr
		case V6:
			res.IPv6 = r.addr
		}
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, errOverallTimeout) {
		return res, fmt.Errorf("discover public address: %w", err)
	}

	var errs []error
	for _, fam := range fams {
		a := res.IPv4
		if fam == V6 {
			a = res.IPv6
		}
		if a.IsValid() {
			continue
		}
		if d.modes[fam] == On {
			errs = append(errs, fmt.Errorf("%w for %s (need %d operators, one of them authenticated): %s", ErrNoAgreement, fam, d.agree, describe(res.Votes[fam])))
		} else {
			d.log.Warn("no agreed address; family left out", "family", fam.String(), "agree", d.agree, "votes", describe(res.Votes[fam]))
		}
	}
	if len(errs) == 0 && !res.IPv4.IsValid() && !res.IPv6.IsValid() {
		errs = append(errs, fmt.Errorf("%w for any family", ErrNoAgreement))
	}
	return res, errors.Join(errs...)
}

// describe lists votes for messages.
func describe(votes []Vote) string {
	if len(votes) == 0 {
		return "no source answered"
	}
	parts := make([]string, len(votes))
	for i, v := range votes {
		parts[i] = v.String()
	}
	return strings.Join(parts, "; ")
}

// outcome is one finished lookup.
type outcome struct {
	src  Source
	addr netip.Addr
	err  error
	took time.Duration
}

// tally counts, for one address, who reported it.
type tally struct {
	operators     map[string]bool
	authenticated bool // at least one reporter is authenticated
}

// discoverFamily asks fam's unbenched sources in parallel and returns the
// first address reported by d.agree distinct operators, at least one of
// them over an authenticated channel, and the votes.
func (d *Discoverer) discoverFamily(ctx context.Context, fam Family) (netip.Addr, []Vote) {
	var votes []Vote
	var active []Source
	for _, s := range d.sources[fam] {
		if until, ok := d.benched(s, d.now()); ok {
			votes = append(votes, Vote{Source: s.Name(), Operator: s.Operator(), Authenticated: s.Authenticated(), Err: &benchedError{until}})
			d.log.Debug("source benched, not asked", "source", s.Name(), "family", fam.String(), "until", until)
			continue
		}
		active = append(active, s)
	}
	if why := cannotAgree(active, d.agree); why != "" {
		d.log.Warn("too few sources available to agree", "family", fam.String(), "reason", why)
		return netip.Addr{}, votes
	}

	fctx, fcancel := context.WithCancelCause(ctx)
	defer fcancel(nil)
	results := make(chan outcome, len(active))
	var wg sync.WaitGroup
	for _, s := range active {
		wg.Go(func() { results <- d.lookup(fctx, s) })
	}
	go func() { wg.Wait(); close(results) }()

	tallies := map[netip.Addr]*tally{}
	var winner netip.Addr
	for o := range results {
		if errors.Is(o.err, errAgreed) {
			continue
		}
		auth := o.src.Authenticated()
		votes = append(votes, Vote{Source: o.src.Name(), Operator: o.src.Operator(), Authenticated: auth, Addr: o.addr, Err: o.err, Took: o.took})
		if o.err != nil {
			d.logFailure(o, fam)
			continue
		}
		d.log.Debug("source answered", "source", o.src.Name(), "operator", o.src.Operator(), "authenticated", auth, "family", fam.String(), "said", o.addr.String(), "took", o.took.Round(time.Millisecond))
		t := tallies[o.addr]
		if t == nil {
			t = &tally{operators: map[string]bool{}}
			tallies[o.addr] = t
		}
		t.operators[o.src.Operator()] = true
		t.authenticated = t.authenticated || auth
		if !winner.IsValid() && len(t.operators) >= d.agree && t.authenticated {
			winner = o.addr
			fcancel(errAgreed) // stop the slower sources; keep draining
		}
	}

	if len(tallies) > 1 {
		attrs := []any{"family", fam.String()}
		for _, v := range votes {
			if v.Err == nil {
				attrs = append(attrs, v.Source, v.Addr.String())
			}
		}
		if winner.IsValid() {
			attrs = append(attrs, "agreed", winner.String())
		}
		d.log.Warn("sources disagree", attrs...)
		d.warnPlainContradicts(fam, votes, winner)
	}
	if !winner.IsValid() {
		return netip.Addr{}, votes
	}
	if fam == V6 {
		return d.stableV6(winner), votes
	}
	return winner, votes
}

// warnPlainContradicts logs one warning for each plain (unauthenticated)
// answer that differs from an authenticated one, naming both sources: on a
// network where plain DNS is forged this is the trace of the attack. The
// authenticated source named is one that reported the agreed address, when
// there is one.
func (d *Discoverer) warnPlainContradicts(fam Family, votes []Vote, agreed netip.Addr) {
	for _, plain := range votes {
		if plain.Err != nil || plain.Authenticated {
			continue
		}
		var auth *Vote
		for i, v := range votes {
			if v.Err != nil || !v.Authenticated || v.Addr == plain.Addr {
				continue
			}
			if auth == nil || (v.Addr == agreed && auth.Addr != agreed) {
				auth = &votes[i]
			}
		}
		if auth == nil {
			continue
		}
		d.log.Warn("plain DNS answer contradicts an authenticated source; it may be forged",
			"family", fam.String(),
			"plain_source", plain.Source, "plain_said", plain.Addr.String(),
			"authenticated_source", auth.Source, "authenticated_said", auth.Addr.String())
	}
}

// lookup asks s once under the per-source timeout and records refusals.
func (d *Discoverer) lookup(ctx context.Context, s Source) outcome {
	sctx, cancel := d.withTimeout(ctx, d.sourceTimeout, errSourceTimeout)
	defer cancel()
	start := time.Now()
	a, err := s.Lookup(sctx)
	took := time.Since(start)
	if err != nil {
		var refused *RefusedError
		if cause := context.Cause(sctx); cause != nil && !errors.As(err, &refused) {
			// Whatever the transport said, the reason is the context's:
			// once the time was up, even an answer that still came through
			// (an empty body from a server that saw the connection close)
			// is the timeout's doing.
			err = fmt.Errorf("%w after %s", cause, took.Round(time.Millisecond))
		}
		if errors.As(err, &refused) {
			d.benchSource(s, refused)
		}
		return outcome{src: s, err: err, took: took}
	}
	if a.IsValid() {
		d.clearBench(s)
	}
	if !a.IsValid() || familyOf(a) != s.Family() {
		return outcome{src: s, err: fmt.Errorf("source returned %v for %s", a, s.Family()), took: took}
	}
	return outcome{src: s, addr: a, took: took}
}

// logFailure logs why a source gave no answer.
func (d *Discoverer) logFailure(o outcome, fam Family) {
	attrs := []any{"source", o.src.Name(), "operator", o.src.Operator(), "family", fam.String(), "took", o.took.Round(time.Millisecond)}
	var rej *rejectedError
	var refused *RefusedError
	switch {
	case errors.As(o.err, &rej):
		d.log.Warn("answer rejected", append(attrs, "said", rej.said, "reason", rej.reason)...)
	case errors.As(o.err, &refused):
		d.log.Warn("source refused; benched", append(attrs, "err", refused.Error())...)
	case errors.Is(o.err, errSourceTimeout), errors.Is(o.err, errOverallTimeout):
		d.log.Warn("source timed out", append(attrs, "err", o.err.Error())...)
	default:
		d.log.Warn("source failed", append(attrs, "err", o.err.Error())...)
	}
}

// SourceReport is one line of Check: what one source said when asked once.
type SourceReport struct {
	Name          string
	Operator      string
	Family        Family
	Authenticated bool          // reached over HTTPS or DNS over TLS
	Addr          netip.Addr    // zero when Err != nil
	Err           error         // nil when the source gave a valid answer
	Took          time.Duration // how long the lookup took
}

// Trust says in words how far the source's answers count: "authenticated"
// or "plain DNS, corroborates only".
func (r SourceReport) Trust() string {
	if r.Authenticated {
		return "authenticated"
	}
	return "plain DNS, corroborates only"
}

// String formats the report as one line.
func (r SourceReport) String() string {
	res := r.Addr.String()
	if r.Err != nil {
		res = "error: " + r.Err.Error()
	}
	return fmt.Sprintf("%s %s (%s; %s): %s in %s", r.Family, r.Name, r.Operator, r.Trust(), res, r.Took.Round(time.Millisecond))
}

// Check asks every source of every family once, in parallel, benched or
// not, and reports each answer (raw, before the IPv6 stable-address
// choice). Refusals still bench the source for Discover. It blocks until
// every source has answered or timed out.
func (d *Discoverer) Check(ctx context.Context) []SourceReport {
	ctx, cancel := d.withTimeout(ctx, d.timeout, errOverallTimeout)
	defer cancel()
	var all []Source
	for _, fam := range []Family{V4, V6} {
		all = append(all, d.sources[fam]...)
	}
	reports := make([]SourceReport, len(all))
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() {
			o := d.lookup(ctx, s)
			reports[i] = SourceReport{Name: s.Name(), Operator: s.Operator(), Family: s.Family(), Authenticated: s.Authenticated(), Addr: o.addr, Err: o.err, Took: o.took}
		})
	}
	wg.Wait()
	return reports
}
