package fetcher

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipsync/loopmail"
	"ipsync/statefile"
)

// TestSaveGivesUpOnAHeldLock: another ipsync process that holds the state
// file's lock (suspended, on a hung disk) must not stop the fetcher for
// good: saving gives up after OpTimeout, logs why, and the fetch still
// answers with the address it read.
func TestSaveGivesUpOnAHeldLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	o, logs := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	o.OpTimeout = time.Second
	now := time.Now()
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now)), now))
	unlock, err := statefile.Lock(t.Context(), o.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	got, err := fetchOnce(t, e.newFetcher(o))
	if err != nil || got.Seq != 1 {
		t.Fatalf("FetchOnce with the state lock held elsewhere = %+v, %v; want seq 1", got, err)
	}
	if !strings.Contains(logs.String(), "cannot save the fetcher state") {
		t.Errorf("log = %q, want the failed save named", logs.String())
	}
}
