package codec

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// seedLegacy is the design's example configuration.
var seedLegacy = Legacy{
	Factor:   -9.616013867352109,
	Alphabet: "odzmtaciru",
	Padding:  "befghjklnpqsvwxy",
}

const seedLegacyText = "-5538.823987594815mn-9692.941978290926cq-0.0ox-9.616013867352109db"

// fixedPicks returns a Rand that returns the given indexes in turn.
func fixedPicks(t testing.TB, idx ...int) func(int) int {
	return func(n int) int {
		if len(idx) == 0 {
			t.Fatalf("Rand(%d) called more often than expected", n)
		}
		i := idx[0]
		idx = idx[1:]
		return i
	}
}

// padIndexes finds the Rand results that produced text's padding letters.
func padIndexes(t testing.TB, l Legacy, text string) []int {
	t.Helper()
	groups, err := l.decodeGroups(text)
	if err != nil {
		t.Fatalf("decodeGroups(%q) = %v", text, err)
	}
	var idx []int
	for _, g := range groups {
		idx = append(idx, strings.IndexByte(l.pool(), g.pad))
	}
	return idx
}

func TestLegacySeedVector(t *testing.T) {
	t.Parallel()
	l := seedLegacy
	l.Rand = fixedPicks(t, 8, 10, 14, 0) // n, q, x, b
	got, err := l.Encode(netip.MustParseAddr("192.168.0.1"))
	if err != nil {
		t.Fatalf("Encode(192.168.0.1) error = %v", err)
	}
	if got != seedLegacyText {
		t.Fatalf("Encode(192.168.0.1) = %q, want %q", got, seedLegacyText)
	}
	ip, err := seedLegacy.Decode(seedLegacyText)
	if err != nil {
		t.Fatalf("Decode(%q) error = %v", seedLegacyText, err)
	}
	if want := netip.MustParseAddr("192.168.0.1"); ip != want {
		t.Fatalf("Decode(%q) = %v, want %v", seedLegacyText, ip, want)
	}
}

// TestLegacyPythonVectors checks the scheme against an independent Python
// implementation (testdata/legacy/gen_python_repr.py).
func TestLegacyPythonVectors(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../testdata/legacy/legacy_vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	count := 0
	for line := 1; sc.Scan(); line++ {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 6 {
			t.Fatalf("line %d: %d fields, want 6", line, len(fields))
		}
		factor, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		var idx []int
		for _, s := range strings.Split(fields[4], ",") {
			i, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			idx = append(idx, i)
		}
		ip := netip.MustParseAddr(fields[3])
		l := Legacy{Factor: factor, Alphabet: fields[1], Padding: fields[2], Rand: fixedPicks(t, idx...)}
		got, err := l.Encode(ip)
		if err != nil || got != fields[5] {
			t.Errorf("line %d: Legacy{Factor: %v}.Encode(%v) = %q, %v; want %q", line, factor, ip, got, err, fields[5])
		}
		back, err := l.Decode(fields[5])
		if err != nil || back != ip {
			t.Errorf("line %d: Legacy{Factor: %v}.Decode(%q) = %v, %v; want %v", line, factor, fields[5], back, err, ip)
		}
		count++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if count < 100 {
		t.Fatalf("read %d vectors, want at least 100", count)
	}
}

func TestPythonRepr(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../testdata/legacy/python_repr.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	count := 0
	for line := 1; sc.Scan(); line++ {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		hexBits, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("line %d: no tab", line)
		}
		b, err := strconv.ParseUint(hexBits, 16, 64)
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		x := math.Float64frombits(b)
		if got := PythonRepr(x); got != want {
			t.Errorf("line %d: PythonRepr(%#016x) = %q, want %q", line, b, got, want)
		}
		count++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if count < 1000 {
		t.Fatalf("read %d values, want at least 1000", count)
	}
}

func TestPythonReprExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{5, "5.0"},
		{1e16, "1e+16"},
		{9999999999999998, "9999999999999998.0"},
		{1e-4, "0.0001"},
		{1.5e-05, "1.5e-05"},
		{1.2345e20, "1.2345e+20"},
		{5e-324, "5e-324"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{0.0001234, "0.0001234"},
		{math.NaN(), "nan"},
		{math.Inf(-1), "-inf"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			t.Parallel()
			if got := PythonRepr(tt.in); got != tt.want {
				t.Errorf("PythonRepr(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestLegacyRoundTrip encodes and decodes over 100k random addresses and
// every octet value in every position, for many random factors.
func TestLegacyRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	factors := []float64{-9.616013867352109, 10, -10, 1e-300, -5e-324, 1e-5, math.Nextafter(0, 1) * 7, 9.999999999999998}
	for len(factors) < 40 {
		factors = append(factors, r.Float64()*20-10)
	}
	for len(factors) < 50 {
		factors = append(factors, (r.Float64()*2-1)*math.Pow(10, float64(-r.IntN(320))))
	}
	alphabets := []string{"odzmtaciru", "abcdefghij", "eqrstuvwxy"} // the last one holds 'e'
	var addrs []netip.Addr
	for pos := range 4 {
		for v := range 256 {
			a := [4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}
			a[pos] = byte(v)
			addrs = append(addrs, netip.AddrFrom4(a))
		}
	}
	const randomAddrs = 100_000
	for range randomAddrs {
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}))
	}
	count := 0
	for i, ip := range addrs {
		// Every address with one factor; the per-octet sweep with all.
		fs := factors[i%len(factors) : i%len(factors)+1]
		if i < 1024 {
			fs = factors
		}
		for _, f := range fs {
			l := Legacy{Factor: f, Alphabet: alphabets[i%len(alphabets)], Rand: func(n int) int { return r.IntN(n) }}
			text, err := l.Encode(ip)
			if err != nil {
				t.Fatalf("Legacy{Factor: %v}.Encode(%v) error = %v", f, ip, err)
			}
			got, err := l.Decode(text)
			if err != nil || got != ip {
				t.Fatalf("Legacy{Factor: %v}.Decode(%q) = %v, %v; want %v", f, text, got, err, ip)
			}
			count++
		}
	}
	if count < randomAddrs {
		t.Fatalf("round-tripped %d addresses, want at least %d", count, randomAddrs)
	}
}

func TestLegacyDecodeWhitespace(t *testing.T) {
	t.Parallel()
	text := " \r\n" + seedLegacyText + "\r\n"
	got, err := seedLegacy.Decode(text)
	if want := netip.MustParseAddr("192.168.0.1"); err != nil || got != want {
		t.Fatalf("Decode(%q) = %v, %v; want %v", text, got, err, want)
	}
}

func TestLegacyEmptyPaddingMeansComplement(t *testing.T) {
	t.Parallel()
	l := Legacy{Factor: seedLegacy.Factor, Alphabet: seedLegacy.Alphabet}
	if got, want := l.pool(), "befghjklnpqsvwxy"; got != want {
		t.Fatalf("pool() = %q, want %q", got, want)
	}
	got, err := l.Decode(seedLegacyText)
	if want := netip.MustParseAddr("192.168.0.1"); err != nil || got != want {
		t.Fatalf("Decode(%q) = %v, %v; want %v", seedLegacyText, got, err, want)
	}
}

func TestLegacyDecodeErrors(t *testing.T) {
	t.Parallel()
	// Groups of the seed text: "-5538.823987594815mn" (1-20),
	// "-9692.941978290926cq" (21-40), "-0.0ox" (41-46),
	// "-9.616013867352109db" (47-66).
	const g1, g2, g3, g4 = "-5538.823987594815mn", "-9692.941978290926cq", "-0.0ox", "-9.616013867352109db"
	tests := []struct {
		name      string
		text      string
		group     int
		pos       int
		errSubstr string
	}{
		{"empty", "", 1, 1, "text ends where a number"},
		{"only space", "  \n", 1, 1, "text ends where a number"},
		{"letter first", "x" + g2 + g3 + g4, 1, 1, "expected a digit"},
		{"bad key letter", "-5538.823987594815bn" + g2 + g3 + g4, 1, 19, "not a key letter"},
		{"padding letter from alphabet", "-5538.823987594815mo" + g2 + g3 + g4, 1, 20, "not a padding letter"},
		{"upper-case padding", "-5538.823987594815mN" + g2 + g3 + g4, 1, 20, "not a padding letter"},
		{"wrong key digit", g1 + "-9692.941978290926tq" + g3 + g4, 2, 39, "key letter 't' stands for digit 4, but 252 has key digit 9"},
		{"zero with key 1", g1 + g2 + "-0.0dx" + g4, 3, 45, "key letter 'd' stands for digit 1"},
		{"key 0 with a non-zero value", g1 + g2 + "-9.616013867352109ox" + g4, 3, 41, "only 0 has"},
		{"positive zero for negative factor", g1 + g2 + "0.0ox" + g4, 3, 41, "not written exactly"},
		{"non-integral", "-5538.0mn" + g2 + g3 + g4, 1, 1, "not a whole number"},
		{"out of range", "-9000.0mn" + g2 + g3 + g4, 1, 1, "outside 0..255"},
		{"negative n", "5538.823987594815mn" + g2 + g3 + g4, 1, 1, "outside 0..255"},
		{"extra digit", "-5538.8239875948150mn" + g2 + g3 + g4, 1, 1, "not written exactly"},
		{"exponent form for fixed value", "-5.538823987594815e+03mn" + g2 + g3 + g4, 1, 1, "not written exactly"},
		{"missing fraction", "-5538.mn" + g2 + g3 + g4, 1, 7, "after the decimal point"},
		{"bad exponent", "-5.5e+mn" + g2 + g3 + g4, 1, 7, "exponent"},
		{"huge number", "-1e+999mn" + g2 + g3 + g4, 1, 1, "out of range"},
		{"nan", "nanmn" + g2 + g3 + g4, 1, 1, "not a finite number"},
		{"inf", g1 + "-infcq" + g3 + g4, 2, 21, "not a finite number"},
		{"three groups", g1 + g2 + g3, 4, 47, "text ends where a number"},
		{"no key letter", g1 + g2 + g3 + "-9.616013867352109", 4, 65, "key letter should be"},
		{"no padding letter", g1 + g2 + g3 + "-9.616013867352109d", 4, 66, "padding letter should be"},
		{"five groups", seedLegacyText + g4, 4, 67, "after the fourth group"},
		{"trailing junk", seedLegacyText + "!", 4, 67, "after the fourth group"},
		{"inner space", g1 + " " + g2 + g3 + g4, 2, 21, "expected a digit"},
		{"two padding letters", g1 + "b" + g2 + g3 + g4, 2, 21, "expected a digit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := seedLegacy.Decode(tt.text)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%q) error = %v, want ErrMalformed", tt.text, err)
			}
			var le *legacyError
			if !errors.As(err, &le) {
				t.Fatalf("Decode(%q) error = %T, want *legacyError", tt.text, err)
			}
			if le.group != tt.group || le.pos != tt.pos {
				t.Errorf("Decode(%q) error at group %d, character %d; want group %d, character %d (%v)", tt.text, le.group, le.pos, tt.group, tt.pos, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.errSubstr) || !strings.Contains(msg, fmt.Sprintf("group %d at character %d", le.group, le.pos)) {
				t.Errorf("Decode(%q) error = %q, want it to contain %q and the group and position", tt.text, msg, tt.errSubstr)
			}
		})
	}
}

func TestLegacyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mod       func(*Legacy)
		errSubstr string // "" = valid
	}{
		{"seed", func(*Legacy) {}, ""},
		{"empty padding", func(l *Legacy) { l.Padding = "" }, ""},
		{"factor 10", func(l *Legacy) { l.Factor = 10 }, ""},
		{"factor -10", func(l *Legacy) { l.Factor = -10 }, ""},
		{"zero factor", func(l *Legacy) { l.Factor = 0 }, "factor is 0"},
		{"factor too big", func(l *Legacy) { l.Factor = 10.000000000000002 }, "outside [-10, 10]"},
		{"factor too small", func(l *Legacy) { l.Factor = -11 }, "outside [-10, 10]"},
		{"NaN factor", func(l *Legacy) { l.Factor = math.NaN() }, "finite"},
		{"Inf factor", func(l *Legacy) { l.Factor = math.Inf(1) }, "finite"},
		{"short alphabet", func(l *Legacy) { l.Alphabet = "abc" }, "has 3 characters"},
		{"repeated alphabet letter", func(l *Legacy) { l.Alphabet = "odzmtacirr" }, "appears twice"},
		{"upper-case alphabet", func(l *Legacy) { l.Alphabet = "Odzmtaciru" }, "not a lower-case"},
		{"padding overlaps", func(l *Legacy) { l.Padding = "bo" }, "also in the alphabet"},
		{"padding repeats", func(l *Legacy) { l.Padding = "bb" }, "appears twice"},
		{"padding digit", func(l *Legacy) { l.Padding = "b1" }, "not a lower-case"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := seedLegacy
			tt.mod(&l)
			err := l.Validate()
			if tt.errSubstr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.errSubstr)
			}
			if _, err := l.Encode(netip.MustParseAddr("1.2.3.4")); err == nil {
				t.Errorf("Encode with invalid settings: error = nil, want one")
			}
			if _, err := l.Decode(seedLegacyText); err == nil || errors.Is(err, ErrMalformed) {
				t.Errorf("Decode with invalid settings: error = %v, want a settings error (not ErrMalformed)", err)
			}
		})
	}
}

func TestLegacyEncodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ip   netip.Addr
		rand func(int) int
	}{
		{"zero address", netip.Addr{}, nil},
		{"IPv6", netip.MustParseAddr("2001:db8::1"), nil},
		{"IPv4-mapped IPv6", netip.MustParseAddr("::ffff:1.2.3.4"), nil},
		{"Rand too big", netip.MustParseAddr("1.2.3.4"), func(n int) int { return n }},
		{"Rand negative", netip.MustParseAddr("1.2.3.4"), func(int) int { return -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := seedLegacy
			l.Rand = tt.rand
			if got, err := l.Encode(tt.ip); err == nil {
				t.Fatalf("Encode(%v) = %q, nil; want an error", tt.ip, got)
			}
		})
	}
}

func TestLegacyDefaultRand(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("10.0.200.7")
	seen := map[string]bool{}
	for range 50 {
		text, err := seedLegacy.Encode(ip)
		if err != nil {
			t.Fatalf("Encode(%v) error = %v", ip, err)
		}
		got, err := seedLegacy.Decode(text)
		if err != nil || got != ip {
			t.Fatalf("Decode(%q) = %v, %v; want %v", text, got, err, ip)
		}
		seen[text] = true
	}
	if len(seen) < 2 {
		t.Fatalf("50 encodings with crypto/rand padding gave %d distinct texts, want several", len(seen))
	}
	for n := 1; n <= 26; n++ {
		for range 20 {
			if i := cryptoIndex(n); i < 0 || i >= n {
				t.Fatalf("cryptoIndex(%d) = %d, want [0, %d)", n, i, n)
			}
		}
	}
}

func FuzzLegacyDecode(f *testing.F) {
	f.Add(seedLegacyText, seedLegacy.Factor)
	f.Add("0.0oe1.0db9.0dh18.0zk", 1.0)
	f.Add("-1.5e-05db-0.0ox", -1.5e-05)
	f.Add(" 1e+16mn\n", 7.0)
	f.Fuzz(func(t *testing.T, text string, factor float64) {
		l := Legacy{Factor: factor, Alphabet: seedLegacy.Alphabet}
		if l.Validate() != nil {
			l.Factor = seedLegacy.Factor
		}
		ip, err := l.Decode(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%q) error = %v, want ErrMalformed", text, err)
			}
			return
		}
		if !ip.Is4() {
			t.Fatalf("Decode(%q) = %v, want an IPv4 address", text, ip)
		}
		l.Rand = fixedPicks(t, padIndexes(t, l, text)...)
		again, err := l.Encode(ip)
		if err != nil {
			t.Fatalf("Encode(%v) error = %v", ip, err)
		}
		if want := strings.Trim(text, " \t\r\n"); again != want {
			t.Fatalf("Decode(%q) = %v, which encodes as %q", text, ip, again)
		}
	})
}

func BenchmarkLegacyEncode(b *testing.B) {
	l := seedLegacy
	l.Rand = func(int) int { return 0 }
	ip := netip.MustParseAddr("192.168.0.1")
	for b.Loop() {
		if _, err := l.Encode(ip); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLegacyDecode(b *testing.B) {
	for b.Loop() {
		if _, err := seedLegacy.Decode(seedLegacyText); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLegacySettingErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		l    Legacy
		want []string // "setting: message start"
	}{
		{"valid", seedLegacy, nil},
		{"all three", Legacy{Factor: 0, Alphabet: "abc", Padding: "a1"}, []string{
			`factor: is 0; want a number in [-10, 10] other than 0`,
			`alphabet: "abc" has 3 characters; want exactly 10 different lower-case letters a-z`,
			`padding: "a1": letter 'a' is also in the alphabet;`,
		}},
		{"alphabet only", Legacy{Factor: 2, Alphabet: "odzmtacirr"}, []string{`alphabet: "odzmtacirr": letter 'r' appears twice;`}},
		{"padding only", Legacy{Factor: -10, Alphabet: "odzmtaciru", Padding: "bB"}, []string{`padding: "bB": character 2 is not a lower-case ASCII letter;`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := tt.l.SettingErrors()
			var got []string
			for _, e := range errs {
				got = append(got, e.Setting+": "+e.Msg)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("SettingErrors() = %q, want %d errors like %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("SettingErrors()[%d] = %q, want it to start %q", i, got[i], tt.want[i])
				}
			}
			err := tt.l.Validate()
			if len(errs) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			var se *LegacySettingError
			if !errors.As(err, &se) || *se != *errs[0] || err.Error() != "legacy "+errs[0].Setting+" "+errs[0].Msg {
				t.Errorf("Validate() = %v, want the first setting error %v", err, errs[0])
			}
		})
	}
}

func TestScanNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		p    int // where to start
		end  int // index after the number, or of the fault
		want string
	}{
		{"0.0ox", 0, 3, ""},
		{"-5538.823987594815mn", 0, 18, ""},
		{"x12a", 1, 3, ""},
		{"1e-05ab", 0, 5, ""},
		{"-1.5e+300ab", 0, 9, ""},
		{"12e5ab", 0, 2, ""}, // no sign: the exponent is not part of the number
		{"", 0, 0, "text ends where a number should be"},
		{"-", 0, 1, "text ends where a number should be"},
		{"-nanox", 0, 0, "not a finite number"},
		{"infox", 0, 0, "not a finite number"},
		{"+1ox", 0, 0, `expected a digit, found '+'`},
		{"-.5ox", 0, 1, `expected a digit, found '.'`},
		{"1.ox", 0, 2, "expected a digit after the decimal point"},
		{"1.", 0, 2, "expected a digit after the decimal point"},
		{"1e+ox", 0, 3, "expected a digit in the exponent"},
		{"1.5e-", 0, 5, "expected a digit in the exponent"},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			t.Parallel()
			end, err := scanNumber(tt.s, tt.p)
			msg, at := "", end
			if err != nil {
				msg, at = err.msg, err.at
			}
			if at != tt.end || msg != tt.want {
				t.Errorf("scanNumber(%q, %d) = %d, %q; want %d, %q", tt.s, tt.p, at, msg, tt.end, tt.want)
			}
		})
	}
}

func TestOctet(t *testing.T) {
	t.Parallel()
	l := seedLegacy // Factor -9.616013867352109, Alphabet "odzmtaciru"
	tests := []struct {
		name   string
		number string
		k      int
		want   int
		at     int    // index of the fault within number
		errSub string // "" = valid
	}{
		{"192", "-5538.823987594815", 3, 192, 0, ""},
		{"zero", "-0.0", 0, 0, 0, ""},
		{"one", "-9.616013867352109", 1, 1, 0, ""},
		{"digit 0 but not zero", "-9.616013867352109", 0, 0, 0, "only 0 has"},
		{"above 255", "-100000.0", 1, 0, 0, "outside 0..255"},
		{"negative", "9.616013867352109", 1, 0, 0, "outside 0..255"},
		{"not whole", "-14.0", 1, 0, 0, "not a whole number"},
		{"key digit of another number", "-19.232027734704218", 1, 0, 19, "has key digit 2"},
		{"extra digits", "-5538.8239875948150", 3, 0, 0, "not written exactly as 192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			x, err := strconv.ParseFloat(tt.number, 64)
			if err != nil {
				t.Fatal(err)
			}
			n, serr := l.octet(tt.number, x, tt.k)
			if tt.errSub == "" {
				if serr != nil || n != tt.want {
					t.Errorf("octet(%s, key %d) = %d, %v; want %d", tt.number, tt.k, n, serr, tt.want)
				}
				return
			}
			if serr == nil || serr.at != tt.at || !strings.Contains(serr.msg, tt.errSub) {
				t.Errorf("octet(%s, key %d) = %d, %+v; want a fault at %d containing %q", tt.number, tt.k, n, serr, tt.at, tt.errSub)
			}
		})
	}
}
