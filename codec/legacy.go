package codec

import (
	crand "crypto/rand"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Legacy is the original tool's message format. It is OBFUSCATION, NOT
// SECURITY: it hides an IPv4 address from a casual glance only. Anyone who
// sees a message and guesses the scheme can read it, and anyone can forge
// one. It exists so old deployments can migrate; use Seal and Open
// otherwise.
//
// Each of the four numbers n of the address is written as the float
// n × (k × Factor), where k is n's key digit (the repeated sum of its
// decimal digits: 0 for 0, 1..9 otherwise), in the shortest form Python's
// repr gives (see PythonRepr); then the letter Alphabet[k]; then one random
// letter of Padding. The four groups are concatenated. For example, with
// Alphabet "odzmtaciru", Padding "befghjklnpqsvwxy" and Factor
// -9.616013867352109, 192.168.0.1 is written
// "-5538.823987594815mn-9692.941978290926cq-0.0ox-9.616013867352109db".
//
// The zero Legacy is invalid (see Validate). A Legacy is safe for
// concurrent use if its Rand is.
type Legacy struct {
	// Factor is the shared factor, in [-10, 10] and not zero.
	Factor float64
	// Alphabet is 10 distinct lower-case ASCII letters; the letter at index
	// k stands for key digit k.
	Alphabet string
	// Padding holds the distinct lower-case ASCII letters, none in
	// Alphabet, that may follow each key letter. "" means every lower-case
	// letter not in Alphabet (for Encode and Decode alike).
	Padding string
	// Rand returns a uniformly random index in [0, n) to pick each padding
	// letter; an index out of range makes Encode fail. nil means
	// crypto/rand.
	Rand func(n int) int
}

// Validate reports whether l's settings are usable. A non-nil error is a
// *LegacySettingError for the first unusable setting (factor, alphabet,
// padding). Encode and Decode call it first.
func (l Legacy) Validate() error {
	if errs := l.SettingErrors(); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// LegacySettingError says which Legacy setting is unusable and why. A
// configuration file names the setting after its own key and shows Msg.
type LegacySettingError struct {
	// Setting is "factor", "alphabet" or "padding".
	Setting string
	// Msg gives the bad value and what would be valid, e.g.
	// `"abc" has 3 characters; want exactly 10 different lower-case letters a-z`.
	Msg string
}

func (e *LegacySettingError) Error() string { return "legacy " + e.Setting + " " + e.Msg }

// SettingErrors returns one error per unusable setting of l, in the order
// factor, alphabet, padding; nil when l is valid.
func (l Legacy) SettingErrors() []*LegacySettingError {
	var errs []*LegacySettingError
	bad := func(setting, format string, args ...any) {
		errs = append(errs, &LegacySettingError{Setting: setting, Msg: fmt.Sprintf(format, args...)})
	}
	const wantFactor = "want a number in [-10, 10] other than 0"
	switch f := l.Factor; {
	case math.IsNaN(f) || math.IsInf(f, 0):
		bad("factor", "is %v; want a finite number in [-10, 10] other than 0", f)
	case f == 0:
		bad("factor", "is 0; "+wantFactor)
	case f < -10 || f > 10:
		bad("factor", "%v is outside [-10, 10]; "+wantFactor, f)
	}
	const wantAlphabet = "want exactly 10 different lower-case letters a-z"
	seen, msg := letterSet(l.Alphabet, nil)
	switch {
	case len(l.Alphabet) != 10:
		bad("alphabet", "%q has %d characters; "+wantAlphabet, l.Alphabet, len(l.Alphabet))
	case msg != "":
		bad("alphabet", "%q: %s; "+wantAlphabet, l.Alphabet, msg)
	}
	if _, msg := letterSet(l.Padding, &seen); msg != "" {
		bad("padding", "%q: %s; want different lower-case letters a-z that are not in the alphabet, or none for all such letters", l.Padding, msg)
	}
	return errs
}

// letterSet returns the set of the letters of s, or what is wrong with s
// when it holds something else than distinct lower-case ASCII letters or a
// letter that is also in other.
func letterSet(s string, other *[26]bool) ([26]bool, string) {
	var set [26]bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 'a' || c > 'z':
			return set, fmt.Sprintf("character %d is not a lower-case ASCII letter", i+1)
		case other != nil && other[c-'a']:
			return set, fmt.Sprintf("letter %q is also in the alphabet", c)
		case set[c-'a']:
			return set, fmt.Sprintf("letter %q appears twice", c)
		}
		set[c-'a'] = true
	}
	return set, ""
}

// pool returns the padding letters in use.
func (l Legacy) pool() string {
	if l.Padding != "" {
		return l.Padding
	}
	var b strings.Builder
	for c := byte('a'); c <= 'z'; c++ {
		if strings.IndexByte(l.Alphabet, c) < 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// keyDigit is the repeated sum of n's decimal digits: 0 for 0, else 1..9.
func keyDigit(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + (n-1)%9
}

// legacyValue is the float written for n: n × (k × factor), in that order.
func legacyValue(n, k int, factor float64) float64 {
	kf := float64(k) * factor
	return float64(n) * kf
}

// Encode writes an IPv4 address in the legacy format. It fails if l is
// invalid, if ip is not an IPv4 address (IPv4-mapped IPv6 included: unmap
// it first), or if Rand returns an index out of range.
func (l Legacy) Encode(ip netip.Addr) (string, error) {
	if err := l.Validate(); err != nil {
		return "", fmt.Errorf("legacy encode: %w", err)
	}
	if !ip.Is4() {
		return "", fmt.Errorf("legacy encode: %v is not an IPv4 address (the legacy format carries IPv4 only)", ip)
	}
	pool := l.pool()
	pick := l.Rand
	if pick == nil {
		pick = cryptoIndex
	}
	var b strings.Builder
	for i, octet := range ip.As4() {
		n := int(octet)
		k := keyDigit(n)
		j := pick(len(pool))
		if j < 0 || j >= len(pool) {
			return "", fmt.Errorf("legacy encode: Rand(%d) returned %d for group %d, outside [0, %d)", len(pool), j, i+1, len(pool))
		}
		b.WriteString(PythonRepr(legacyValue(n, k, l.Factor)))
		b.WriteByte(l.Alphabet[k])
		b.WriteByte(pool[j])
	}
	return b.String(), nil
}

// cryptoIndex returns a uniform index in [0, n) from crypto/rand, for
// 0 < n <= 256.
func cryptoIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		_, _ = crand.Read(b[:]) // never fails (crypto/rand.Read crashes the program instead)
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// legacyError is a decoding error: which group, and where.
type legacyError struct {
	group int // 1..4
	pos   int // 1-based byte position in the text given to Decode
	msg   string
}

func (e *legacyError) Error() string {
	return fmt.Sprintf("%v: legacy group %d at character %d: %s", ErrMalformed, e.group, e.pos, e.msg)
}

func (e *legacyError) Unwrap() error { return ErrMalformed }

// legacyGroup is one decoded group.
type legacyGroup struct {
	n      int
	number string // the float as written
	key    byte   // alphabet letter
	pad    byte   // padding letter
}

// Decode reads a legacy-format address. Surrounding whitespace is ignored;
// anything else that is not exactly four well-formed groups is rejected.
// Each group must be a number written as Encode writes it, a letter of the
// Alphabet equal to the number's key digit, and a padding letter, and must
// stand for an integer in 0..255. A message error wraps ErrMalformed and
// names the group (1-4) and the character position (counting from 1); an
// invalid l gives Validate's error instead.
func (l Legacy) Decode(text string) (netip.Addr, error) {
	if err := l.Validate(); err != nil {
		return netip.Addr{}, fmt.Errorf("legacy decode: %w", err)
	}
	groups, err := l.decodeGroups(text)
	if err != nil {
		return netip.Addr{}, err
	}
	var a [4]byte
	for i, g := range groups {
		a[i] = byte(g.n)
	}
	return netip.AddrFrom4(a), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanError is what is wrong at a byte index of a legacy text.
type scanError struct {
	at  int // byte index into the text scanned
	msg string
}

// scanNumber reads the number that starts at s[p:], written as Encode
// writes it: -?D+(.D+)?(e[+-]D+)?. It returns the index just after it.
func scanNumber(s string, p int) (int, *scanError) {
	start := p
	if p < len(s) && s[p] == '-' {
		p++
	}
	switch rest := s[p:]; {
	case rest == "":
		return p, &scanError{p, "text ends where a number should be"}
	case strings.HasPrefix(rest, "nan") || strings.HasPrefix(rest, "inf"):
		return p, &scanError{start, "not a finite number"}
	case !isDigit(rest[0]):
		return p, &scanError{p, fmt.Sprintf("expected a digit, found %q", rest[0])}
	}
	p = skipDigits(s, p)
	var err *scanError
	if p < len(s) && s[p] == '.' {
		if p, err = needDigits(s, p+1, "expected a digit after the decimal point"); err != nil {
			return p, err
		}
	}
	if p+1 < len(s) && s[p] == 'e' && (s[p+1] == '+' || s[p+1] == '-') {
		if p, err = needDigits(s, p+2, "expected a digit in the exponent"); err != nil {
			return p, err
		}
	}
	return p, nil
}

// needDigits reads one or more digits at s[p:], or fails with msg.
func needDigits(s string, p int, msg string) (int, *scanError) {
	if p >= len(s) || !isDigit(s[p]) {
		return p, &scanError{p, msg}
	}
	return skipDigits(s, p), nil
}

func skipDigits(s string, p int) int {
	for p < len(s) && isDigit(s[p]) {
		p++
	}
	return p
}

// octet is the whole number 0..255 that number (= x) stands for after key
// digit k: x / (k × Factor), which must have key digit k and be written
// exactly as Encode writes it. A scanError's index counts from the start of
// number; l must be valid.
func (l Legacy) octet(number string, x float64, k int) (int, *scanError) {
	key := l.Alphabet[k]
	n := 0
	if k == 0 {
		if x != 0 {
			return 0, &scanError{0, fmt.Sprintf("key letter %q stands for digit 0, which only 0 has, but the number is %s", key, number)}
		}
	} else {
		q := x / (float64(k) * l.Factor)
		if !(q > -0.5 && q < 255.5) {
			return 0, &scanError{0, fmt.Sprintf("number %s stands for %.6g, outside 0..255", number, q)}
		}
		r := math.Round(q)
		if math.Abs(q-r) > 1e-6 {
			return 0, &scanError{0, fmt.Sprintf("number %s stands for %.9g, not a whole number", number, q)}
		}
		n = int(r)
	}
	if d := keyDigit(n); d != k {
		return 0, &scanError{len(number), fmt.Sprintf("key letter %q stands for digit %d, but %d has key digit %d", key, k, n, d)}
	}
	if PythonRepr(legacyValue(n, k, l.Factor)) != number {
		return 0, &scanError{0, fmt.Sprintf("number %s is not written exactly as %d is (extra or missing digits?)", number, n)}
	}
	return n, nil
}

// decodeGroups parses and checks the four groups; l must be valid.
func (l Legacy) decodeGroups(text string) ([4]legacyGroup, error) {
	var groups [4]legacyGroup
	pool := l.pool()
	const space = " \t\r\n"
	s := strings.TrimRight(text, space)
	p := len(s) - len(strings.TrimLeft(s, space)) // index into text and s
	for gi := range groups {
		fail := func(at int, msg string) ([4]legacyGroup, error) {
			return groups, &legacyError{group: gi + 1, pos: at + 1, msg: msg}
		}
		start := p
		var err *scanError
		if p, err = scanNumber(s, p); err != nil {
			return fail(err.at, err.msg)
		}
		number := s[start:p]
		x, perr := strconv.ParseFloat(number, 64)
		if perr != nil || math.IsInf(x, 0) {
			return fail(start, fmt.Sprintf("number %s is out of range", number))
		}

		// The key letter and the padding letter.
		if p >= len(s) {
			return fail(p, "text ends where the key letter should be")
		}
		k := strings.IndexByte(l.Alphabet, s[p])
		if k < 0 {
			return fail(p, fmt.Sprintf("%q is not a key letter (alphabet %q)", s[p], l.Alphabet))
		}
		p++
		if p >= len(s) {
			return fail(p, "text ends where the padding letter should be")
		}
		if strings.IndexByte(pool, s[p]) < 0 {
			return fail(p, fmt.Sprintf("%q is not a padding letter", s[p]))
		}
		pad := s[p]
		p++

		n, err := l.octet(number, x, k)
		if err != nil {
			return fail(start+err.at, err.msg)
		}
		groups[gi] = legacyGroup{n: n, number: number, key: l.Alphabet[k], pad: pad}
	}
	if p < len(s) {
		return groups, &legacyError{group: 4, pos: p + 1, msg: fmt.Sprintf("unexpected %q after the fourth group", s[p])}
	}
	return groups, nil
}
