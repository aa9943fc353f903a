package ipecho

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"ipsync/loopmail"
)

func TestServesHTTPSAndDNS(t *testing.T) {
	t.Parallel()
	cert, certPEM, err := loopmail.SelfSignedCert(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Start(ctx, Options{Cert: cert, IPv4: netip.MustParseAddr("203.0.113.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	get := func() string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPSURL(), nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", s.HTTPSURL(), err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	lookup := func(qtype uint16) []dns.RR {
		m := new(dns.Msg)
		m.SetQuestion(Name, qtype)
		c := &dns.Client{Timeout: 5 * time.Second}
		in, _, err := c.ExchangeContext(ctx, m, strings.TrimPrefix(strings.SplitN(s.DNSURL(), "/", 4)[2], ""))
		if err != nil {
			t.Fatalf("DNS %s: %v", s.DNSURL(), err)
		}
		return in.Answer
	}
	if got := get(); got != "203.0.113.1" {
		t.Errorf("GET = %q, want 203.0.113.1", got)
	}
	if ans := lookup(dns.TypeA); len(ans) != 1 || ans[0].(*dns.A).A.String() != "203.0.113.1" {
		t.Errorf("DNS A = %v, want 203.0.113.1", ans)
	}
	s.Set(netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("2001:db8::2"))
	if got := get(); got != "203.0.113.2" {
		t.Errorf("GET after Set = %q, want 203.0.113.2", got)
	}
	if ans := lookup(dns.TypeAAAA); len(ans) != 1 || ans[0].(*dns.AAAA).AAAA.String() != "2001:db8::2" {
		t.Errorf("DNS AAAA = %v, want 2001:db8::2", ans)
	}
	if s.Requests() != 4 {
		t.Errorf("Requests() = %d, want 4", s.Requests())
	}
}
