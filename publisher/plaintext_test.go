package publisher_test

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
	"ipsync/publisher"
)

// TestSMTPPlaintextOnlyToLoopbackAddress: with tls: none the SMTP session
// dials through mailconn's check, so mail.localhost resolving off loopback
// is refused before a connection exists (no AUTH PLAIN in clear), while a
// name resolving to 127.0.0.1 still delivers. 0.0.0.0, dialled, would reach
// this host's own listener (see the probe), so that case shows the refusal
// without any traffic leaving loopback.
func TestSMTPPlaintextOnlyToLoopbackAddress(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const user, pass = "alice@example.test", "smtp-secret"
	msg := publisher.Message{From: user, To: []string{user}, Subject: "ipsync srv1", Name: "srv1", Body: "hello"}

	for _, addr := range []string{"0.0.0.0", "192.0.2.2", "2001:db8::25"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 4)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("220 mail.localhost ESMTP\r\n"))
				accepted <- c
			}
		}()
		r := dnstest.Resolver(t, map[string][]netip.Addr{"mail.localhost": {netip.MustParseAddr(addr)}})
		ep := mailconn.Endpoint{Host: "mail.localhost", Port: ln.Addr().(*net.TCPAddr).Port, TLS: mailconn.TLSNone, Resolver: r}
		m, err := publisher.NewSMTPMailer(publisher.SMTPOptions{Endpoint: ep, Auth: pwAuth(user, pass), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("NewSMTPMailer(mail.localhost, tls none) = %v; the name check alone lets it through", err)
		}
		err = m.Send(ctx, msg)
		if !errors.Is(err, mailconn.ErrPlaintextRemote) || !strings.Contains(err.Error(), netip.MustParseAddr(addr).String()) {
			t.Errorf("Send via mail.localhost → %s = %v, want ErrPlaintextRemote naming the address", addr, err)
		}
		// The listener accepts in arrival order: the probe must be first.
		var d net.Dialer
		probe, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-accepted:
			if c.RemoteAddr().String() != probe.LocalAddr().String() {
				t.Errorf("mail.localhost → %s: the SMTP client connected to the server before the probe", addr)
			}
			c.Close()
		case <-ctx.Done():
			t.Fatal("probe not accepted")
		}
		probe.Close()
	}

	srv, err := loopmail.Start(ctx, loopmail.Options{Users: map[string]string{user: pass}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.SMTPAddr())
	portNum, _ := strconv.Atoi(port)
	r := dnstest.Resolver(t, map[string][]netip.Addr{"smtp.localhost": {netip.MustParseAddr("127.0.0.1")}})
	for _, ep := range []mailconn.Endpoint{
		{Host: "127.0.0.1", Port: portNum, TLS: mailconn.TLSNone},
		{Host: "localhost", Port: portNum, TLS: mailconn.TLSNone},
		{Host: "smtp.localhost", Port: portNum, TLS: mailconn.TLSNone, Resolver: r},
	} {
		m, err := publisher.NewSMTPMailer(publisher.SMTPOptions{Endpoint: ep, Auth: pwAuth(user, pass), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Send(ctx, msg); err != nil {
			t.Errorf("Send via %s (tls none) = %v", ep.Host, err)
		}
	}
	if got := srv.Stats().SMTPMessages; got != 3 {
		t.Errorf("loopback server accepted %d messages, want 3", got)
	}
}

// pwAuth signs in as user with password.
func pwAuth(user, password string) mailconn.Auth {
	return mailconn.PasswordAuth(user, func(context.Context) (string, error) { return password, nil })
}
