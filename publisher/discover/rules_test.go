package discover

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheckPublic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr  string
		allow Exceptions
		err   string // "" = public
	}{
		{"8.8.4.4", 0, ""},
		{"2606:4700::1", 0, ""},
		{"100.64.1.1", 0, "carrier-grade NAT range 100.64.0.0/10"},
		{"100.64.1.1", DocumentationRanges | LoopbackAndPrivate, "carrier-grade NAT"},
		{"10.0.0.1", 0, "private address"},
		{"10.0.0.1", DocumentationRanges, "private address"},
		{"10.0.0.1", LoopbackAndPrivate, ""},
		{"127.0.0.1", 0, "loopback address"},
		{"203.0.113.7", 0, "documentation range 203.0.113.0/24"},
		{"203.0.113.7", DocumentationRanges, ""},
		{"203.0.113.7", LoopbackAndPrivate, "documentation range"},
		{"192.0.2.1", DocumentationRanges, ""},
		{"198.51.100.1", DocumentationRanges, ""},
		{"2001:db8::7", 0, "documentation range 2001:db8::/32"},
		{"2001:db8::7", DocumentationRanges, ""},
		{"3fff::1", DocumentationRanges, ""},
		{"198.18.0.1", DocumentationRanges, "benchmarking range"},
		{"::ffff:8.8.4.4", 0, "IPv4-mapped"},
		{"fe80::1%eth0", 0, "zone"},
		{"fd00::1", 0, "private address"},
		{"4000::1", 0, "outside the global unicast range"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			err := CheckPublic(netip.MustParseAddr(tc.addr), tc.allow)
			if tc.err == "" {
				if err != nil {
					t.Errorf("CheckPublic(%s, %d) = %v, want nil", tc.addr, tc.allow, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), netip.MustParseAddr(tc.addr).String()) {
				t.Errorf("CheckPublic(%s, %d) = %v, want an error naming the address and %q", tc.addr, tc.allow, err, tc.err)
			}
		})
	}
	if err := CheckPublic(netip.Addr{}, 0); err == nil {
		t.Errorf("CheckPublic(invalid) = nil, want an error")
	}
}

// sourcesOf parses IPv4 sources of specs; it does no I/O.
func sourcesOf(t *testing.T, specs ...string) []Source {
	t.Helper()
	var ss []Source
	for _, spec := range specs {
		s, err := ParseSource(spec, V4, SourceOptions{})
		if err != nil {
			t.Fatalf("ParseSource(%q) = %v", spec, err)
		}
		ss = append(ss, s...)
	}
	return ss
}

func TestCannotAgree(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		specs []string
		agree int
		want  string // "" = can agree
	}{
		{"none", nil, 2, "0 independent operator(s) among the sources, but agree is 2"},
		{"two https operators", []string{"ipify", "aws-checkip"}, 2, ""},
		{"https and plain dns", []string{"ipify", "google-dns"}, 2, ""},
		{"dns over tls and plain dns", []string{"dns+tls://1.1.1.1/whoami.cloudflare?type=TXT&class=CH", "google-dns"}, 2, ""},
		{"plain dns only", []string{"google-dns", "opendns-dns"}, 2, "no authenticated source"},
		{"one plain dns, agree 1", []string{"google-dns"}, 1, "no authenticated source"},
		{"one https, agree 1", []string{"ipify"}, 1, ""},
		{"one operator twice", []string{"cloudflare-trace", "icanhazip"}, 2, "1 independent operator(s) among the sources, but agree is 2"},
		{"defaults", DefaultSources(), 3, ""},
		{"defaults, agree above operators", DefaultSources(), 6, "5 independent operator(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := cannotAgree(sourcesOf(t, tc.specs...), tc.agree)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("cannotAgree(%v, %d) = %q, want %q", tc.specs, tc.agree, got, tc.want)
			}
		})
	}
}

func TestBuildSources(t *testing.T) {
	t.Parallel()
	both := map[Family]Mode{V4: Auto, V6: Auto}
	tests := []struct {
		name   string
		specs  []string
		modes  map[Family]Mode
		v4, v6 []string // source names
		err    string
	}{
		{"presets, both families", []string{"ipify", "aws-checkip", "google-dns"}, both,
			[]string{"ipify", "aws-checkip", "google-dns"}, []string{"ipify", "google-dns"}, ""},
		{"ipv6 off", []string{"ipify", "aws-checkip"}, map[Family]Mode{V4: On, V6: Off},
			[]string{"ipify", "aws-checkip"}, nil, ""},
		{"ip literal serves its family only", []string{"dns://192.0.2.53/myip.test", "dns://[2001:db8::53]/myip.test"}, both,
			[]string{"dns://192.0.2.53/myip.test"}, []string{"dns://[2001:db8::53]/myip.test"}, ""},
		{"none", []string{}, both, nil, nil, "no sources configured"},
		{"duplicate", []string{"ipify", "ipify"}, both, nil, nil, `source "ipify" listed twice`},
		{"family not served", []string{"aws-checkip"}, map[Family]Mode{V4: Off, V6: On}, nil, nil, `source "aws-checkip" serves none of the enabled families`},
		{"bad spec", []string{"ftp://x.test/"}, both, nil, nil, `unsupported scheme "ftp"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := buildSources(tc.specs, tc.modes, SourceOptions{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("buildSources(%v) = %v, want an error containing %q", tc.specs, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildSources(%v) = %v", tc.specs, err)
			}
			for fam, want := range map[Family][]string{V4: tc.v4, V6: tc.v6} {
				var names []string
				for _, s := range got[fam] {
					names = append(names, s.Name())
				}
				if !slices.Equal(names, want) {
					t.Errorf("buildSources(%v)[%s] = %v, want %v", tc.specs, fam, names, want)
				}
			}
		})
	}
}
