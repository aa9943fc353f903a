// Package ipecho stands in for the public internet's "what is my IP"
// services: it serves a scripted address over HTTPS (plain text, like
// icanhazip) and over DNS (an A/AAAA answer, like OpenDNS's
// myip.opendns.com), both on loopback. `ipsync demo` and end-to-end tests
// point the publisher's sources at it; nothing here is used in production.
package ipecho

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/miekg/dns"
)

// Name is the DNS name the server answers for.
const Name = "myip.ipsync.test."

// Options configure a Server.
type Options struct {
	// Cert is the HTTPS server certificate; it must be valid for
	// "localhost". Required.
	Cert tls.Certificate
	// IPv4 and IPv6 are the first addresses served; zero means none for
	// that family. Change them with Set.
	IPv4, IPv6 netip.Addr
	// Logger receives request logs at debug level; nil discards them.
	Logger *slog.Logger
}

// Server answers on 127.0.0.1 with the current addresses. Its methods are
// safe for concurrent use.
type Server struct {
	log   *slog.Logger
	https *http.Server
	hl    net.Listener
	dns   *dns.Server
	pc    net.PacketConn
	wg    sync.WaitGroup

	mu         sync.Mutex
	ipv4, ipv6 netip.Addr
	requests   int
}

// Start listens on two loopback ports and serves until Close or the end of
// ctx.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if len(opts.Cert.Certificate) == 0 {
		return nil, errors.New("ipecho: a certificate is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, ipv4: opts.IPv4, ipv6: opts.IPv6}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ipecho: listen for https: %w", err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		return nil, fmt.Errorf("ipecho: listen for dns: %w", err)
	}
	s.hl, s.pc = hl, pc
	s.https = &http.Server{
		Handler:   http.HandlerFunc(s.serveHTTP),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{opts.Cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.dns = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS)}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.https.ServeTLS(hl, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Debug("ipecho https stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := s.dns.ActivateAndServe(); err != nil {
			log.Debug("ipecho dns stopped", "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// HTTPSURL is a source spec for the HTTPS answer.
func (s *Server) HTTPSURL() string {
	return fmt.Sprintf("https://localhost:%d/", s.hl.Addr().(*net.TCPAddr).Port)
}

// DNSURL is a source spec for the DNS answer (type A for IPv4; the
// publisher asks AAAA for IPv6).
func (s *Server) DNSURL() string {
	return fmt.Sprintf("dns://%s/%s", s.pc.LocalAddr(), Name[:len(Name)-1])
}

// Set changes the addresses served from now on.
func (s *Server) Set(ipv4, ipv6 netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ipv4, s.ipv6 = ipv4, ipv6
}

// Requests returns how many questions have been answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// current returns the address of the family of the asker's connection:
// IPv6 when the client came over IPv6, else IPv4.
func (s *Server) current(v6 bool) netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if v6 {
		return s.ipv6
	}
	return s.ipv4
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	a := s.current(ap.Addr().Is6() && !ap.Addr().Is4In6())
	if !a.IsValid() {
		http.Error(w, "no address of this family", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, a)
}

func (s *Server) serveDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 && dns.Fqdn(q.Question[0].Name) == Name {
		hdr := dns.RR_Header{Name: Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Question[0].Qtype {
		case dns.TypeA:
			if a := s.current(false); a.IsValid() {
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			}
		case dns.TypeAAAA:
			if a := s.current(true); a.IsValid() {
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
	} else {
		m.Rcode = dns.RcodeNameError
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("ipecho dns reply failed", "err", err)
	}
}

// Close stops both listeners and waits for the servers to return.
func (s *Server) Close() error {
	err := s.https.Close()
	if derr := s.dns.Shutdown(); derr != nil && err == nil && !isNotStarted(derr) {
		err = derr
	}
	s.wg.Wait()
	return err
}

func isNotStarted(err error) bool { return err != nil && err.Error() == "dns: server not started" }
