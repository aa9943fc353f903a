package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/internal/dovecottest"
	"ipsync/publisher"
)

// TestDovecotFetchCost counts, through a proxy, the IMAP commands and bytes
// of one FetchOnce (fresh client, no state) on a Dovecot mailbox of 10 and
// of 10,000 messages; the larger may cost at most 1.2 times the smaller.
func TestDovecotFetchCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dovecottest.Options{})
	px := startProxy(t, e.srv.Addr)
	now := time.Now()
	// Mailboxes with names of the same length, so their answers compare.
	cases := []struct {
		mailbox string
		n       int
	}{
		{"Small", 10},
		{"Large", 10000},
	}
	costs := make([]proxyStats, len(cases))
	for i, c := range cases {
		seedStart := time.Now()
		e.seedMaildir(c.mailbox, c.n-1, now)
		t.Logf("seeding and indexing %d messages took %v", c.n, time.Since(seedStart).Round(time.Millisecond))
		want := uint64(c.n)
		e.admin.mustAppend(c.mailbox, e.sealedMail(payload(want, v4(200), now)))

		o := e.fetcherOptions(px.endpoint(t))
		o.Mailbox = c.mailbox
		f := e.newFetcher(o)
		px.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		start := time.Now()
		got, err := f.FetchOnce(ctx)
		took := time.Since(start)
		cancel()
		if err != nil || got.Seq != want || got.IPv4 != v4(200) {
			t.Fatalf("FetchOnce(%d messages) = seq %d, %v, %v; want seq %d, %v", c.n, got.Seq, got.IPv4, err, want, v4(200))
		}
		costs[i] = px.Stats()
		t.Logf("%5d messages: %d commands, %d bytes up, %d bytes down, took %v",
			c.n, costs[i].Commands, costs[i].BytesUp, costs[i].BytesDown, took.Round(time.Millisecond))
	}
	small, large := costs[0], costs[1]
	tests := []struct {
		name         string
		small, large int64
	}{
		{"commands", int64(small.Commands), int64(large.Commands)},
		{"bytes", small.BytesUp + small.BytesDown, large.BytesUp + large.BytesDown},
	}
	for _, tt := range tests {
		if float64(tt.large) > 1.2*float64(tt.small) {
			t.Errorf("%s of one fetch at 10000 messages = %d, at 10 = %d: over 1.2x", tt.name, tt.large, tt.small)
		}
	}

	// Dovecot's own CPU time per fetch (fresh, with state, and a bare
	// client's floor) is a speed figure: BenchmarkDovecotFetchCost reports
	// it; a unit test timing it fails on a loaded machine.
}

// seedMaildir creates mailbox and fills it with n messages by writing
// maildir files directly (fast), then has Dovecot index them. Every tenth
// message is unrelated mail; the others are old sealed heartbeats
// (sequence 1) of this server.
func (e *env) seedMaildir(mailbox string, n int, now time.Time) {
	e.t.Helper()
	e.admin.command("create "+mailbox, func(c *imapclient.Client) error {
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			return err
		}
		_, err := c.Select(mailbox, nil).Wait() // makes cur/, new/, tmp/
		if err != nil {
			return err
		}
		return c.Unselect().Wait()
	})
	// mail_location = maildir:DIR/mail/%u; folders are Maildir++ ".name".
	dir := filepath.Join(e.srv.Dir, "mail", e.srv.User, "."+mailbox)
	if _, err := os.Stat(filepath.Join(dir, "new")); err != nil {
		e.t.Fatalf("maildir of %s: %v", mailbox, err)
	}
	old := e.sealedMail(payload(1, v4(1), now.Add(-48*time.Hour)))
	other, err := publisher.Render(publisher.Message{
		From: "someone@example.test", To: []string{e.srv.User}, Subject: "weekly report", Name: "not-ipsync",
		Body: "nothing to see", Date: now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	base := now.Add(-time.Duration(n) * time.Second).Unix()
	for i := range n {
		raw := old
		if i%10 == 9 {
			raw = other
		}
		// <time>.<unique>.<host>, written in tmp/ and moved into new/.
		name := fmt.Sprintf("%d.M%dP%d.ipsync-interop", base+int64(i), i, os.Getpid())
		tmp := filepath.Join(dir, "tmp", name)
		if err := os.WriteFile(tmp, raw, 0o644); err != nil {
			e.t.Fatalf("seed %s: %v", mailbox, err)
		}
		// Dovecot takes a maildir message's INTERNALDATE from its mtime:
		// each old heartbeat arrived when it was issued, 48 h ago.
		at := time.Unix(base+int64(i), 0).Add(-48 * time.Hour)
		if err := os.Chtimes(tmp, at, at); err != nil {
			e.t.Fatalf("seed %s: %v", mailbox, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			e.t.Fatalf("seed %s: %v", mailbox, err)
		}
	}
	var exists uint32
	e.admin.command("index "+mailbox, func(c *imapclient.Client) error {
		data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		exists = data.NumMessages
		return c.Unselect().Wait()
	})
	if exists != uint32(n) {
		e.t.Fatalf("%s holds %d messages after seeding, want %d", mailbox, exists, n)
	}
}
