package fetcher

import (
	"encoding/json"
	"testing"
)

func TestUIDRanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		adds [][2]uint32
		want string
	}{
		{"empty", nil, ""},
		{"one", [][2]uint32{{5, 5}}, "5"},
		{"merge adjacent", [][2]uint32{{1, 3}, {4, 6}}, "1:6"},
		{"merge adjacent below", [][2]uint32{{4, 6}, {1, 3}}, "1:6"},
		{"disjoint", [][2]uint32{{10, 12}, {1, 3}, {6, 7}}, "1:3,6:7,10:12"},
		{"bridge", [][2]uint32{{1, 3}, {10, 12}, {6, 7}, {4, 9}}, "1:12"},
		{"inside", [][2]uint32{{1, 10}, {3, 4}}, "1:10"},
		{"overlap many", [][2]uint32{{1, 2}, {5, 6}, {9, 10}, {2, 9}}, "1:10"},
		{"zero lo", [][2]uint32{{0, 2}}, "1:2"},
		{"reversed ignored", [][2]uint32{{5, 2}}, ""},
		{"top", [][2]uint32{{4294967290, 4294967295}, {1, 1}}, "1,4294967290:4294967295"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s uidRanges
			for _, a := range tt.adds {
				s.add(a[0], a[1])
			}
			if got := s.String(); got != tt.want {
				t.Errorf("add(%v).String() = %q, want %q", tt.adds, got, tt.want)
			}
			back, err := parseUIDRanges(s.String())
			if err != nil || back.String() != tt.want {
				t.Errorf("parseUIDRanges(%q) = %q, %v; want it back", tt.want, back.String(), err)
			}
		})
	}
}

func TestUIDRangesQueries(t *testing.T) {
	t.Parallel()
	s, err := parseUIDRanges("3:5,9,20:30")
	if err != nil {
		t.Fatal(err)
	}
	for uid, want := range map[uint32]bool{1: false, 3: true, 5: true, 6: false, 9: true, 19: false, 25: true, 31: false} {
		if got := s.has(uid); got != want {
			t.Errorf("has(%d) = %v, want %v", uid, got, want)
		}
	}
	for uid, want := range map[uint32]uint32{40: 40, 30: 19, 25: 19, 9: 8, 4: 2, 2: 2} {
		if got := s.below(uid); got != want {
			t.Errorf("below(%d) = %d, want %d", uid, got, want)
		}
	}
	if got, want := s.gaps(1, 40).String(), "1:2,6:8,10:19,31:40"; got != want {
		t.Errorf("gaps(1, 40) = %q, want %q", got, want)
	}
	if got, want := s.gaps(21, 29).String(), ""; got != want {
		t.Errorf("gaps(21, 29) = %q, want %q", got, want)
	}
	if got, want := s.gaps(4, 10).String(), "6:8,10"; got != want {
		t.Errorf("gaps(4, 10) = %q, want %q", got, want)
	}
	if got := s.count(); got != 3+1+11 {
		t.Errorf("count = %d, want 15", got)
	}
	c := append(uidRanges(nil), s...)
	c.removeUpTo(4)
	if got, want := c.String(), "5,9,20:30"; got != want {
		t.Errorf("removeUpTo(4) = %q, want %q", got, want)
	}
	c.remove(25)
	c.remove(9)
	c.remove(20)
	if got, want := c.String(), "5,21:24,26:30"; got != want {
		t.Errorf("remove(25, 9, 20) = %q, want %q", got, want)
	}
	js, err := json.Marshal(c)
	if err != nil || string(js) != `"5,21:24,26:30"` {
		t.Errorf("Marshal = %s, %v", js, err)
	}
	var back uidRanges
	if err := json.Unmarshal(js, &back); err != nil || back.String() != c.String() {
		t.Errorf("Unmarshal(%s) = %q, %v", js, back.String(), err)
	}
	for _, bad := range []string{"0", "a", "1:", "1:x", ",", "4294967296"} {
		if _, err := parseUIDRanges(bad); err == nil {
			t.Errorf("parseUIDRanges(%q) = nil error, want one", bad)
		}
	}
}
