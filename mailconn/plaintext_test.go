package mailconn_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"ipsync/internal/dnstest"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// greeter is a loopback listener that greets every connection as an IMAP
// server would and hands it to the test, in the order they arrive.
type greeter struct {
	ln    net.Listener
	conns chan net.Conn
}

func newGreeter(t *testing.T, network, addr string) *greeter {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen on %s: %v", addr, err)
	}
	g := &greeter{ln: ln, conns: make(chan net.Conn, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"))
			g.conns <- c
		}
	}()
	return g
}

func (g *greeter) port() int { return g.ln.Addr().(*net.TCPAddr).Port }

// assertNoClient fails t if any connection reached g before this call:
// it connects itself and checks that its own connection is the first g
// accepts (g accepts in arrival order).
func (g *greeter) assertNoClient(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	probe, err := d.DialContext(ctx, "tcp", g.ln.Addr().String())
	if err != nil {
		t.Fatalf("probe connection: %v", err)
	}
	defer probe.Close()
	select {
	case c := <-g.conns:
		defer c.Close()
		if c.RemoteAddr().String() != probe.LocalAddr().String() {
			t.Errorf("the server was reached by %s before the probe: the client connected", c.RemoteAddr())
		}
	case <-ctx.Done():
		t.Fatal("the probe connection was not accepted")
	}
}

// TestPlaintextOnlyToLoopbackAddress: with tls: none, a host name that
// passes the name check (mail.localhost) but resolves off loopback is
// refused before any connection is made, so no LOGIN can follow. 0.0.0.0
// is the case that shows it end to end on one machine: dialled, it reaches
// this host's own listeners (so without the check the greeter below is
// reached and the client would log in), yet it is not a loopback address.
func TestPlaintextOnlyToLoopbackAddress(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0", "192.0.2.2", "203.0.113.7", "2001:db8::25"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			g := newGreeter(t, "tcp", "127.0.0.1:0")
			r := dnstest.Resolver(t, map[string][]netip.Addr{"mail.localhost": {netip.MustParseAddr(addr)}})
			ep := mailconn.Endpoint{Host: "mail.localhost", Port: g.port(), TLS: mailconn.TLSNone, Resolver: r}
			if err := ep.Validate(); err != nil {
				t.Fatalf("Validate() = %v; the name check alone lets mail.localhost through", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := mailconn.DialIMAP(ctx, ep, nil)
			if err == nil {
				c.Close()
				t.Fatalf("DialIMAP(mail.localhost → %s, tls none) succeeded", addr)
			}
			if !errors.Is(err, mailconn.ErrPlaintextRemote) || !strings.Contains(err.Error(), netip.MustParseAddr(addr).String()) {
				t.Errorf("DialIMAP(mail.localhost → %s) = %v, want ErrPlaintextRemote naming %s", addr, err, addr)
			}
			g.assertNoClient(t)
		})
	}
}

// TestPlaintextToLoopbackStillWorks: tls: none to 127.0.0.1, ::1,
// localhost and a name that resolves to a loopback address connects and
// logs in.
func TestPlaintextToLoopbackStillWorks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := loopmail.Start(ctx, loopmail.Options{Users: map[string]string{"a@example.test": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.IMAPAddr())
	port, _ := strconv.Atoi(portStr)
	r := dnstest.Resolver(t, map[string][]netip.Addr{"imap.localhost": {netip.MustParseAddr("127.0.0.1")}})
	for _, ep := range []mailconn.Endpoint{
		{Host: "127.0.0.1", Port: port, TLS: mailconn.TLSNone},
		{Host: "localhost", Port: port, TLS: mailconn.TLSNone},
		{Host: "imap.localhost", Port: port, TLS: mailconn.TLSNone, Resolver: r},
	} {
		c, err := mailconn.DialIMAP(ctx, ep, nil)
		if err != nil {
			t.Errorf("DialIMAP(%s, tls none) = %v", ep.Host, err)
			continue
		}
		if err := c.Login("a@example.test", "pw").Wait(); err != nil {
			t.Errorf("Login via %s = %v", ep.Host, err)
		}
		c.Close()
	}

	g := newGreeter(t, "tcp6", "[::1]:0")
	c, err := mailconn.DialIMAP(ctx, mailconn.Endpoint{Host: "::1", Port: g.port(), TLS: mailconn.TLSNone}, nil)
	if err != nil {
		t.Fatalf("DialIMAP(::1, tls none) = %v", err)
	}
	c.Close()
}
