// Package dnstest gives tests a resolver whose answers they choose: a real
// DNS server (miekg/dns) on 127.0.0.1 and a pure-Go net.Resolver that asks
// only it. Tests use it to make a name resolve anywhere (off loopback
// included) without any traffic leaving loopback.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Resolver starts a DNS server on 127.0.0.1 that answers A and AAAA
// queries for the names in hosts (case-insensitive, with or without the
// final dot) with their addresses, and NXDOMAIN for other names. It returns
// a resolver that asks only that server (the hosts file still comes first,
// as for every Go resolver, so use names it does not hold). The server stops
// when t ends.
func Resolver(t testing.TB, hosts map[string][]netip.Addr) *net.Resolver {
	t.Helper()
	zone := make(map[string][]netip.Addr, len(hosts))
	for name, addrs := range hosts {
		zone[dns.Fqdn(strings.ToLower(name))] = addrs
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: listen: %v", err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		addrs, ok := zone[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
		for _, a := range addrs {
			switch {
			case q.Qtype == dns.TypeA && a.Is4():
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case q.Qtype == dns.TypeAAAA && a.Is6():
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
		_ = w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = srv.ActivateAndServe() }()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case <-started:
	case <-timeout.C:
		t.Fatal("dnstest: DNS server did not start")
	}
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}
