package discover

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody is how much of an HTTP answer is read; an address needs far less,
// the rest is read only to recognise bot-wall pages.
const maxBody = 16 << 10

// httpSource asks an HTTPS echo service that answers with the caller's
// address as text (or a Cloudflare trace).
type httpSource struct {
	name, operator string
	fam            Family
	url            string
	trace          bool // body is key=value lines with ip=
	userAgent      string
	client         *http.Client
	allow          Exceptions
}

var _ Source = (*httpSource)(nil)

func newHTTPSource(u *url.URL, fam Family, opts SourceOptions) *httpSource {
	ua := opts.UserAgent
	if ua == "" {
		ua = UserAgent("")
	}
	c := opts.HTTPClient
	if c == nil {
		c = defaultHTTPClient(fam, opts.dialer())
	}
	return &httpSource{
		name:      u.String(),
		operator:  operatorOf(u.Hostname()),
		fam:       fam,
		url:       u.String(),
		trace:     strings.HasSuffix(u.Path, "/cdn-cgi/trace"),
		userAgent: ua,
		client:    c,
		allow:     opts.Allow,
	}
}

// defaultHTTPClient connects over fam only, ignores proxy settings, needs
// TLS 1.2+, keeps no idle connections and follows at most 3 HTTPS redirects.
func defaultHTTPClient(fam Family, dial func(ctx context.Context, network, address string) (net.Conn, error)) *http.Client {
	network := "tcp4"
	if fam == V6 {
		network = "tcp6"
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return dial(ctx, network, addr)
			},
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    5 * time.Second,
			ResponseHeaderTimeout:  10 * time.Second,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 16 << 10,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to non-HTTPS %s refused", req.URL.Redacted())
			}
			return nil
		},
	}
}

func (s *httpSource) Name() string     { return s.name }
func (s *httpSource) Operator() string { return s.operator }
func (s *httpSource) Family() Family   { return s.fam }

// Authenticated is true: the answer comes over TLS from a verified server,
// and redirects are followed only to HTTPS.
func (s *httpSource) Authenticated() bool { return true }

func (s *httpSource) setIdentity(name, operator string) { s.name, s.operator = name, operator }

// Lookup sends one GET and validates the answer. It returns a *RefusedError
// for 429, 403 and bot-wall pages. It blocks until ctx ends at the latest.
func (s *httpSource) Lookup(ctx context.Context) (netip.Addr, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("prepare request: %w", err)
	}
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set("Accept", "text/plain, */*;q=0.1")
	resp, err := s.client.Do(req)
	if err != nil {
		return netip.Addr{}, requestError(req.URL.Hostname(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read answer: %w", err)
	}
	if refused := refusal(resp, body); refused != nil {
		return netip.Addr{}, refused
	}
	if resp.StatusCode != http.StatusOK {
		return netip.Addr{}, fmt.Errorf("HTTP %s: %w", resp.Status, reject(body, "not an answer"))
	}
	if len(body) > maxBody {
		return netip.Addr{}, reject(body, "answer longer than %d bytes", maxBody)
	}
	if s.trace {
		return parseTrace(body, s.fam, s.allow)
	}
	return parseAddrText(body, s.fam, s.allow)
}

// refusal reports whether the service refused us: 429 and 403 always, 503
// with Retry-After or a challenge page, and challenge pages in any status.
func refusal(resp *http.Response, body []byte) *RefusedError {
	html := looksLikeHTML(bytes.TrimSpace(body)) || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html")
	challenge := html && isChallengePage(body)
	retry := resp.Header.Get("Retry-After")
	switch {
	case resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusForbidden,
		resp.StatusCode == http.StatusServiceUnavailable && (retry != "" || challenge):
	case challenge:
	default:
		return nil
	}
	e := &RefusedError{Reason: "HTTP " + resp.Status}
	if challenge {
		e.Reason += " with a bot-wall page"
	}
	if retry != "" {
		if n, err := strconv.ParseUint(strings.TrimSpace(retry), 10, 32); err == nil {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(retry); err == nil {
			e.RetryAt = t
		}
	}
	return e
}

// requestError words a failed request for people: what failed, at which
// host, and the likely cause; the transport's own words stay in Unwrap for
// logs and errors.As.
func requestError(host string, err error) error {
	var (
		verr   *tls.CertificateVerificationError
		dnsErr *net.DNSError
		opErr  *net.OpError
	)
	switch {
	case errors.As(err, &verr):
		return &untrustedError{host: host, err: err}
	case errors.As(err, &dnsErr):
		return &wordedError{msg: "cannot resolve " + host + ": no DNS answer (is this machine offline, or its DNS broken?)", err: err}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &wordedError{msg: "cannot connect to " + host + " (" + opErr.Err.Error() + "): is this machine offline, or a firewall in the way?", err: err}
	}
	return fmt.Errorf("request: %w", err)
}

// wordedError is an error with a message for people and the library's
// error behind it.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

// untrustedError is an HTTPS source whose certificate did not verify. Its
// message says what that likely means; the TLS detail stays in Unwrap for
// logs and errors.As.
type untrustedError struct {
	host string
	err  error
}

func (e *untrustedError) Error() string {
	return "the HTTPS certificate of " + e.host + " is not trusted: something on this network may be intercepting HTTPS, or this system's CA certificates are missing (Debian: ca-certificates)"
}

func (e *untrustedError) Unwrap() error { return e.err }
