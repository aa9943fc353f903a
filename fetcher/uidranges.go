package fetcher

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// uidRange is the closed interval [Lo, Hi] of UIDs, Lo ≤ Hi, Lo ≥ 1.
type uidRange struct{ Lo, Hi uint32 }

// uidRanges is a set of UIDs kept as sorted, disjoint, non-adjacent
// ranges: 10,000 junk messages in a row cost one range. The zero value is
// the empty set. It is written to JSON as an IMAP sequence set ("1:5,9").
type uidRanges []uidRange

// add puts [lo, hi] into the set.
func (s *uidRanges) add(lo, hi uint32) {
	if lo == 0 {
		lo = 1
	}
	if hi < lo {
		return
	}
	r := *s
	// First range that ends at or after lo-1 (could merge).
	i, _ := slices.BinarySearchFunc(r, lo, func(x uidRange, lo uint32) int {
		if uint64(x.Hi)+1 < uint64(lo) {
			return -1
		}
		return 1
	})
	j := i
	for j < len(r) && uint64(r[j].Lo) <= uint64(hi)+1 {
		lo, hi = min(lo, r[j].Lo), max(hi, r[j].Hi)
		j++
	}
	*s = slices.Replace(r, i, j, uidRange{lo, hi})
}

// addUID puts one UID into the set.
func (s *uidRanges) addUID(uid uint32) { s.add(uid, uid) }

// has reports whether uid is in the set.
func (s uidRanges) has(uid uint32) bool {
	_, ok := s.find(uid)
	return ok
}

// find returns the index of the range holding uid, ok false if none.
func (s uidRanges) find(uid uint32) (int, bool) {
	i, _ := slices.BinarySearchFunc(s, uid, func(x uidRange, uid uint32) int {
		if x.Hi < uid {
			return -1
		}
		return 1
	})
	if i < len(s) && s[i].Lo <= uid {
		return i, true
	}
	return i, false
}

// below returns the highest UID ≤ uid that is not in the set, 0 if none.
func (s uidRanges) below(uid uint32) uint32 {
	if i, ok := s.find(uid); ok {
		return s[i].Lo - 1
	}
	return uid
}

// gaps returns the parts of [lo, hi] not in the set, in ascending order.
func (s uidRanges) gaps(lo, hi uint32) uidRanges {
	var out uidRanges
	for lo <= hi && lo != 0 {
		i, ok := s.find(lo)
		if ok {
			if s[i].Hi >= hi {
				break
			}
			lo = s[i].Hi + 1
			continue
		}
		end := hi
		if i < len(s) && s[i].Lo <= hi {
			end = s[i].Lo - 1
		}
		out = append(out, uidRange{lo, end})
		if end == hi {
			break
		}
		lo = end + 1
	}
	return out
}

// removeUpTo removes every UID ≤ uid from the set.
func (s *uidRanges) removeUpTo(uid uint32) {
	r := *s
	i := 0
	for i < len(r) && r[i].Hi <= uid {
		i++
	}
	r = slices.Delete(r, 0, i)
	if len(r) > 0 && r[0].Lo <= uid {
		r[0].Lo = uid + 1
	}
	*s = r
}

// remove takes one UID out of the set.
func (s *uidRanges) remove(uid uint32) {
	i, ok := s.find(uid)
	if !ok {
		return
	}
	r := *s
	x := r[i]
	switch {
	case x.Lo == x.Hi:
		*s = slices.Delete(r, i, i+1)
	case x.Lo == uid:
		r[i].Lo++
	case x.Hi == uid:
		r[i].Hi--
	default:
		*s = slices.Insert(r, i+1, uidRange{uid + 1, x.Hi})
		(*s)[i].Hi = uid - 1
	}
}

// count returns how many UIDs the set holds.
func (s uidRanges) count() int {
	n := 0
	for _, r := range s {
		n += int(r.Hi-r.Lo) + 1
	}
	return n
}

// String writes the set as an IMAP sequence set, "" when empty.
func (s uidRanges) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(r.Lo), 10))
		if r.Hi != r.Lo {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(r.Hi), 10))
		}
	}
	return b.String()
}

// parseUIDRanges reads what String writes (in any order, overlapping).
func parseUIDRanges(text string) (uidRanges, error) {
	var s uidRanges
	if text == "" {
		return s, nil
	}
	for _, part := range strings.Split(text, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err := strconv.ParseUint(a, 10, 32)
		if err != nil || lo == 0 {
			return nil, fmt.Errorf("uid set %q: bad number %q", text, a)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 32); err != nil || hi == 0 {
				return nil, fmt.Errorf("uid set %q: bad number %q", text, b)
			}
		}
		s.add(uint32(min(lo, hi)), uint32(max(lo, hi)))
	}
	return s, nil
}

// MarshalJSON writes the set as a JSON string.
func (s uidRanges) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a JSON string written by MarshalJSON.
func (s *uidRanges) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return err
	}
	r, err := parseUIDRanges(text)
	if err != nil {
		return err
	}
	*s = r
	return nil
}
