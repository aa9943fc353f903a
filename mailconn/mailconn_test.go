package mailconn_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ipsync/loopmail"
	"ipsync/mailconn"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LOCALHOST.", true},
		{"mail.localhost", true},
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::1", true},
		{"[::1]", true},
		{"::ffff:127.0.0.1", true},
		{"10.0.0.1", false},
		{"imap.gmail.com", false},
		{"localhost.example.com", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := mailconn.IsLoopback(tt.host); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    mailconn.Endpoint
		want string // "" = valid
	}{
		{"implicit default", mailconn.Endpoint{Host: "imap.gmail.com", Port: 993}, ""},
		{"starttls", mailconn.Endpoint{Host: "smtp.example.com", Port: 587, TLS: mailconn.TLSStartTLS}, ""},
		{"none loopback", mailconn.Endpoint{Host: "127.0.0.1", Port: 143, TLS: mailconn.TLSNone}, ""},
		{"none remote", mailconn.Endpoint{Host: "imap.example.com", Port: 143, TLS: mailconn.TLSNone}, "only allowed for loopback"},
		{"no host", mailconn.Endpoint{Port: 993}, "host is empty"},
		{"bad port", mailconn.Endpoint{Host: "x", Port: 0}, "out of range"},
		{"bad mode", mailconn.Endpoint{Host: "x", Port: 1, TLS: "ssl"}, "not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.e.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	if err := (mailconn.Endpoint{Host: "imap.example.com", Port: 143, TLS: mailconn.TLSNone}).Validate(); !errors.Is(err, mailconn.ErrPlaintextRemote) {
		t.Errorf("Validate(remote none) = %v, want ErrPlaintextRemote", err)
	}
}

func TestDialIMAPEachMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []loopmail.TLSMode{loopmail.TLSNone, loopmail.TLSImplicit, loopmail.TLSStartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv, err := loopmail.Start(ctx, loopmail.Options{Users: map[string]string{"a@example.test": "pw"}, IMAPTLS: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ep := endpoint(t, srv.IMAPAddr(), mailconn.TLSMode(mode))
			if pem := srv.CertPEM(); pem != nil {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem, 0o600); err != nil {
					t.Fatal(err)
				}
				pool, err := mailconn.LoadCAFile(filepath.Join(dir, "ca.pem"))
				if err != nil {
					t.Fatal(err)
				}
				ep.RootCAs = pool
			}
			c, err := mailconn.DialIMAP(ctx, ep, nil)
			if err != nil {
				t.Fatalf("DialIMAP(%s) = %v", mode, err)
			}
			defer c.Close()
			if err := c.Login("a@example.test", "pw").Wait(); err != nil {
				t.Errorf("Login over %s = %v", mode, err)
			}
		})
	}
}

func TestDialIMAPRefusesUntrustedAndDowngrade(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tlsSrv, err := loopmail.Start(ctx, loopmail.Options{Users: map[string]string{"a@example.test": "pw"}, IMAPTLS: loopmail.TLSImplicit})
	if err != nil {
		t.Fatal(err)
	}
	defer tlsSrv.Close()
	if _, err := mailconn.DialIMAP(ctx, endpoint(t, tlsSrv.IMAPAddr(), mailconn.TLSImplicit), nil); err == nil {
		t.Error("DialIMAP to a self-signed server without its CA succeeded")
	}
	plain, err := loopmail.Start(ctx, loopmail.Options{Users: map[string]string{"a@example.test": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ep := endpoint(t, plain.IMAPAddr(), mailconn.TLSStartTLS)
	ep.RootCAs = x509.NewCertPool()
	if _, err := mailconn.DialIMAP(ctx, ep, nil); err == nil || !strings.Contains(err.Error(), "starttls") {
		t.Errorf("DialIMAP(starttls) to a server without STARTTLS = %v, want a starttls failure", err)
	}
}

func TestDialIMAPHonoursContext(t *testing.T) {
	t.Parallel()
	// A listener that accepts and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = mailconn.DialIMAP(ctx, endpoint(t, ln.Addr().String(), mailconn.TLSNone), nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DialIMAP to a silent server = %v, want the deadline", err)
	}
}

func endpoint(t *testing.T, addr string, mode mailconn.TLSMode) mailconn.Endpoint {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return mailconn.Endpoint{Host: host, Port: p, TLS: mode}
}
