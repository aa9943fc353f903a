package discover

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Source is one way to learn the public address of one family. Lookup blocks
// until the answer arrives or ctx ends, and must return promptly once ctx
// ends (the Discoverer waits for cancelled lookups); it must be safe for
// concurrent use.
// A source that is refused by its service (rate limit, bot wall) returns a
// *RefusedError so the Discoverer benches it.
type Source interface {
	// Name identifies the source in logs and reports (a preset name or the URL).
	Name() string
	// Operator names who runs the service; sources with the same operator
	// count as one for the agreement rule.
	Operator() string
	// Family is the address family this source reports.
	Family() Family
	// Authenticated reports whether answers arrive over an authenticated
	// channel (HTTPS, DNS over TLS). Only such a source can decide an
	// address; plain DNS, which anyone on the path can forge, can only
	// corroborate.
	Authenticated() bool
	// Lookup asks the service once and returns the validated address.
	Lookup(ctx context.Context) (netip.Addr, error)
}

// RefusedError reports that a service refused to answer (HTTP 429 or 403, a
// bot-wall page, DNS REFUSED). The Discoverer benches the source for
// RetryAt/RetryAfter if given, or for a growing cooldown otherwise.
type RefusedError struct {
	Reason     string        // what the service did, e.g. "HTTP 429 Too Many Requests"
	RetryAfter time.Duration // from a Retry-After in seconds; 0 = not given
	RetryAt    time.Time     // from a Retry-After HTTP-date; zero = not given
}

func (e *RefusedError) Error() string {
	switch {
	case !e.RetryAt.IsZero():
		return fmt.Sprintf("refused: %s (retry after %s)", e.Reason, e.RetryAt.UTC().Format(time.RFC3339))
	case e.RetryAfter > 0:
		return fmt.Sprintf("refused: %s (retry after %s)", e.Reason, e.RetryAfter)
	}
	return "refused: " + e.Reason
}

// SourceOptions configures the sources ParseSource builds. The zero value is
// the production default.
type SourceOptions struct {
	// UserAgent is sent with every HTTP request; "" = UserAgent("dev").
	UserAgent string
	// HTTPClient is used for HTTPS sources of both families as is; nil = a
	// client per family that connects over IPv4 or IPv6 only (through Dial),
	// with TLS 1.2 or later, no proxy (a proxy would echo its own address),
	// at most 3 redirects, HTTPS only.
	HTTPClient *http.Client
	// Dial opens connections; network is "tcp4"/"udp4" for IPv4 sources and
	// "tcp6"/"udp6" for IPv6 sources. nil = a net.Dialer. Tests map names
	// to loopback servers here.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// RootCAs verifies DNS-over-TLS servers; nil = the system roots. For
	// tests. (HTTPS sources use HTTPClient's settings.)
	RootCAs *x509.CertPool
	// Allow relaxes the public-address rule (see CheckPublic) for answers.
	// TESTS AND THE DEMO ONLY: production leaves it 0.
	Allow Exceptions
}

// UserAgent returns the product User-Agent for ipsync version v.
func UserAgent(v string) string {
	if v == "" {
		v = "dev"
	}
	return "ipsync/" + v + " (public address check; " + runtime.GOOS + ")"
}

// preset is a named, well-known source; one URL per family it supports.
type preset struct {
	operator string
	url      map[Family]string
}

// presets are the well-known echo services. Operators group services run by
// the same company: icanhazip has been run by Cloudflare since 2021.
var presets = map[string]preset{
	"ipify": {"ipify", map[Family]string{
		V4: "https://api.ipify.org/",
		V6: "https://api6.ipify.org/",
	}},
	"icanhazip": {"cloudflare", map[Family]string{
		V4: "https://ipv4.icanhazip.com/",
		V6: "https://ipv6.icanhazip.com/",
	}},
	"cloudflare-trace": {"cloudflare", map[Family]string{
		V4: "https://1.1.1.1/cdn-cgi/trace",
		V6: "https://[2606:4700:4700::1111]/cdn-cgi/trace",
	}},
	"aws-checkip": {"amazon", map[Family]string{
		V4: "https://checkip.amazonaws.com/",
	}},
	"opendns-dns": {"opendns", map[Family]string{
		V4: "dns://208.67.222.222/myip.opendns.com?type=A",
		V6: "dns://[2620:119:35::35]/myip.opendns.com?type=AAAA",
	}},
	"cloudflare-dns": {"cloudflare", map[Family]string{
		V4: "dns://1.1.1.1/whoami.cloudflare?type=TXT&class=CH",
		V6: "dns://[2606:4700:4700::1111]/whoami.cloudflare?type=TXT&class=CH",
	}},
	"google-dns": {"google", map[Family]string{
		V4: "dns://216.239.32.10/o-o.myaddr.l.google.com?type=TXT",
		V6: "dns://[2001:4860:4802:32::a]/o-o.myaddr.l.google.com?type=TXT",
	}},
}

// Presets returns the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DefaultSources returns the default source specs: five operators for IPv4
// and four for IPv6. The HTTPS ones (three operators for IPv4, two for
// IPv6) can reach agreement on their own; the plain DNS ones only
// corroborate, and keep a family publishable when an HTTPS service is
// benched or down.
func DefaultSources() []string {
	return []string{"cloudflare-trace", "ipify", "aws-checkip", "cloudflare-dns", "opendns-dns", "google-dns"}
}

// ParseSource builds the sources of family fam that spec describes. spec is
// a preset name (see Presets), an https:// URL answering with the address as
// text (a path ending in /cdn-cgi/trace is read as a Cloudflare trace), or
// dns://RESOLVER[:PORT]/NAME[?type=A|AAAA|TXT][&class=IN|CH] (type defaults
// to A for IPv4 and AAAA for IPv6), or the same with dns+tls:// for DNS over
// TLS (port 853 by default; the resolver's certificate must be valid for
// RESOLVER, a name or an IP address). https:// and dns+tls:// sources are
// authenticated; dns:// ones are not. A spec that cannot serve fam (a preset
// without that family, an IP-literal server of the other family, type=A for
// IPv6) yields no source and no error. It does no I/O.
func ParseSource(spec string, fam Family, opts SourceOptions) ([]Source, error) {
	if fam != V4 && fam != V6 {
		return nil, fmt.Errorf("source %q: unknown family %d", spec, int(fam))
	}
	if p, ok := presets[spec]; ok {
		u, ok := p.url[fam]
		if !ok {
			return nil, nil
		}
		s, err := parseURL(u, fam, opts)
		if err != nil {
			return nil, fmt.Errorf("preset %q: %w", spec, err)
		}
		if s == nil {
			return nil, nil
		}
		s.setIdentity(spec, p.operator)
		return []Source{s}, nil
	}
	if !strings.Contains(spec, "://") {
		return nil, fmt.Errorf("source %q: not a preset (%s) nor an https://, dns:// or dns+tls:// URL", spec, strings.Join(Presets(), ", "))
	}
	s, err := parseURL(spec, fam, opts)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", spec, err)
	}
	if s == nil {
		return nil, nil
	}
	return []Source{s}, nil
}

// ValidateSpec reports whether spec is a usable source spec for at least one
// family. It does no I/O.
func ValidateSpec(spec string) error {
	n := 0
	for _, fam := range []Family{V4, V6} {
		ss, err := ParseSource(spec, fam, SourceOptions{})
		if err != nil {
			return err
		}
		n += len(ss)
	}
	if n == 0 {
		return fmt.Errorf("source %q: serves neither IPv4 nor IPv6", spec)
	}
	return nil
}

// identified is a source whose name and operator a preset can override.
type identified interface {
	Source
	setIdentity(name, operator string)
}

// parseURL builds the source for raw, or nil when it cannot serve fam.
func parseURL(raw string, fam Family, opts SourceOptions) (identified, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, errors.New("credentials in the URL are not allowed")
	}
	if u.Fragment != "" {
		return nil, errors.New("a fragment (#…) is not allowed")
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("missing host")
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return nil, err
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, errors.New("a zoned address is not allowed as host")
		}
		if familyOf(a) != fam {
			return nil, nil // an IPv4 server cannot see our IPv6 address, and vice versa
		}
	}
	switch u.Scheme {
	case "https":
		return newHTTPSource(u, fam, opts), nil
	case "dns", "dns+tls":
		s, err := newDNSSource(u, fam, opts)
		if s == nil {
			return nil, err // no typed nil in the interface
		}
		return s, err
	default:
		return nil, fmt.Errorf("unsupported scheme %q (want https, dns or dns+tls)", u.Scheme)
	}
}

// checkPort validates a decimal port number.
func checkPort(p string) error {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}

// familyOf returns the family of a.
func familyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return V4
	}
	return V6
}

// operatorOf derives the operator of a custom source from its host: the
// registrable domain (example.co.uk for a.b.example.co.uk), or the IP.
func operatorOf(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return host
	}
	if d, err := publicsuffix.EffectiveTLDPlusOne(host); err == nil {
		return d
	}
	return host
}

// dialer returns opts.Dial or a net.Dialer.
func (o SourceOptions) dialer() func(ctx context.Context, network, address string) (net.Conn, error) {
	if o.Dial != nil {
		return o.Dial
	}
	var d net.Dialer
	return d.DialContext
}
