package discover

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// delayed answers 8.8.4.4 after d (or gives up when the request ends).
func delayed(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			fmt.Fprint(w, "8.8.4.4")
		case <-r.Context().Done():
		}
	}
}

// BenchmarkDiscoverSlowSources measures one Discover over N loopback HTTPS
// sources of distinct operators that each answer after d: the time should
// stay near d (sources are asked in parallel and the call ends once 2
// agree), not N×d. The straggler case adds one source 10× slower that the
// early stop must not wait for.
func BenchmarkDiscoverSlowSources(b *testing.B) {
	const d = 20 * time.Millisecond
	for _, tc := range []struct {
		n         int
		straggler bool
	}{{2, false}, {4, false}, {8, false}, {4, true}} {
		name := fmt.Sprintf("N=%d/d=%s", tc.n, d)
		if tc.straggler {
			name += "+straggler=200ms"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			var specs []string
			for i := range tc.n {
				specs = append(specs, f.https(fmt.Sprintf("s%d.test", i), delayed(d)))
			}
			if tc.straggler {
				specs = append(specs, f.https("straggler.test", delayed(10*d)))
			}
			dis := f.discoverer(f.options(specs...))
			ctx := context.Background()
			for b.Loop() {
				res, err := dis.Discover(ctx)
				if err != nil || res.IPv4 != pub4 {
					b.Fatalf("Discover() = %v, %v, want %v", res.IPv4, err, pub4)
				}
			}
		})
	}
}
