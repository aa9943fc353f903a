package discover

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestParseAddrText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		fam   Family
		allow Exceptions
		want  string // "" = rejected
	}{
		{"plain v4", "8.8.4.4", V4, 0, "8.8.4.4"},
		{"trailing newline", "8.8.4.4\n", V4, 0, "8.8.4.4"},
		{"crlf and spaces", " \t8.8.4.4\r\n", V4, 0, "8.8.4.4"},
		{"mapped v4", "::ffff:8.8.4.4", V4, 0, "8.8.4.4"},
		{"v6", "2001:4860:4860::8844\n", V6, 0, "2001:4860:4860::8844"},
		{"empty", "", V4, 0, ""},
		{"only spaces", " \n", V4, 0, ""},
		{"html", "<html>8.8.4.4</html>", V4, 0, ""},
		{"two lines", "8.8.4.4\n8.8.8.8", V4, 0, ""},
		{"two with comma", "8.8.4.4,8.8.8.8", V4, 0, ""},
		{"two with space", "8.8.4.4 8.8.8.8", V4, 0, ""},
		{"cidr", "8.8.4.4/32", V4, 0, ""},
		{"port", "8.8.4.4:80", V4, 0, ""},
		{"leading zeros", "008.008.004.004", V4, 0, ""},
		{"zone", "2001:4860:4860::8844%eth0", V6, 0, ""},
		{"v6 for v4", "2001:4860:4860::8844", V4, 0, ""},
		{"v4 for v6", "8.8.4.4", V6, 0, ""},
		{"mapped for v6", "::ffff:8.8.4.4", V6, 0, ""},
		{"private 10", "10.0.0.1", V4, 0, ""},
		{"private 172", "172.16.5.4", V4, 0, ""},
		{"private 192", "192.168.1.1", V4, 0, ""},
		{"loopback", "127.0.0.1", V4, 0, ""},
		{"link-local", "169.254.1.1", V4, 0, ""},
		{"cgnat", "100.64.0.1", V4, 0, ""},
		{"doc 192.0.2", "192.0.2.1", V4, 0, ""},
		{"doc 198.51.100", "198.51.100.1", V4, 0, ""},
		{"doc 203.0.113", "203.0.113.9", V4, 0, ""},
		{"benchmark", "198.18.0.1", V4, 0, ""},
		{"multicast", "224.0.0.1", V4, 0, ""},
		{"broadcast", "255.255.255.255", V4, 0, ""},
		{"reserved", "240.0.0.1", V4, 0, ""},
		{"unspecified", "0.0.0.0", V4, 0, ""},
		{"this network", "0.1.2.3", V4, 0, ""},
		{"v6 loopback", "::1", V6, 0, ""},
		{"v6 unspecified", "::", V6, 0, ""},
		{"v6 ula", "fd00::1", V6, 0, ""},
		{"v6 link-local", "fe80::1", V6, 0, ""},
		{"v6 doc", "2001:db8::1", V6, 0, ""},
		{"v6 doc 3fff", "3fff::1", V6, 0, ""},
		{"v6 multicast", "ff02::1", V6, 0, ""},
		{"v6 nat64", "64:ff9b::808:404", V6, 0, ""},
		{"v6 teredo", "2001:0:4136:e378::1", V6, 0, ""},
		{"v6 outside 2000::/3", "4000::1", V6, 0, ""},
		{"allow private loopback", "127.0.0.1", V4, LoopbackAndPrivate, "127.0.0.1"},
		{"allow private 10", "10.0.0.1", V4, LoopbackAndPrivate, "10.0.0.1"},
		{"allow private v6 loopback", "::1", V6, LoopbackAndPrivate, "::1"},
		{"documentation exception", "203.0.113.9", V4, DocumentationRanges, "203.0.113.9"},
		{"documentation exception v6", "2001:db8::1", V6, DocumentationRanges, "2001:db8::1"},
		{"documentation exception keeps private out", "10.0.0.1", V4, DocumentationRanges, ""},
		{"documentation exception keeps cgnat out", "100.64.0.1", V4, DocumentationRanges, ""},
		{"private exception keeps documentation out", "203.0.113.9", V4, LoopbackAndPrivate, ""},
		{"documentation rejected", "203.0.113.9", V4, 0, ""},
		{"allow private keeps cgnat out", "100.64.0.1", V4, LoopbackAndPrivate, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAddrText([]byte(tc.in), tc.fam, tc.allow)
			if tc.want == "" {
				if err == nil || !errors.Is(err, errRejected) {
					t.Errorf("parseAddrText(%q, %s) = %v, %v, want rejection", tc.in, tc.fam, got, err)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tc.want) {
				t.Errorf("parseAddrText(%q, %s) = %v, %v, want %s", tc.in, tc.fam, got, err, tc.want)
			}
		})
	}
}

func TestParseTrace(t *testing.T) {
	t.Parallel()
	const good = "fl=123f45\nh=1.1.1.1\nip=8.8.4.4\nts=1700000000.123\nvisit_scheme=https\nuag=ipsync/1\ncolo=FRA\nhttp=http/2\nloc=DE\ntls=TLSv1.3\nsni=off\nwarp=off\ngateway=off\n"
	tests := []struct {
		name, in string
		fam      Family
		want     string
	}{
		{"good", good, V4, "8.8.4.4"},
		{"crlf", strings.ReplaceAll(good, "\n", "\r\n"), V4, "8.8.4.4"},
		{"v6", "h=x\nip=2001:4860:4860::8844\n", V6, "2001:4860:4860::8844"},
		{"no ip", "h=1.1.1.1\nts=1\n", V4, ""},
		{"two ip", "ip=8.8.4.4\nip=8.8.8.8\n", V4, ""},
		{"not key value", "ip=8.8.4.4\nhello\n", V4, ""},
		{"html", "<html>ip=8.8.4.4</html>", V4, ""},
		{"bad ip", "ip=8.8.4\n", V4, ""},
		{"private ip", "ip=192.168.0.2\n", V4, ""},
		{"empty", "", V4, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseTrace([]byte(tc.in), tc.fam, 0)
			if tc.want == "" {
				if !errors.Is(err, errRejected) {
					t.Errorf("parseTrace(%q) = %v, %v, want rejection", tc.in, got, err)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tc.want) {
				t.Errorf("parseTrace(%q) = %v, %v, want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseAddrText(f *testing.F) {
	for _, s := range []string{"8.8.4.4", "8.8.4.4\n", "2001:4860:4860::8844", "<html>", "1.2.3.4 5.6.7.8", "::ffff:8.8.4.4", "fe80::1%eth0", "ip=8.8.4.4\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fam := range []Family{V4, V6} {
			for _, parse := range []func([]byte, Family, Exceptions) (netip.Addr, error){parseAddrText, parseTrace} {
				a, err := parse(b, fam, 0)
				if err != nil {
					if a.IsValid() {
						t.Fatalf("parse(%q) returned %v with error %v", b, a, err)
					}
					continue
				}
				if reason := checkAddr(a, fam, 0); reason != "" {
					t.Fatalf("parse(%q, %s) = %v, which checkAddr refuses: %s", b, fam, a, reason)
				}
				if familyOf(a) != fam {
					t.Fatalf("parse(%q, %s) = %v of the wrong family", b, fam, a)
				}
			}
		}
	})
}

func TestCooldown(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		strikes int
		e       RefusedError
		want    time.Duration
	}{
		{"first", 1, RefusedError{}, 5 * time.Minute},
		{"second", 2, RefusedError{}, 10 * time.Minute},
		{"third", 3, RefusedError{}, 20 * time.Minute},
		{"seventh", 7, RefusedError{}, 320 * time.Minute},
		{"capped", 8, RefusedError{}, 6 * time.Hour},
		{"far capped", 100, RefusedError{}, 6 * time.Hour},
		{"retry after seconds", 3, RefusedError{RetryAfter: 120 * time.Second}, 2 * time.Minute},
		{"retry at date", 1, RefusedError{RetryAt: now.Add(42 * time.Minute)}, 42 * time.Minute},
		{"retry after too short", 1, RefusedError{RetryAfter: time.Second}, time.Minute},
		{"retry at in the past", 1, RefusedError{RetryAt: now.Add(-time.Hour)}, time.Minute},
		{"retry after too long", 1, RefusedError{RetryAfter: 48 * time.Hour}, 6 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := cooldown(tc.strikes, &tc.e, now); got != tc.want {
				t.Errorf("cooldown(%d, %+v) = %s, want %s", tc.strikes, tc.e, got, tc.want)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	t.Parallel()
	date := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		ctype      string
		body       string
		want       *RefusedError // nil = not a refusal
	}{
		{"429 seconds", 429, "120", "", "", &RefusedError{RetryAfter: 2 * time.Minute}},
		{"429 date", 429, date.Format(http.TimeFormat), "", "", &RefusedError{RetryAt: date}},
		{"429 junk header", 429, "soon", "", "", &RefusedError{}},
		{"403", 403, "", "text/html", "<html>denied</html>", &RefusedError{}},
		{"503 with retry", 503, "30", "", "", &RefusedError{RetryAfter: 30 * time.Second}},
		{"503 challenge", 503, "", "text/html", "<html>Just a moment...</html>", &RefusedError{}},
		{"200 captcha", 200, "", "text/html; charset=utf-8", "<html><div class=g-recaptcha></div></html>", &RefusedError{}},
		{"503 plain", 503, "", "text/plain", "down", nil},
		{"500", 500, "", "", "", nil},
		{"200 portal", 200, "", "text/html", "<html>Welcome to the hotel wifi</html>", nil},
		{"200 ok", 200, "", "text/plain", "8.8.4.4", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: tc.status, Status: http.StatusText(tc.status), Header: http.Header{}}
			if tc.retryAfter != "" {
				resp.Header.Set("Retry-After", tc.retryAfter)
			}
			if tc.ctype != "" {
				resp.Header.Set("Content-Type", tc.ctype)
			}
			got := refusal(resp, []byte(tc.body))
			switch {
			case tc.want == nil && got != nil:
				t.Errorf("refusal(%d) = %v, want none", tc.status, got)
			case tc.want != nil && got == nil:
				t.Errorf("refusal(%d) = none, want a refusal", tc.status)
			case tc.want != nil && (got.RetryAfter != tc.want.RetryAfter || !got.RetryAt.Equal(tc.want.RetryAt)):
				t.Errorf("refusal(%d) = %+v, want retry %s / %s", tc.status, got, tc.want.RetryAfter, tc.want.RetryAt)
			}
		})
	}
}

func TestPresetsExpand(t *testing.T) {
	t.Parallel()
	type want struct {
		url           string // HTTPS sources
		server, qname string // DNS sources
		qtype, qclass uint16
		trace         bool
		operator      string
	}
	tests := []struct {
		preset string
		fam    Family
		want   *want // nil = no source for fam
	}{
		{"ipify", V4, &want{url: "https://api.ipify.org/", operator: "ipify"}},
		{"ipify", V6, &want{url: "https://api6.ipify.org/", operator: "ipify"}},
		{"icanhazip", V4, &want{url: "https://ipv4.icanhazip.com/", operator: "cloudflare"}},
		{"icanhazip", V6, &want{url: "https://ipv6.icanhazip.com/", operator: "cloudflare"}},
		{"cloudflare-trace", V4, &want{url: "https://1.1.1.1/cdn-cgi/trace", trace: true, operator: "cloudflare"}},
		{"cloudflare-trace", V6, &want{url: "https://[2606:4700:4700::1111]/cdn-cgi/trace", trace: true, operator: "cloudflare"}},
		{"aws-checkip", V4, &want{url: "https://checkip.amazonaws.com/", operator: "amazon"}},
		{"aws-checkip", V6, nil},
		{"opendns-dns", V4, &want{server: "208.67.222.222:53", qname: "myip.opendns.com.", qtype: dns.TypeA, qclass: dns.ClassINET, operator: "opendns"}},
		{"opendns-dns", V6, &want{server: "[2620:119:35::35]:53", qname: "myip.opendns.com.", qtype: dns.TypeAAAA, qclass: dns.ClassINET, operator: "opendns"}},
		{"cloudflare-dns", V4, &want{server: "1.1.1.1:53", qname: "whoami.cloudflare.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, operator: "cloudflare"}},
		{"cloudflare-dns", V6, &want{server: "[2606:4700:4700::1111]:53", qname: "whoami.cloudflare.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, operator: "cloudflare"}},
		{"google-dns", V4, &want{server: "216.239.32.10:53", qname: "o-o.myaddr.l.google.com.", qtype: dns.TypeTXT, qclass: dns.ClassINET, operator: "google"}},
		{"google-dns", V6, &want{server: "[2001:4860:4802:32::a]:53", qname: "o-o.myaddr.l.google.com.", qtype: dns.TypeTXT, qclass: dns.ClassINET, operator: "google"}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.preset] = true
		t.Run(tc.preset+"/"+tc.fam.String(), func(t *testing.T) {
			t.Parallel()
			ss, err := ParseSource(tc.preset, tc.fam, SourceOptions{})
			if err != nil {
				t.Fatalf("ParseSource(%q, %s) error = %v", tc.preset, tc.fam, err)
			}
			if tc.want == nil {
				if len(ss) != 0 {
					t.Errorf("ParseSource(%q, %s) = %d sources, want none", tc.preset, tc.fam, len(ss))
				}
				return
			}
			if len(ss) != 1 {
				t.Fatalf("ParseSource(%q, %s) = %d sources, want 1", tc.preset, tc.fam, len(ss))
			}
			s := ss[0]
			if s.Name() != tc.preset || s.Operator() != tc.want.operator || s.Family() != tc.fam {
				t.Errorf("source = %s/%s/%s, want %s/%s/%s", s.Name(), s.Operator(), s.Family(), tc.preset, tc.want.operator, tc.fam)
			}
			switch s := s.(type) {
			case *httpSource:
				if s.url != tc.want.url || s.trace != tc.want.trace {
					t.Errorf("HTTPS source = %s trace=%v, want %s trace=%v", s.url, s.trace, tc.want.url, tc.want.trace)
				}
			case *dnsSource:
				if s.server != tc.want.server || s.qname != tc.want.qname || s.qtype != tc.want.qtype || s.qclass != tc.want.qclass {
					t.Errorf("DNS source = %s %s %s %s, want %s %s %s %s", s.server, s.qname, dns.TypeToString[s.qtype], dns.ClassToString[s.qclass],
						tc.want.server, tc.want.qname, dns.TypeToString[tc.want.qtype], dns.ClassToString[tc.want.qclass])
				}
			default:
				t.Errorf("source type %T", s)
			}
		})
	}
	for _, p := range Presets() {
		if !covered[p] {
			t.Errorf("preset %q not in the table", p)
		}
	}
	for _, p := range DefaultSources() {
		if err := ValidateSpec(p); err != nil {
			t.Errorf("ValidateSpec(%q) = %v", p, err)
		}
	}
}

func TestValidateSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec string
		want string // "" = valid
	}{
		{"ipify", ""},
		{"https://ip.example.net/", ""},
		{"https://ip.example.net:8443/raw?format=text", ""},
		{"https://[2001:4860:4860::8844]/", ""},
		{"dns://resolver.example.net/myip.example.net", ""},
		{"dns://192.0.2.53:5353/myip.example.net?type=TXT&class=CH", ""},
		{"dns://[2001:4860:4860::8844]/myip.example.net?type=AAAA", ""},
		{"ipfy", "not a preset"},
		{"http://ip.example.net/", "unsupported scheme"},
		{"ftp://ip.example.net/", "unsupported scheme"},
		{"https://user:pw@ip.example.net/", "credentials"},
		{"https:///path", "missing host"},
		{"https://ip.example.net/#frag", "fragment"},
		{"https://ip.example.net:0/", "bad port"},
		{"https://ip.example.net:99999/", "bad port"},
		{"dns://1.1.1.1/", "bad query name"},
		{"dns://1.1.1.1/a/b", "bad query name"},
		{"dns://1.1.1.1/x.test?type=MX", "type=MX"},
		{"dns://1.1.1.1/x.test?class=HS", "class=HS"},
		{"dns://1.1.1.1/x.test?foo=1", "unknown parameter"},
		{"dns://1.1.1.1/x.test?type=A&type=A", "2 times"},
		{"dns://1.1.1.1/x.test?type=AAAA", "neither"},
		{"https://[fe80::1%25eth0]/", "zoned"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			err := ValidateSpec(tc.spec)
			if tc.want == "" {
				if err != nil {
					t.Errorf("ValidateSpec(%q) = %v, want nil", tc.spec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.spec) {
				t.Errorf("ValidateSpec(%q) = %v, want an error naming the spec and containing %q", tc.spec, err, tc.want)
			}
		})
	}
}

func TestParseSourceFamilies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec   string
		v4, v6 int
	}{
		{"https://ip.example.net/", 1, 1},
		{"https://192.0.2.1/", 1, 0},
		{"https://[2001:4860:4860::8844]/", 0, 1},
		{"dns://ns.example.net/myip.example.net?type=A", 1, 0},
		{"dns://ns.example.net/myip.example.net?type=AAAA", 0, 1},
		{"dns://ns.example.net/myip.example.net?type=TXT", 1, 1},
		{"dns://ns.example.net/myip.example.net", 1, 1},
		{"dns://192.0.2.53/myip.example.net?type=TXT", 1, 0},
		{"aws-checkip", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			for fam, want := range map[Family]int{V4: tc.v4, V6: tc.v6} {
				ss, err := ParseSource(tc.spec, fam, SourceOptions{})
				if err != nil || len(ss) != want {
					t.Errorf("ParseSource(%q, %s) = %d sources, %v, want %d", tc.spec, fam, len(ss), err, want)
				}
			}
		})
	}
}

func TestOperatorOf(t *testing.T) {
	t.Parallel()
	tests := []struct{ host, want string }{
		{"api.ipify.org", "ipify.org"},
		{"api6.ipify.org", "ipify.org"},
		{"ipv4.icanhazip.com", "icanhazip.com"},
		{"a.b.example.co.uk", "example.co.uk"},
		{"1.1.1.1", "1.1.1.1"},
		{"2606:4700:4700::1111", "2606:4700:4700::1111"},
		{"Example.COM.", "example.com"},
		{"localhost", "localhost"},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			t.Parallel()
			if got := operatorOf(tc.host); got != tc.want {
				t.Errorf("operatorOf(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}

func TestFamilyString(t *testing.T) {
	t.Parallel()
	for f, want := range map[Family]string{V4: "IPv4", V6: "IPv6", 5: "Family(5)"} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q, want %q", int(f), got, want)
		}
	}
}
