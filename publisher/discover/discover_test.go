package discover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	pub4 = netip.MustParseAddr("8.8.4.4")
	pub6 = netip.MustParseAddr("2001:4860:4860::8844")
)

func TestDiscoverAgreement(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ua atomic.Value
	a := f.https("a.test", func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.UserAgent())
		fmt.Fprint(w, "8.8.4.4\n")
	})
	b := f.https("b.test", text("  8.8.4.4  "))
	d := f.discoverer(f.options(a, b))
	res, err := f.discover(d)
	if err != nil {
		t.Fatalf("Discover() error = %v", err)
	}
	if res.IPv4 != pub4 || res.IPv6.IsValid() {
		t.Errorf("Discover() = %v, %v, want %v, invalid", res.IPv4, res.IPv6, pub4)
	}
	if got := len(res.Votes[V4]); got != 2 {
		t.Errorf("len(Votes[V4]) = %d, want 2", got)
	}
	if got, want := ua.Load(), "ipsync/1.2.3 (public address check; "+runtime.GOOS+")"; got != want {
		t.Errorf("User-Agent = %v, want %q", got, want)
	}
}

func TestDiscoverDisagreement(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.https("a.test", text("8.8.4.4"))
	b := f.https("b.test", text("9.9.9.9"))
	d := f.discoverer(f.options(a, b))
	res, err := f.discover(d)
	if !errors.Is(err, ErrNoAgreement) {
		t.Fatalf("Discover() error = %v, want ErrNoAgreement", err)
	}
	for _, want := range []string{"IPv4", a + " said 8.8.4.4", b + " said 9.9.9.9"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Discover() error = %q, want it to contain %q", err, want)
		}
	}
	if res.IPv4.IsValid() {
		t.Errorf("Discover().IPv4 = %v, want invalid", res.IPv4)
	}
	recs := f.logs.find("sources disagree")
	if len(recs) != 1 {
		t.Fatalf("%d 'sources disagree' records, want 1", len(recs))
	}
	if got := recs[0].attrs; got[a] != "8.8.4.4" || got[b] != "9.9.9.9" {
		t.Errorf("'sources disagree' attrs = %v, want %s=8.8.4.4 and %s=9.9.9.9", got, a, b)
	}
}

func TestDiscoverAutoNoAgreementWarns(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.https("a.test", text("8.8.4.4"))
	b := f.https("b.test", text("9.9.9.9"))
	c := f.https("c.test", text("2001:4860:4860::8844"))
	d2 := f.https("d.test", text("2001:4860:4860::8844"))
	o := f.options(a, b, c, d2)
	o.IPv4, o.IPv6 = Auto, Auto
	res, err := f.discover(f.discoverer(o))
	if err != nil {
		t.Fatalf("Discover() error = %v, want nil (IPv4 is auto)", err)
	}
	if res.IPv4.IsValid() || res.IPv6 != pub6 {
		t.Errorf("Discover() = %v, %v, want invalid, %v", res.IPv4, res.IPv6, pub6)
	}
	if len(f.logs.find("no agreed address; family left out")) != 1 {
		t.Errorf("no warning about the unagreed IPv4 family")
	}
}

func TestDiscoverOneSourceLying(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	liar := f.https("liar.test", text("1.0.0.1"))
	// The honest sources answer only after the liar's answer was counted.
	a := f.https("a.test", f.after("source answered", "https://liar.test:"+port(liar)+"/", "8.8.4.4"))
	b := f.https("b.test", f.after("source answered", "https://liar.test:"+port(liar)+"/", "8.8.4.4"))
	res, err := f.discover(f.discoverer(f.options(liar, a, b)))
	if err != nil {
		t.Fatalf("Discover() error = %v", err)
	}
	if res.IPv4 != pub4 {
		t.Errorf("Discover().IPv4 = %v, want %v", res.IPv4, pub4)
	}
	recs := f.logs.find("sources disagree")
	if len(recs) != 1 || recs[0].attrs[liar] != "1.0.0.1" || recs[0].attrs["agreed"] != "8.8.4.4" {
		t.Errorf("'sources disagree' records = %v, want one naming %s=1.0.0.1, agreed=8.8.4.4", recs, liar)
	}
}

// port returns the port of a spec URL.
func port(spec string) string {
	s := strings.TrimSuffix(spec, "/")
	return s[strings.LastIndex(s, ":")+1:]
}

// TestDiscoverSourceTimeout: the per-source timeout ends a hanging source
// and only it. Timeouts run on the fixture's clock, so a loaded machine
// that makes healthy sources slow cannot time them out too.
func TestDiscoverSourceTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hang, asked := f.block()
	slow := f.https("slow.test", hang)
	a := f.https("a.test", text("8.8.4.4"))
	b := f.https("b.test", text("8.8.4.4"))
	liar := f.https("liar.test", text("9.9.9.9"))

	// a and liar cannot agree: only the per-source timeout ends the slow
	// source, long before the overall deadline.
	o := f.options(slow, a, liar)
	o.IPv4 = Auto
	o.SourceTimeout = time.Second
	o.Timeout = time.Minute
	wait := f.discoverAsync(f.discoverer(o))
	f.waitAll("the slow source to be asked and the others to answer", asked, f.logs.wait("source answered", a), f.logs.wait("source answered", liar))
	f.clock.Add(time.Second)
	res, err := wait()
	if !errors.Is(err, ErrNoAgreement) {
		t.Fatalf("Discover() error = %v, want ErrNoAgreement", err)
	}
	var slowVote *Vote
	for _, v := range res.Votes[V4] {
		if v.Source == slow {
			slowVote = &v
		}
	}
	if slowVote == nil || !errors.Is(slowVote.Err, errSourceTimeout) {
		t.Errorf("vote of %s = %+v, want a source timeout", slow, slowVote)
	}
	if recs := f.logs.find("source timed out"); len(recs) != 1 || recs[0].attrs["source"] != slow {
		t.Errorf("'source timed out' records = %v, want one for %s", recs, slow)
	}

	// With a hanging source in the list the result is still correct, and
	// needs no timeout.
	o = f.options(slow, a, b)
	o.SourceTimeout = time.Second
	res, err = f.discover(f.discoverer(o))
	if err != nil || res.IPv4 != pub4 {
		t.Errorf("Discover() = %v, %v, want %v", res.IPv4, err, pub4)
	}
}

func TestDiscoverOverallTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	hangA, askedA := f.block()
	hangB, askedB := f.block()
	a := f.https("a.test", hangA)
	b := f.https("b.test", hangB)
	o := f.options(a, b)
	o.Timeout = 150 * time.Millisecond
	wait := f.discoverAsync(f.discoverer(o))
	f.waitAll("both sources to be asked", askedA, askedB)
	f.clock.Add(o.Timeout)
	_, err := wait()
	if !errors.Is(err, ErrNoAgreement) || !strings.Contains(err.Error(), errOverallTimeout.Error()) {
		t.Errorf("Discover() error = %v, want ErrNoAgreement naming %q", err, errOverallTimeout)
	}
}

func TestDiscoverEarlyStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slowStarted, slowCancelled := make(chan struct{}), make(chan struct{})
	slow := f.https("slow.test", func(_ http.ResponseWriter, r *http.Request) {
		close(slowStarted)
		<-r.Context().Done() // only agreement can end this (timeouts are 10s)
		close(slowCancelled)
	})
	// The fast sources answer once the slow one is surely being asked.
	fast := func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-slowStarted:
		case <-time.After(testWait):
		}
		fmt.Fprint(w, "8.8.4.4")
	}
	a := f.https("a.test", fast)
	b := f.https("b.test", fast)
	res, err := f.discover(f.discoverer(f.options(a, slow, b)))
	if err != nil {
		t.Fatalf("Discover() error = %v", err)
	}
	if res.IPv4 != pub4 {
		t.Errorf("Discover().IPv4 = %v, want %v", res.IPv4, pub4)
	}
	for _, v := range res.Votes[V4] {
		if v.Source == slow {
			t.Errorf("vote of cancelled source %s listed: %v", slow, v)
		}
	}
	select {
	case <-slowCancelled:
	case <-time.After(testWait):
		t.Errorf("slow source's request was not cancelled")
	}
}

func TestDiscoverSameOperatorCountsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Two hosts of one registrable domain are one operator.
	a := f.https("a.same.test", text("8.8.4.4"))
	b := f.https("b.same.test", text("8.8.4.4"))
	hang, asked := f.block()
	c := f.https("other.test", hang)
	o := f.options(a, b, c)
	o.Timeout = 300 * time.Millisecond
	wait := f.discoverAsync(f.discoverer(o))
	f.waitAll("a and b to answer while c hangs", asked, f.logs.wait("source answered", a), f.logs.wait("source answered", b))
	f.clock.Add(o.Timeout)
	if _, err := wait(); !errors.Is(err, ErrNoAgreement) {
		t.Errorf("Discover() error = %v, want ErrNoAgreement (a and b share an operator)", err)
	}
}

func TestDiscoverRejectsAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, reason string
	}{
		{"html", "<!DOCTYPE html><html><body>Welcome to the hotel wifi</body></html>", "HTML"},
		{"several", "8.8.4.4\n8.8.8.8\n", "more than one"},
		{"private", "10.1.2.3", "private"},
		{"loopback", "127.0.0.1", "loopback"},
		{"cgnat", "100.64.1.2", "carrier-grade NAT"},
		{"documentation", "203.0.113.7", "documentation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			bad := f.https("bad.test", text(tc.body))
			a := f.https("a.test", f.after("answer rejected", bad, "8.8.4.4"))
			b := f.https("b.test", f.after("answer rejected", bad, "8.8.4.4"))
			res, err := f.discover(f.discoverer(f.options(bad, a, b)))
			if err != nil || res.IPv4 != pub4 {
				t.Fatalf("Discover() = %v, %v, want %v", res.IPv4, err, pub4)
			}
			recs := f.logs.find("answer rejected")
			if len(recs) != 1 {
				t.Fatalf("%d 'answer rejected' records, want 1", len(recs))
			}
			r := recs[0].attrs
			if r["source"] != bad || !strings.Contains(r["said"], strings.Fields(tc.body)[0][:5]) || !strings.Contains(r["reason"], tc.reason) {
				t.Errorf("'answer rejected' attrs = %v, want source %s, said %q, reason ~%q", r, bad, tc.body, tc.reason)
			}
		})
	}
}

func TestDiscoverAllowPrivate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.https("a.test", text("127.0.0.1"))
	b := f.https("b.test", text("127.0.0.1"))
	o := f.options(a, b)
	o.Allow = LoopbackAndPrivate
	res, err := f.discover(f.discoverer(o))
	if err != nil || res.IPv4 != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Discover() with AllowPrivate = %v, %v, want 127.0.0.1", res.IPv4, err)
	}
}

// refuser counts calls and answers with status and headers.
func refuser(calls *atomic.Int32, status int, header, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		if k, v, ok := strings.Cut(header, ": "); ok {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func TestDiscoverRetryAfterBenches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	limited := f.https("limited.test", refuser(&calls, http.StatusTooManyRequests, "Retry-After: 120", "slow down"))
	// The others answer only once the limited source was benched (when it
	// is asked at all), so its refusal is always seen.
	var g gate
	a := f.https("a.test", g.handler(t, "8.8.4.4"))
	b := f.https("b.test", g.handler(t, "8.8.4.4"))
	d := f.discoverer(f.options(limited, a, b))

	g.set(f.logs.waitN("source benched", limited, 1))
	if res, err := f.discover(d); err != nil || res.IPv4 != pub4 {
		t.Fatalf("Discover() #1 = %v, %v, want %v", res.IPv4, err, pub4)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("calls after #1 = %d, want 1", got)
	}
	f.clock.Add(119 * time.Second)
	g.set(nil)
	res, err := f.discover(d)
	if err != nil || res.IPv4 != pub4 {
		t.Fatalf("Discover() #2 = %v, %v, want %v", res.IPv4, err, pub4)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("calls during the cooldown = %d, want 1 (source benched)", got)
	}
	var be *benchedError
	if v := res.Votes[V4][0]; v.Source != limited || !errors.As(v.Err, &be) {
		t.Errorf("Votes[V4][0] = %v, want %s benched", v, limited)
	}
	f.clock.Add(2 * time.Second)
	g.set(f.logs.waitN("source benched", limited, 2))
	if _, err := f.discover(d); err != nil {
		t.Fatalf("Discover() #3 = %v", err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("calls after the cooldown = %d, want 2", got)
	}
}

func TestDiscoverBotWallBenchesAndGrows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	wall := f.https("wall.test", refuser(&calls, http.StatusForbidden, "", "<html><title>Just a moment...</title></html>"))
	var g gate
	a := f.https("a.test", g.handler(t, "8.8.4.4"))
	b := f.https("b.test", g.handler(t, "8.8.4.4"))
	d := f.discoverer(f.options(wall, a, b))

	steps := []struct {
		advance   time.Duration
		wantCalls int32
	}{
		{0, 1}, // refused: benched 5m
		{5*time.Minute - time.Second, 1},
		{time.Second, 2}, // asked again, refused: benched 10m
		{10*time.Minute - time.Second, 2},
		{time.Second, 3}, // benched 20m
		{20*time.Minute - time.Second, 3},
	}
	prev := int32(0)
	for i, s := range steps {
		f.clock.Add(s.advance)
		if s.wantCalls > prev { // the wall is asked: answer after its refusal
			g.set(f.logs.waitN("source benched", wall, int(s.wantCalls)))
		} else {
			g.set(nil)
		}
		prev = s.wantCalls
		if res, err := f.discover(d); err != nil || res.IPv4 != pub4 {
			t.Fatalf("step %d: Discover() = %v, %v, want %v", i, res.IPv4, err, pub4)
		}
		if got := calls.Load(); got != s.wantCalls {
			t.Fatalf("step %d: calls = %d, want %d", i, got, s.wantCalls)
		}
	}
	recs := f.logs.find("source refused; benched")
	if len(recs) != 3 || !strings.Contains(recs[0].attrs["err"], "403") {
		t.Errorf("'source refused; benched' records = %v, want 3 naming 403", recs)
	}
}

func TestDiscoverIPv6ViaHTTPAndAAAA(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := dnsServer(t, map[string][]string{
		"myip.test. AAAA IN": {"myip.test. 0 IN AAAA 2001:4860:4860::8844"},
	})
	h := f.https("v6.test", text("2001:4860:4860::8844\n"))
	dnsSpec := "dns://ns.test:" + p + "/myip.test?type=AAAA"
	o := f.options(h, dnsSpec)
	o.IPv4, o.IPv6 = Off, On
	res, err := f.discover(f.discoverer(o))
	if err != nil || res.IPv6 != pub6 || res.IPv4.IsValid() {
		t.Fatalf("Discover() = %v, %v, %v, want invalid, %v", res.IPv4, res.IPv6, err, pub6)
	}
}

func TestDiscoverDNSTXTChaos(t *testing.T) {
	t.Parallel()
	p := dnsServer(t, map[string][]string{
		"whoami.cloudflare. TXT CH":       {`whoami.cloudflare. 0 CH TXT "8.8.4.4"`},
		"o-o.myaddr.l.google.com. TXT IN": {`o-o.myaddr.l.google.com. 60 IN TXT "8.8.4.4"`, `o-o.myaddr.l.google.com. 60 IN TXT "edns0-client-subnet 8.8.4.0/24"`},
		"myip.opendns.com. A IN":          {"myip.opendns.com. 0 IN A 8.8.4.4"},
		"several.test. A IN":              {"several.test. 0 IN A 8.8.4.4", "several.test. 0 IN A 8.8.8.8"},
		"whoami.cloudflare. TXT IN":       {`whoami.cloudflare. 0 IN TXT "9.9.9.9"`},
	})
	tests := []struct {
		name string
		spec string
		want netip.Addr
		err  string
	}{
		{"txt chaos", "dns://cf.test:" + p + "/whoami.cloudflare?type=TXT&class=CH", pub4, ""},
		{"txt google with ecs", "dns://google.test:" + p + "/o-o.myaddr.l.google.com?type=TXT", pub4, ""},
		{"a opendns", "dns://opendns.test:" + p + "/myip.opendns.com?type=A", pub4, ""},
		{"a default type", "dns://opendns.test:" + p + "/myip.opendns.com", pub4, ""},
		{"several records", "dns://x.test:" + p + "/several.test?type=A", netip.Addr{}, "2 records"},
		{"nxdomain", "dns://x.test:" + p + "/nothing.test?type=A", netip.Addr{}, "NXDOMAIN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ss, err := ParseSource(tc.spec, V4, SourceOptions{Dial: loopbackDial})
			if err != nil || len(ss) != 1 {
				t.Fatalf("ParseSource(%q) = %v, %v, want one source", tc.spec, ss, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			got, err := ss[0].Lookup(ctx)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Lookup() = %v, %v, want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Lookup() = %v, %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.https("a.test", text("8.8.4.4"))
	b := f.https("b.test", text("<html>"))
	reps := f.discoverer(f.options(a, b)).Check(context.Background())
	if len(reps) != 2 {
		t.Fatalf("len(Check()) = %d, want 2", len(reps))
	}
	if reps[0].Name != a || reps[0].Addr != pub4 || reps[0].Err != nil {
		t.Errorf("Check()[0] = %v, want %s: 8.8.4.4", reps[0], a)
	}
	if reps[1].Name != b || reps[1].Err == nil {
		t.Errorf("Check()[1] = %v, want %s with an error", reps[1], b)
	}
	if s := reps[0].String(); !strings.HasPrefix(s, "IPv4 "+a+" (a.test; authenticated): 8.8.4.4 in ") {
		t.Errorf("Check()[0].String() = %q", s)
	}
}

func TestDiscoverIPv6PrefersStable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	temp := "2001:4860:4860:0:1c2d:3e4f:5a6b:7c8d"
	a := f.https("a.test", text(temp))
	b := f.https("b.test", text(temp))
	o := f.options(a, b)
	o.IPv4, o.IPv6 = Off, On
	o.LocalAddrs = func() ([]LocalAddr, error) {
		return []LocalAddr{
			{Addr: netip.MustParseAddr(temp), Temporary: true},
			{Addr: netip.MustParseAddr("2001:4860:4860:0:abcd:1234:5678:9abc")},
		}, nil
	}
	res, err := f.discover(f.discoverer(o))
	if want := netip.MustParseAddr("2001:4860:4860:0:abcd:1234:5678:9abc"); err != nil || res.IPv6 != want {
		t.Errorf("Discover().IPv6 = %v, %v, want %v", res.IPv6, err, want)
	}
	if v := res.Votes[V6][0]; v.Addr != netip.MustParseAddr(temp) {
		t.Errorf("Votes[V6][0].Addr = %v, want the observed %v", v.Addr, temp)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"both off", Options{IPv4: Off, IPv6: Off}, "both off"},
		{"bad mode", Options{IPv4: "yes"}, `IPv4 mode "yes"`},
		{"bad spec", Options{Sources: []string{"ipify", "nope"}}, `"nope"`},
		{"duplicate", Options{Sources: []string{"ipify", "ipify", "aws-checkip"}}, "twice"},
		{"empty", Options{Sources: []string{}}, "no sources"},
		{"too few operators on", Options{Sources: []string{"cloudflare-trace", "icanhazip"}, IPv4: On}, "IPv4: 1 independent operator"},
		{"plain DNS only on", Options{Sources: []string{"opendns-dns", "google-dns"}, IPv4: On}, "IPv4: no authenticated source"},
		{"plain DNS only auto", Options{Sources: []string{"opendns-dns", "google-dns"}}, "one of them authenticated"},
		{"family not served", Options{Sources: []string{"aws-checkip", "ipify", "google-dns"}, IPv4: Off}, `"aws-checkip" serves none`},
		{"bad suffix", Options{IPv6Suffix: "2001:db8::10"}, "ipv6_suffix"},
		{"negative agree", Options{Agree: -1}, "agree -1"},
		{"agree above operators", Options{Agree: 9}, "operators"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%s) = %v, want error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	d, err := New(Options{})
	if err != nil {
		t.Fatalf("New(Options{}) = %v", err)
	}
	if got := len(operators(d.Sources(V4))); got != 5 {
		t.Errorf("default IPv4 operators = %d, want 5", got)
	}
	if got := len(operators(d.Sources(V6))); got != 4 {
		t.Errorf("default IPv6 operators = %d, want 4", got)
	}
}
