package health

import "testing"

func TestStateString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    State
		want string
	}{
		{Unknown, "unknown"}, {Current, "current"}, {Stale, "stale"}, {Unreachable, "unreachable"},
		{Error, "error"}, {Working, "working"}, {State(42), "State(42)"}, {State(-1), "State(-1)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", int(tt.s), got, tt.want)
		}
	}
}
