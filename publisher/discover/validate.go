package discover

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// errRejected marks an answer that arrived but is not a usable public address.
var errRejected = errors.New("answer rejected")

// rejectedError is an answer that was received but refused by validation. It
// keeps what the source said (shortened) so logs can show it.
type rejectedError struct {
	said   string // what the source said, quoted and shortened for logs
	reason string // why it was refused
}

func (e *rejectedError) Error() string {
	return fmt.Sprintf("rejected answer %s: %s", e.said, e.reason)
}

func (e *rejectedError) Unwrap() error { return errRejected }

// reject builds a rejectedError for the raw answer b.
func reject(b []byte, format string, args ...any) error {
	return &rejectedError{said: quoteShort(b), reason: fmt.Sprintf(format, args...)}
}

// quoteShort quotes at most 80 bytes of b for logs.
func quoteShort(b []byte) string {
	const limit = 80
	if len(b) <= limit {
		return fmt.Sprintf("%q", b)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…(%d bytes)", b[:cut], len(b))
}

// Exceptions relax the public-address rule (see CheckPublic) for demos and
// tests. The zero value, which production uses, admits nothing beyond the rule.
type Exceptions uint8

// The named exceptions.
const (
	// DocumentationRanges admits the ranges reserved for documentation
	// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32,
	// 3fff::/20): the demo's stand-in echo service and the test and
	// screenshot scripts publish these. NEVER in production: no host has
	// such an address.
	DocumentationRanges Exceptions = 1 << iota
	// LoopbackAndPrivate admits loopback and private (RFC 1918, ULA)
	// addresses, which test fixtures on 127.0.0.1 answer. NEVER in
	// production.
	LoopbackAndPrivate
)

// nonPublic lists ranges that are never a host's public address, beyond what
// netip's predicates (loopback, private, link-local, multicast, unspecified)
// already catch.
var nonPublic = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" range"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT range"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments range"},
	{netip.MustParsePrefix("192.0.2.0/24"), documentation},
	{netip.MustParsePrefix("198.51.100.0/24"), documentation},
	{netip.MustParsePrefix("203.0.113.0/24"), documentation},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking range"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast range"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved range"},
	{netip.MustParsePrefix("2001:db8::/32"), documentation},
	{netip.MustParsePrefix("3fff::/20"), documentation},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments range"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 range"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64 range"},
	{netip.MustParsePrefix("100::/64"), "discard-only range"},
}

// documentation is the name of the ranges DocumentationRanges admits.
const documentation = "documentation range"

// global6 is the only IPv6 range IANA allocates for global unicast today.
var global6 = netip.MustParsePrefix("2000::/3")

// CheckPublic applies the public-address rule: it returns nil when a can be
// a host's public address, and otherwise an error naming why not (the
// range it lies in). Loopback, private, link-local, multicast, CGNAT,
// documentation, benchmarking, reserved and IPv6 ranges outside 2000::/3
// are refused, as are zoned and IPv4-mapped IPv6 addresses (unmap those
// first). allow relaxes the rule for demos and tests only; production
// passes 0. Discovery validates every answer with this rule.
func CheckPublic(a netip.Addr, allow Exceptions) error {
	if !a.IsValid() {
		return errors.New("no address")
	}
	if a.Is4In6() {
		return fmt.Errorf("%s is an IPv4-mapped IPv6 address; give the IPv4 address", a)
	}
	if why := notPublic(a, allow); why != "" {
		return fmt.Errorf("%s is not a public unicast address: %s", a, why)
	}
	return nil
}

// notPublic reports why a is not a public address under allow, or "".
func notPublic(a netip.Addr, allow Exceptions) string {
	if a.Zone() != "" {
		return "address has a zone"
	}
	if allow&LoopbackAndPrivate != 0 && (a.IsLoopback() || a.IsPrivate()) {
		return ""
	}
	switch {
	case a.IsUnspecified():
		return "unspecified address"
	case a.IsLoopback():
		return "loopback address"
	case a.IsPrivate():
		return "private address"
	case a.IsLinkLocalUnicast():
		return "link-local address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast address"
	case !a.IsGlobalUnicast():
		return "not a global unicast address"
	case a.Is6() && !a.Is4In6() && !global6.Contains(a):
		return "outside the global unicast range 2000::/3"
	}
	for _, r := range nonPublic {
		if allow&DocumentationRanges != 0 && r.what == documentation {
			continue
		}
		if r.prefix.Contains(a) {
			return r.what + " " + r.prefix.String()
		}
	}
	return ""
}

// checkAddr reports why a is not acceptable as the public address of family
// fam, or "".
func checkAddr(a netip.Addr, fam Family, allow Exceptions) string {
	switch {
	case fam == V4 && !a.Is4():
		return "not an IPv4 address"
	case fam == V6 && (!a.Is6() || a.Is4In6()):
		return "not an IPv6 address"
	}
	return notPublic(a, allow)
}

// parseAddrText strictly parses one address written as text: surrounding
// ASCII whitespace is trimmed, and the rest must be exactly one address.
// An IPv4-mapped IPv6 address is unmapped for the IPv4 family.
func parseAddrText(raw []byte, fam Family, allow Exceptions) (netip.Addr, error) {
	s := bytes.Trim(raw, " \t\r\n")
	if len(s) == 0 {
		return netip.Addr{}, reject(raw, "empty")
	}
	if looksLikeHTML(s) {
		return netip.Addr{}, reject(raw, "an HTML page, not an address")
	}
	if bytes.ContainsAny(s, " \t\r\n,;") {
		return netip.Addr{}, reject(raw, "more than one value")
	}
	a, err := netip.ParseAddr(string(s))
	if err != nil {
		return netip.Addr{}, reject(raw, "not an IP address")
	}
	if fam == V4 && a.Is4In6() {
		a = a.Unmap()
	}
	if why := checkAddr(a, fam, allow); why != "" {
		return netip.Addr{}, reject(raw, "%s", why)
	}
	return a, nil
}

// parseTrace parses a Cloudflare /cdn-cgi/trace body: key=value lines, one of
// them "ip=ADDRESS". Every non-empty line must be key=value and "ip" must
// occur exactly once.
func parseTrace(raw []byte, fam Family, allow Exceptions) (netip.Addr, error) {
	if looksLikeHTML(bytes.TrimSpace(raw)) {
		return netip.Addr{}, reject(raw, "an HTML page, not a trace")
	}
	var ip []byte
	found := 0
	for line := range bytes.Lines(raw) {
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok || len(k) == 0 {
			return netip.Addr{}, reject(raw, "line %s is not key=value", quoteShort(line))
		}
		if string(k) == "ip" {
			ip = v
			found++
		}
	}
	switch found {
	case 0:
		return netip.Addr{}, reject(raw, "no ip= line")
	case 1:
	default:
		return netip.Addr{}, reject(raw, "%d ip= lines", found)
	}
	return parseAddrText(ip, fam, allow)
}

// looksLikeHTML reports whether trimmed text s starts like markup.
func looksLikeHTML(s []byte) bool {
	return len(s) > 0 && s[0] == '<'
}

// challengeMarkers are phrases of bot-wall and rate-limit pages (Cloudflare,
// AWS WAF, Akamai, generic CAPTCHAs), matched case-insensitively.
var challengeMarkers = []string{
	"captcha",
	"cf-chl",
	"challenge-platform",
	"just a moment",
	"attention required",
	"access denied",
	"rate limit",
	"too many requests",
	"unusual traffic",
	"are you a robot",
	"verify you are human",
}

// isChallengePage reports whether body looks like a bot wall or rate-limit page.
func isChallengePage(body []byte) bool {
	l := strings.ToLower(string(body))
	for _, m := range challengeMarkers {
		if strings.Contains(l, m) {
			return true
		}
	}
	return false
}
