// Package mailconn describes how ipsync reaches a mail server (host, port,
// TLS mode, trusted roots) and opens IMAP connections with the TLS rules
// both roles share:
//
//   - implicit: TLS from the first byte (ports 465 and 993);
//   - starttls: plain TCP upgraded with STARTTLS, which is required: a server
//     that does not offer it, or refuses it, fails the connection; it is
//     never silently downgraded to plaintext;
//   - none: no TLS at all, accepted only for loopback hosts, and only to a
//     loopback address: the host name is checked when the configuration is
//     validated, and every address it resolves to is checked again before
//     the connection is attempted (a name such as mail.localhost that a
//     resolver points elsewhere is refused before a byte, let alone a
//     password, is sent).
package mailconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TLSMode is how a connection is protected, as written in the config.
type TLSMode string

// The TLS modes.
const (
	TLSImplicit TLSMode = "implicit"
	TLSStartTLS TLSMode = "starttls"
	TLSNone     TLSMode = "none"
)

// ErrPlaintextRemote is returned by Validate for tls: none on a host that is
// not loopback, and by Dial when such a host resolves to an address that is
// not loopback.
var ErrPlaintextRemote = errors.New("tls: none is only allowed for loopback hosts")

// Endpoint is one mail server.
type Endpoint struct {
	// Host is a name or an IP literal.
	Host string
	// Port is the TCP port.
	Port int
	// TLS is the TLS mode; "" means implicit.
	TLS TLSMode
	// RootCAs are the roots to trust; nil means the system roots.
	RootCAs *x509.CertPool
	// Resolver looks Host up; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// Addr returns host:port.
func (e Endpoint) Addr() string {
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// Mode returns e.TLS with the default applied.
func (e Endpoint) Mode() TLSMode {
	if e.TLS == "" {
		return TLSImplicit
	}
	return e.TLS
}

// Validate checks the host, the port and the TLS mode. It does no I/O.
func (e Endpoint) Validate() error {
	if strings.TrimSpace(e.Host) == "" {
		return errors.New("host is empty")
	}
	if e.Port < 1 || e.Port > 65535 {
		return fmt.Errorf("port %d is out of range 1-65535", e.Port)
	}
	switch e.Mode() {
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !IsLoopback(e.Host) {
			return fmt.Errorf("host %q: %w", e.Host, ErrPlaintextRemote)
		}
	default:
		return fmt.Errorf("tls mode %q is not one of implicit, starttls, none", e.TLS)
	}
	return nil
}

// TLSConfig returns the client TLS configuration for e: server name set,
// TLS 1.2 at least, e.RootCAs as roots.
func (e Endpoint) TLSConfig() *tls.Config {
	return &tls.Config{
		ServerName: e.Host,
		RootCAs:    e.RootCAs,
		MinVersion: tls.VersionTLS12,
	}
}

// IsLoopback reports whether host is "localhost" (or a name under it) or a
// loopback IP literal. It does no DNS lookup.
func IsLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	return err == nil && addr.Unmap().IsLoopback()
}

// Dial opens a TCP connection to e (no TLS: that is the caller's part).
// With TLS mode none it connects only to loopback addresses: each address
// Host resolves to is checked just before it is dialled, and the peer of the
// connection once more; any other address fails with an error wrapping
// [ErrPlaintextRemote], before anything is sent. Both the IMAP connections
// of this package and the publisher's SMTP sessions dial through it.
func (e Endpoint) Dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Resolver: e.Resolver}
	plain := e.Mode() == TLSNone
	if plain {
		d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
			return checkLoopbackAddr(e.Host, address)
		}
	}
	conn, err := d.DialContext(ctx, "tcp", e.Addr())
	if err != nil {
		return nil, err
	}
	if plain {
		if err := checkLoopbackAddr(e.Host, conn.RemoteAddr().String()); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// checkLoopbackAddr returns nil if address ("ip:port") is a loopback
// address, and otherwise an error naming host and the address it resolved
// to, wrapping ErrPlaintextRemote.
func checkLoopbackAddr(host, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("host %q: cannot check address %q is loopback: %w", host, address, ErrPlaintextRemote)
	}
	if ap.Addr().Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q resolves to %s, which is not a loopback address; use tls: implicit or starttls: %w",
		host, ap.Addr().Unmap(), ErrPlaintextRemote)
}

// LoadCAFile reads a PEM file of CA certificates and returns a pool with the
// system roots plus those certificates.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// DialIMAP connects to e, applies its TLS mode and waits for the greeting.
// ctx bounds the whole set-up (TCP, TLS, STARTTLS, greeting); once DialIMAP
// returns, the client is independent of ctx and the caller must Close it.
// A nil opts is the zero value; its TLSConfig is replaced by e.TLSConfig().
func DialIMAP(ctx context.Context, e Endpoint, opts *imapclient.Options) (*imapclient.Client, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	var o imapclient.Options
	if opts != nil {
		o = *opts
	}
	o.TLSConfig = e.TLSConfig()
	conn, err := e.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to imap server %s: %w", e.Addr(), err)
	}
	// Until set-up is done, ending ctx closes the connection, which unblocks
	// the TLS handshake and the greeting wait.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	c, err := newIMAP(conn, e, &o)
	if err == nil {
		err = c.WaitGreeting()
		if err != nil {
			c.Close()
		}
	}
	if !stop() {
		// ctx ended during set-up: the connection is closed.
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("connect to imap server %s: %w", e.Addr(), context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to imap server %s: %w", e.Addr(), err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func newIMAP(conn net.Conn, e Endpoint, o *imapclient.Options) (*imapclient.Client, error) {
	switch e.Mode() {
	case TLSImplicit:
		cfg := o.TLSConfig.Clone()
		cfg.NextProtos = []string{"imap"}
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		return imapclient.New(tc, o), nil
	case TLSStartTLS:
		c, err := imapclient.NewStartTLS(conn, o)
		if err != nil {
			return nil, fmt.Errorf("starttls (required): %w", err)
		}
		return c, nil
	default:
		return imapclient.New(conn, o), nil
	}
}
