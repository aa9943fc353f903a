package config

import (
	"errors"
	"strings"
	"testing"
)

// TestSameRulesAsPackages checks that config accepts exactly what the
// packages that use a setting accept: a value config lets through must not
// make the server fail at start, after `ipsync check` said the file is fine.
func TestSameRulesAsPackages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(string) string
		key  string // the key that must be named
		want string // a phrase of the message
	}{
		{"zero ipv6 suffix", add("publisher:\n  ipv6_suffix: '::'\n"), "publisher.ipv6_suffix", "must not be zero"},
		{"ipv6 suffix with a zone", add("publisher:\n  ipv6_suffix: '::10%eth0'\n"), "publisher.ipv6_suffix", "interface id such as ::10"},
		{"IPv4-mapped suffix", add("publisher:\n  ipv6_suffix: '::ffff:1.2.3.4'\n"), "publisher.ipv6_suffix", "interface id"},
		{"infinite factor", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: .inf\n    alphabet: odzmtaciru\n"), "codec.legacy.factor", "finite"},
		{"upper-case alphabet", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 2\n    alphabet: Odzmtaciru\n"), "codec.legacy.alphabet", "not a lower-case"},
		{"padding repeats", rep("codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 2\n    alphabet: odzmtaciru\n    padding: bb\n"), "codec.legacy.padding", "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("c.yaml", []byte(tt.edit(validYAML)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse() = %v, want *Error", err)
			}
			for _, p := range ce.Problems {
				if p.Key == tt.key && strings.Contains(p.Msg, tt.want) {
					return
				}
			}
			t.Errorf("Parse() problems = %q, want key %q with %q", err, tt.key, tt.want)
		})
	}
}

// TestLegacyProblemsAll checks that every bad legacy setting is reported at
// once, each under its own key and line, with the value and the fix.
func TestLegacyProblemsAll(t *testing.T) {
	t.Parallel()
	y := strings.Replace(validYAML, "codec:\n", "codec:\n  format: legacy\n  legacy:\n    factor: 0\n    alphabet: abc\n    padding: a1\n", 1)
	_, err := Parse("c.yaml", []byte(y))
	for _, want := range []string{
		`c.yaml: line 13: codec.legacy.factor: is 0; want a number in [-10, 10] other than 0`,
		`c.yaml: line 14: codec.legacy.alphabet: "abc" has 3 characters; want exactly 10 different lower-case letters a-z`,
		`c.yaml: line 15: codec.legacy.padding: "a1": `,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse() = %v\nwant a line %q", err, want)
		}
	}
}

// TestSuffixMessage checks that the ipv6_suffix message names the key once,
// then the value and the fix.
func TestSuffixMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse("c.yaml", []byte(validYAML+"publisher:\n  ipv6_suffix: 2001:db8::1\n"))
	want := `c.yaml: line 13: publisher.ipv6_suffix: "2001:db8::1": only the last 64 bits, the interface id, may be set (e.g. ::10)`
	if err == nil || err.Error() != want {
		t.Errorf("Parse() = %v\nwant %s", err, want)
	}
}
