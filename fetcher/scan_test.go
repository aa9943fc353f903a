package fetcher

import (
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/mailconn"
)

// TestRecord checks how one round's findings are filed in the state.
func TestRecord(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	best := &judgement{uid: 40, verdict: valid, p: codec.Payload{Seq: 9}}
	tests := []struct {
		name     string
		complete bool
		searched string
		cands    []uint32
		results  []judgement
		floor    uint32
		examined string
		held     string
		future   int
		junk     string
		otherKey string
	}{
		{
			name: "non-candidates and judged junk are examined", complete: true,
			searched: "30:50", cands: []uint32{35, 40, 45},
			results:  []judgement{{uid: 45, verdict: junk}, {uid: 40, verdict: valid}},
			examined: "30:34,36:50", junk: "45",
		},
		{
			name: "held and future are not examined", complete: true,
			searched: "1:10", cands: []uint32{3, 5, 7},
			results: []judgement{
				{uid: 7, verdict: otherKey, keyID: "00ff"},
				{uid: 5, verdict: future, p: codec.Payload{Seq: 3, IssuedAt: now.Add(time.Hour)}},
				{uid: 3, verdict: otherName, p: codec.Payload{Name: "x"}},
			},
			examined: "1:2,4,6,8:10", held: "3,7", future: 1, otherKey: "7",
		},
		{
			name: "incomplete round keeps the best and the cutoff message", complete: false,
			searched: "38:45", cands: []uint32{39, 40, 41, 42},
			results:  []judgement{{uid: 42, verdict: notNewer}, {uid: 41, verdict: valid}, {uid: 40, verdict: valid}, {uid: 39, verdict: notNewer}},
			examined: "38,41:45",
		},
		{
			name: "floor covers everything below", complete: true,
			searched: "90:100", cands: []uint32{95},
			results: []judgement{{uid: 95, verdict: valid}}, floor: 60,
			examined: "1:60,90:100",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			searched, err := parseUIDRanges(tt.searched)
			if err != nil {
				t.Fatal(err)
			}
			sc := &scanner{searched: searched, cands: tt.cands, results: tt.results, floor: tt.floor, complete: tt.complete, best: best, cutoffUID: 39}
			var st saved
			sc.recordSearched(&st)
			for i := range sc.results {
				sc.record(&st, &sc.results[i])
			}
			if sc.floor > 0 {
				st.Examined.add(1, sc.floor)
			}
			if got := st.Examined.String(); got != tt.examined {
				t.Errorf("Examined = %q, want %q", got, tt.examined)
			}
			if got := st.Held.String(); got != tt.held {
				t.Errorf("Held = %q, want %q", got, tt.held)
			}
			if len(st.Future) != tt.future {
				t.Errorf("Future = %v, want %d entries", st.Future, tt.future)
			}
			if got := st.Rejected.Junk.String(); got != tt.junk {
				t.Errorf("Rejected.Junk = %q, want %q", got, tt.junk)
			}
			if got := st.Rejected.OtherKey.String(); got != tt.otherKey {
				t.Errorf("Rejected.OtherKey = %q, want %q", got, tt.otherKey)
			}
		})
	}
}

// TestProblem checks the diagnosis text for each situation.
func TestProblem(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0).UTC()
	sk, _ := codec.GenerateServerKey(nil)
	recent := &savedPayload{Name: testName, Seq: 5, IssuedAt: now.Add(-20 * time.Minute), Heartbeat: time.Hour}
	old := &savedPayload{Name: testName, Seq: 5, IssuedAt: now.Add(-2 * time.Hour), Heartbeat: time.Hour}
	keys := func(n int, ids ...string) rejections {
		var r rejections
		r.OtherKey.add(10, uint32(9+n))
		r.OtherKeyIDs = ids
		return r
	}
	var names rejections
	names.OtherName.add(3, 5)
	names.OtherNames = []string{"office-2"}
	var junk, oneJunk rejections
	junk.Junk.add(1, 2)
	oneJunk.Junk.add(1, 1)
	tests := []struct {
		name     string
		accepted *savedPayload
		rej      rejections
		future   []futureMessage
		want     string
	}{
		{"nothing", nil, rejections{}, nil, ""},
		{"other key, no address", nil, keys(12, "3f2a000000000000"), nil, "12 messages signed by another key (key id 3f2a000000000000; this client holds " + sk.ID() + ")"},
		{"other key, recent address", recent, keys(12, "3f2a000000000000"), nil, ""},
		{"other key, overdue address", old, keys(1, "3f2a000000000000"), nil, "1 message signed by another key (key id 3f2a000000000000; this client holds " + sk.ID() + ")"},
		{"own key id that does not open", nil, keys(2, sk.ID()), nil, "2 messages not opened by this client's key " + sk.ID() + " (damaged, or the key's secret differs from the server's)"},
		{"other name", nil, names, nil, "3 messages from `office-2`, this client is `office` (check `name` in the config)"},
		{"future newer than shown", recent, rejections{}, []futureMessage{{UID: 9, Seq: 6, IssuedAt: now.Add(11 * time.Minute)}}, "1 message dated 11 min in the future (is this PC's clock right?)"},
		{"future older than shown", recent, rejections{}, []futureMessage{{UID: 9, Seq: 4, IssuedAt: now.Add(11 * time.Minute)}}, ""},
		{"junk only, no address", nil, junk, nil, `2 messages with the subject "ipsync office" that are not valid ipsync messages`},
		{"one junk message", nil, oneJunk, nil, `1 message with the subject "ipsync office" that is not a valid ipsync message`},
		{"junk beside a reason", nil, rejections{OtherName: names.OtherName, OtherNames: names.OtherNames, Junk: junk.Junk}, nil, "3 messages from `office-2`, this client is `office` (check `name` in the config)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := New(Options{IMAP: mailconn.Endpoint{Host: "127.0.0.1", Port: 1, TLS: mailconn.TLSNone}, Auth: passwordAuth("u", ""), Name: testName, Keys: []codec.ClientKey{sk.ClientKey()}})
			if err != nil {
				t.Fatal(err)
			}
			f.st = saved{Accepted: tt.accepted, Rejected: tt.rej, Future: tt.future}
			if got := f.problemLocked(now); got != tt.want {
				t.Errorf("problem(%s) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestRoughDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		40 * time.Second:                "40 s",
		11*time.Minute + 20*time.Second: "11 min",
		5*time.Hour + 10*time.Minute:    "5 h",
		80 * time.Hour:                  "3 days",
	} {
		if got := roughDuration(d); got != want {
			t.Errorf("roughDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
