package discover

import (
	"net/netip"
	"strings"
	"testing"
)

func TestChooseV6(t *testing.T) {
	t.Parallel()
	const (
		obs    = "2001:4860:4860:1:1c2d:3e4f:5a6b:7c8d" // temporary, seen by services
		stable = "2001:4860:4860:1:abcd:1234:5678:9abc" // RFC 7217 stable id
		eui    = "2001:4860:4860:1:211:22ff:fe33:4455"  // EUI-64 id
		other  = "2001:4860:4860:2:abcd:1234:5678:9abc" // another /64
	)
	la := func(s string, temp, depr bool) LocalAddr {
		return LocalAddr{Addr: netip.MustParseAddr(s), Temporary: temp, Deprecated: depr}
	}
	tests := []struct {
		name   string
		locals []LocalAddr
		suffix string
		want   string
	}{
		{"no candidate", nil, "", obs},
		{"only the temporary", []LocalAddr{la(obs, true, false)}, "", obs},
		{"stable preferred over temporary", []LocalAddr{la(obs, true, false), la(stable, false, false)}, "", stable},
		{"deprecated stable skipped", []LocalAddr{la(obs, true, false), la(stable, false, true)}, "", obs},
		{"other prefix ignored", []LocalAddr{la(obs, true, false), la(other, false, false)}, "", obs},
		{"observed itself stable", []LocalAddr{la(obs, false, false), la("2001:4860:4860:1::ffff", false, false)}, "", obs},
		{"eui-64 preferred", []LocalAddr{la(stable, false, false), la(eui, false, false)}, "", eui},
		{"no flags known: eui-64 beats observed", []LocalAddr{la(obs, false, false), la(eui, false, false)}, "", eui},
		{"lowest of several stable", []LocalAddr{la("2001:4860:4860:1::20", false, false), la("2001:4860:4860:1::10", false, false)}, "", "2001:4860:4860:1::10"},
		{"link-local and v4 ignored", []LocalAddr{la("fe80::1", false, false), la("192.0.2.1", false, false)}, "", obs},
		{"suffix", []LocalAddr{la(stable, false, false)}, "::10", "2001:4860:4860:1::10"},
		{"long suffix", nil, "::1:2:3:4", "2001:4860:4860:1:1:2:3:4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var suffix netip.Addr
			if tc.suffix != "" {
				var err error
				if suffix, err = parseSuffix(tc.suffix); err != nil {
					t.Fatalf("parseSuffix(%q) = %v", tc.suffix, err)
				}
			}
			got, why := chooseV6(netip.MustParseAddr(obs), tc.locals, suffix)
			if got != netip.MustParseAddr(tc.want) {
				t.Errorf("chooseV6(%s, %v, %q) = %v (%s), want %s", obs, tc.locals, tc.suffix, got, why, tc.want)
			}
		})
	}
}

func TestParseSuffix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, err string }{
		{"::10", ""},
		{"::1:0:0:1", ""},
		{"::", "must not be zero"},
		{"2001:db8::10", "last 64 bits"},
		{"10", "interface id"},
		{"::ffff:1.2.3.4", "interface id"},
		{"1.2.3.4", "interface id"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			_, err := parseSuffix(tc.in)
			if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("parseSuffix(%q) = %v, want error %q", tc.in, err, tc.err)
			}
		})
	}
}

func TestParseIfInet6(t *testing.T) {
	t.Parallel()
	const in = `00000000000000000000000000000001 01 80 10 80       lo
20014860486000010211 22fffe334455 02 40 00 80     eth0
`
	if _, err := parseIfInet6(strings.NewReader(in)); err == nil {
		t.Errorf("parseIfInet6(malformed) = nil error, want an error")
	}
	const good = `00000000000000000000000000000001 01 80 10 80       lo
2001486048600001021122fffe334455 02 40 00 80     eth0
200148604860000114c2d3e4f5a6b7c8 02 40 00 01     eth0
20014860486000012222222222222222 02 40 00 21     eth0
20014860486000013333333333333333 02 40 00 40     eth0
fe800000000000000211 22fffe334455 02 40 20 80     eth0
`
	if _, err := parseIfInet6(strings.NewReader(good)); err == nil {
		t.Errorf("parseIfInet6(space in address) = nil error, want an error")
	}
	got, err := parseIfInet6(strings.NewReader(strings.Replace(good, "0211 22ff", "021122ff", 1)))
	if err != nil {
		t.Fatalf("parseIfInet6() error = %v", err)
	}
	want := []LocalAddr{
		{Addr: netip.MustParseAddr("::1")},
		{Addr: netip.MustParseAddr("2001:4860:4860:1:211:22ff:fe33:4455")},
		{Addr: netip.MustParseAddr("2001:4860:4860:1:14c2:d3e4:f5a6:b7c8"), Temporary: true},
		{Addr: netip.MustParseAddr("2001:4860:4860:1:2222:2222:2222:2222"), Temporary: true, Deprecated: true},
		// the tentative 3333:: address is left out
		{Addr: netip.MustParseAddr("fe80::211:22ff:fe33:4455")},
	}
	if len(got) != len(want) {
		t.Fatalf("parseIfInet6() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("parseIfInet6()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestHostLocalAddrs(t *testing.T) {
	t.Parallel()
	// Reads this machine's interfaces; there is always at least loopback
	// (which /proc/net/if_inet6 lists when IPv6 is enabled).
	if _, err := hostLocalAddrs(); err != nil {
		t.Errorf("hostLocalAddrs() error = %v", err)
	}
}
