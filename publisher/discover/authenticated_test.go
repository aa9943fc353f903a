package discover

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// forgedDNS serves, like an attacker on the server's network who answers
// plain DNS, addr for myip.test A, and returns three plain DNS specs of
// three different operators that all reach it.
func forgedDNS(t *testing.T, addr string) []string {
	t.Helper()
	p := dnsServer(t, map[string][]string{"myip.test. A IN": {"myip.test. 0 IN A " + addr}})
	return []string{
		"dns://opendns.test:" + p + "/myip.test?type=A",
		"dns://google.test:" + p + "/myip.test?type=A",
		"dns://cloudflare.test:" + p + "/myip.test?type=A",
	}
}

// afterAnswers returns a handler that answers body only once every source
// in sources has answered (so forged answers are always counted first), or
// gives up when the request is cancelled.
func (f *fixture) afterAnswers(t *testing.T, sources []string, body string) http.HandlerFunc {
	var chs []<-chan struct{}
	for _, s := range sources {
		chs = append(chs, f.logs.wait("source answered", s))
	}
	return func(w http.ResponseWriter, r *http.Request) {
		for _, ch := range chs {
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			case <-time.After(testWait):
				t.Errorf("handler for %q: the DNS sources never answered", body)
				return
			}
		}
		fmt.Fprint(w, body)
	}
}

// TestDiscoverForgedDNSLosesToHTTPS is issue 10's attack: forged plain DNS
// answers of 8.8.4.4 from three "operators" arrive first; three HTTPS
// operators say 9.9.9.9. HTTPS must win (or, with too few HTTPS answers,
// nothing be published), and each contradiction is logged naming both.
func TestDiscoverForgedDNSLosesToHTTPS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		https int        // HTTPS operators answering 9.9.9.9
		want  netip.Addr // zero = nothing published
	}{
		{"three https operators", 3, netip.MustParseAddr("9.9.9.9")},
		{"one https operator", 1, netip.Addr{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			plain := forgedDNS(t, "8.8.4.4")
			specs := append([]string{}, plain...)
			var https []string
			for i := range tc.https {
				s := f.https(fmt.Sprintf("https%d.test", i), f.afterAnswers(t, plain, "9.9.9.9"))
				https = append(https, s)
				specs = append(specs, s)
			}
			res, err := f.discover(f.discoverer(f.options(specs...)))
			if res.IPv4 != tc.want {
				t.Fatalf("Discover().IPv4 = %v (err %v), want %v", res.IPv4, err, tc.want)
			}
			if tc.want.IsValid() && err != nil {
				t.Errorf("Discover() error = %v, want nil", err)
			}
			if !tc.want.IsValid() && !errors.Is(err, ErrNoAgreement) {
				t.Errorf("Discover() error = %v, want ErrNoAgreement", err)
			}
			recs := f.logs.find("plain DNS answer contradicts an authenticated source; it may be forged")
			if len(recs) != len(plain) {
				t.Fatalf("%d contradiction warnings, want %d (one per forged source): %v", len(recs), len(plain), recs)
			}
			seen := map[string]bool{}
			for _, r := range recs {
				a := r.attrs
				seen[a["plain_source"]] = true
				if a["plain_said"] != "8.8.4.4" || a["authenticated_said"] != "9.9.9.9" || !contains(https, a["authenticated_source"]) {
					t.Errorf("contradiction warning = %v, want plain_said 8.8.4.4, authenticated_said 9.9.9.9 by one of %v", a, https)
				}
			}
			for _, p := range plain {
				if !seen[p] {
					t.Errorf("no contradiction warning names %s", p)
				}
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestDNSOverTLS(t *testing.T) {
	t.Parallel()
	answers := map[string][]string{"whoami.test. TXT CH": {`whoami.test. 0 CH TXT "8.8.4.4"`}}
	port, pool := dotServer(t, "dot.test", answers)
	_, otherPool := selfSigned(t, "dot.test")
	tests := []struct {
		name  string
		host  string
		roots *x509.CertPool
		err   string // "" = answers 8.8.4.4
	}{
		{"verified", "dot.test", pool, ""},
		{"untrusted certificate", "dot.test", otherPool, "certificate signed by unknown authority"},
		{"certificate for another name", "other.test", pool, "certificate is valid for dot.test, not other.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := "dns+tls://" + tc.host + ":" + port + "/whoami.test?type=TXT&class=CH"
			ss, err := ParseSource(spec, V4, SourceOptions{Dial: loopbackDial, RootCAs: tc.roots})
			if err != nil || len(ss) != 1 {
				t.Fatalf("ParseSource(%q) = %v, %v, want one source", spec, ss, err)
			}
			if !ss[0].Authenticated() {
				t.Errorf("%s: Authenticated() = false, want true", spec)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			got, err := ss[0].Lookup(ctx)
			if tc.err == "" {
				if err != nil || got != pub4 {
					t.Errorf("Lookup() = %v, %v, want %v", got, err, pub4)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Lookup() = %v, %v, want an error containing %q", got, err, tc.err)
			}
		})
	}
}

func TestSourceAuthenticated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		want bool
	}{
		{"https://echo.test/", true},
		{"cloudflare-trace", true},
		{"dns+tls://1.1.1.1/whoami.cloudflare?type=TXT&class=CH", true},
		{"dns://1.1.1.1/whoami.cloudflare?type=TXT&class=CH", false},
		{"google-dns", false},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			ss, err := ParseSource(tc.spec, V4, SourceOptions{})
			if err != nil || len(ss) != 1 {
				t.Fatalf("ParseSource(%q) = %v, %v, want one source", tc.spec, ss, err)
			}
			if got := ss[0].Authenticated(); got != tc.want {
				t.Errorf("ParseSource(%q).Authenticated() = %v, want %v", tc.spec, got, tc.want)
			}
		})
	}
}

// TestDiscoverDNSOverTLSDecides: a DNS-over-TLS answer is authenticated, so
// it and a plain DNS answer may agree; two plain answers may not.
func TestDiscoverDNSOverTLSDecides(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	answers := map[string][]string{"myip.test. A IN": {"myip.test. 0 IN A 8.8.4.4"}}
	dotPort, pool := dotServer(t, "dot.test", answers)
	plainPort := dnsServer(t, answers)
	dot := "dns+tls://dot.test:" + dotPort + "/myip.test?type=A"
	plain := "dns://plain.test:" + plainPort + "/myip.test?type=A"
	o := f.options(dot, plain)
	o.RootCAs = pool
	res, err := f.discover(f.discoverer(o))
	if err != nil || res.IPv4 != pub4 {
		t.Fatalf("Discover() = %v, %v, want %v", res.IPv4, err, pub4)
	}
	for _, v := range res.Votes[V4] {
		if want := v.Source == dot; v.Authenticated != want {
			t.Errorf("vote %v: Authenticated = %v, want %v", v, v.Authenticated, want)
		}
	}
	reps := f.discoverer(o).Check(context.Background())
	for _, r := range reps {
		want := map[string]string{dot: "authenticated", plain: "plain DNS, corroborates only"}[r.Name]
		if r.Trust() != want || !strings.Contains(r.String(), want) {
			t.Errorf("Check() report %q: Trust() = %q, want %q in it", r, r.Trust(), want)
		}
	}

	o = f.options(plain, "dns://plain2.test:"+plainPort+"/myip.test?type=A")
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "no authenticated source") {
		t.Errorf("New(two plain DNS sources) = %v, want an error naming the missing authenticated source", err)
	}
}
