package discover

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// dnsSource asks a DNS server that answers a special name with the asker's
// address (OpenDNS myip.opendns.com, Cloudflare whoami.cloudflare CH TXT,
// Google o-o.myaddr.l.google.com TXT), over plain DNS (UDP, TCP when
// truncated) or DNS over TLS.
type dnsSource struct {
	name, operator string
	fam            Family
	server         string      // host:port
	tls            *tls.Config // non-nil: DNS over TLS, with this config
	qname          string      // fully qualified
	qtype, qclass  uint16
	dial           func(ctx context.Context, network, address string) (net.Conn, error)
	allow          Exceptions
}

var _ Source = (*dnsSource)(nil)

// newDNSSource parses dns://SERVER[:PORT]/NAME[?type=..&class=..], or
// dns+tls://… for DNS over TLS (port 853 by default, the server's
// certificate verified for SERVER); it returns nil when the query type
// cannot answer for fam.
func newDNSSource(u *url.URL, fam Family, opts SourceOptions) (*dnsSource, error) {
	if u.Opaque != "" {
		return nil, errors.New("want dns://SERVER/NAME")
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("bad query name %q", name)
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("bad query name %q", name)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("bad query string: %w", err)
	}
	s := &dnsSource{
		fam:    fam,
		qname:  dns.Fqdn(strings.ToLower(name)),
		qclass: dns.ClassINET,
		dial:   opts.dialer(),
		allow:  opts.Allow,
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
		v := strings.ToUpper(vs[0])
		switch k {
		case "type":
			switch v {
			case "A":
				s.qtype = dns.TypeA
			case "AAAA":
				s.qtype = dns.TypeAAAA
			case "TXT":
				s.qtype = dns.TypeTXT
			default:
				return nil, fmt.Errorf("type=%s not supported (want A, AAAA or TXT)", vs[0])
			}
		case "class":
			switch v {
			case "IN":
				s.qclass = dns.ClassINET
			case "CH":
				s.qclass = dns.ClassCHAOS
			default:
				return nil, fmt.Errorf("class=%s not supported (want IN or CH)", vs[0])
			}
		default:
			return nil, fmt.Errorf("unknown parameter %q (want type, class)", k)
		}
	}
	switch {
	case s.qtype == 0 && fam == V4:
		s.qtype = dns.TypeA
	case s.qtype == 0:
		s.qtype = dns.TypeAAAA
	case s.qtype == dns.TypeA && fam != V4, s.qtype == dns.TypeAAAA && fam != V6:
		return nil, nil
	}
	port := u.Port()
	if u.Scheme == "dns+tls" {
		s.tls = &tls.Config{ServerName: u.Hostname(), RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12}
		if port == "" {
			port = "853"
		}
	}
	if port == "" {
		port = "53"
	}
	s.server = net.JoinHostPort(u.Hostname(), port)
	s.name = u.String()
	s.operator = operatorOf(u.Hostname())
	return s, nil
}

func (s *dnsSource) Name() string     { return s.name }
func (s *dnsSource) Operator() string { return s.operator }
func (s *dnsSource) Family() Family   { return s.fam }

// Authenticated is true for DNS over TLS; plain DNS can be forged by anyone
// on the path.
func (s *dnsSource) Authenticated() bool { return s.tls != nil }

func (s *dnsSource) setIdentity(name, operator string) { s.name, s.operator = name, operator }

// Lookup sends one query over UDP (TCP when the answer is truncated), or
// over TLS, and validates the answer. REFUSED yields a *RefusedError. It
// blocks until ctx ends at the latest.
func (s *dnsSource) Lookup(ctx context.Context) (netip.Addr, error) {
	m := new(dns.Msg)
	m.Id = dns.Id()
	m.RecursionDesired = true
	m.Question = []dns.Question{{Name: s.qname, Qtype: s.qtype, Qclass: s.qclass}}
	network := "udp"
	if s.tls != nil {
		network = "tcp"
	}
	r, err := s.exchange(ctx, m, network)
	if err == nil && r.Truncated && s.tls == nil {
		r, err = s.exchange(ctx, m, "tcp")
	}
	if err != nil {
		return netip.Addr{}, err
	}
	return s.answer(r)
}

// exchange sends m over network ("udp" or "tcp") of the source's family.
func (s *dnsSource) exchange(ctx context.Context, m *dns.Msg, network string) (*dns.Msg, error) {
	if s.fam == V4 {
		network += "4"
	} else {
		network += "6"
	}
	conn, err := s.dial(ctx, network, s.server)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.server, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.tls != nil {
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, fmt.Errorf("TLS handshake with %s: %w", s.server, err)
		}
		conn = tc
	}
	c := &dns.Client{Net: network, Timeout: defaultSourceTimeout}
	r, _, err := c.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: conn})
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("query %s: %w", s.server, err)
	}
	return r, nil
}

// answer validates reply r to the question this source asks.
func (s *dnsSource) answer(r *dns.Msg) (netip.Addr, error) {
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, s.qname) ||
		r.Question[0].Qtype != s.qtype || r.Question[0].Qclass != s.qclass {
		return netip.Addr{}, errors.New("reply does not match the question")
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeRefused:
		return netip.Addr{}, &RefusedError{Reason: "DNS REFUSED"}
	default:
		return netip.Addr{}, fmt.Errorf("DNS %s", dns.RcodeToString[r.Rcode])
	}
	var said []string
	add := func(v string) {
		if !slices.Contains(said, v) {
			said = append(said, v)
		}
	}
	for _, rr := range r.Answer {
		if rr.Header().Class != s.qclass {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			if s.qtype == dns.TypeA {
				add(v.A.String())
			}
		case *dns.AAAA:
			if s.qtype == dns.TypeAAAA {
				add(v.AAAA.String())
			}
		case *dns.TXT:
			t := strings.Join(v.Txt, "")
			// Google adds this record when the query carries EDNS client
			// subnet information; it is not the address.
			if s.qtype == dns.TypeTXT && !strings.HasPrefix(t, "edns0-client-subnet ") {
				add(t)
			}
		}
	}
	raw := []byte(strings.Join(said, "\n"))
	switch len(said) {
	case 0:
		return netip.Addr{}, reject(raw, "no %s record in the answer", dns.TypeToString[s.qtype])
	case 1:
	default:
		return netip.Addr{}, reject(raw, "%d records, want one", len(said))
	}
	return parseAddrText(raw, s.fam, s.allow)
}
