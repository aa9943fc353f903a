package codec

import (
	"math"
	"strconv"
	"strings"
)

// PythonRepr writes f as Python 3's repr(f) does: the shortest decimal that
// reads back as f; fixed notation with at least one digit after the point
// ("5.0", "-0.0", "0.0001") when 1e-4 <= |f| < 1e16 or f is zero, otherwise
// exponent notation with a signed, at least two-digit exponent ("1.5e-05",
// "1e+16", "1.2345e+20"); "nan", "inf" and "-inf" for the rest.
func PythonRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	sign := ""
	if math.Signbit(f) {
		sign = "-"
		f = -f
	}
	// s is "d.ddde±XX" or "de±XX": the shortest round-trip digits.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expText, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)

	// Python (float_repr_style "short", repr mode 'r') switches to exponent
	// notation when the decimal point position decpt = exp+1 is <= -4 or
	// > 16. Zero has exp 0 and stays fixed.
	if exp < -4 || exp >= 16 {
		var b strings.Builder
		b.WriteString(sign)
		b.WriteString(mant)
		b.WriteByte('e')
		if exp < 0 {
			b.WriteByte('-')
			exp = -exp
		} else {
			b.WriteByte('+')
		}
		if exp < 10 {
			b.WriteByte('0')
		}
		b.WriteString(strconv.Itoa(exp))
		return b.String()
	}
	switch {
	case exp < 0:
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	case len(digits) <= exp+1:
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	default:
		return sign + digits[:exp+1] + "." + digits[exp+1:]
	}
}
