package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/codec"
	"ipsync/fetcher"
	"ipsync/internal/dovecottest"
	"ipsync/publisher"
)

// appendAt appends raw to mailbox with the given INTERNALDATE.
func (a *appender) appendAt(mailbox string, raw []byte, at time.Time) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.do(ctx, func() error {
		cmd := a.c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Time: at})
		if _, err := cmd.Write(raw); err != nil {
			cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	})
	if err != nil {
		a.t.Fatalf("APPEND to %s: %v", mailbox, err)
	}
}

// createMailbox makes an empty maildir mailbox and returns its directory.
func (e *env) createMailbox(mailbox string) string {
	e.t.Helper()
	e.admin.command("create "+mailbox, func(c *imapclient.Client) error {
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			return err
		}
		if _, err := c.Select(mailbox, nil).Wait(); err != nil {
			return err
		}
		return c.Unselect().Wait()
	})
	return filepath.Join(e.srv.Dir, "mail", e.srv.User, "."+mailbox)
}

// seedFiles writes raw messages into the maildir dir of mailbox with the
// given arrival times (mtime, Dovecot's INTERNALDATE), then has Dovecot
// index them; they get UIDs above every message already there, in order.
func (e *env) seedFiles(mailbox, dir string, n int, raw func(i int) []byte, arrival func(i int) time.Time) {
	e.t.Helper()
	var before uint32
	e.admin.command("count "+mailbox, func(c *imapclient.Client) error {
		data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return err
		}
		before = data.NumMessages
		return c.Unselect().Wait()
	})
	// Dovecot reads new/ in directory order: index in chunks, so that UID
	// order follows the order of i closely enough for these tests (all the
	// junk lies above the genuine messages, appended earlier).
	for i := range n {
		at := arrival(i)
		name := fmt.Sprintf("%d.M%06dP%d.ipsync-interop", at.Unix(), i, os.Getpid())
		tmp := filepath.Join(dir, "tmp", name)
		if err := os.WriteFile(tmp, raw(i), 0o644); err != nil {
			e.t.Fatalf("seed %s: %v", mailbox, err)
		}
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
	if exists != before+uint32(n) {
		e.t.Fatalf("%s holds %d messages after seeding, want %d", mailbox, exists, before+uint32(n))
	}
}

// junkMail is junk an attacker sends with the ipsync subject: a message
// sealed with another server key, or (large) 100 KiB of text.
func (e *env) junkMail(other codec.ServerKey, i int, large bool, now time.Time) []byte {
	e.t.Helper()
	body := strings.Repeat("junk line of a large message\n", 100<<10/29)
	if !large {
		text, err := codec.Seal(payload(uint64(1_000_000+i), v4(66), now), other, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		body = text
	}
	raw, err := publisher.Render(publisher.Message{From: "junk@example.test", To: []string{e.srv.User}, Subject: subject, Name: serverName, Body: body, Date: now})
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

func fetchOnce(t testing.TB, f *fetcher.Fetcher) (fetcher.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return f.FetchOnce(ctx)
}

// TestDovecotGenuineUnderJunk: junk with the subject (half of it large)
// above a genuine message; one fresh fetch finds it.
func TestDovecotGenuineUnderJunk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dovecottest.Options{})
	px := startProxy(t, e.srv.Addr)
	for _, n := range []int{5, 1000, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			mailbox := fmt.Sprintf("Junk%d", n)
			dir := e.createMailbox(mailbox)
			now := time.Now()
			other, _ := codec.GenerateServerKey(nil)
			e.admin.appendAt(mailbox, e.sealedMail(payload(41, v4(41), now.Add(-2*time.Hour))), now.Add(-2*time.Hour))
			e.admin.appendAt(mailbox, e.sealedMail(payload(42, v4(42), now.Add(-time.Hour))), now.Add(-time.Hour))
			e.seedFiles(mailbox, dir, n,
				func(i int) []byte { return e.junkMail(other, i, i%2 == 1, now) },
				func(i int) time.Time { return now.Add(-time.Hour + time.Duration(i+1)*time.Second/4) })
			o := e.fetcherOptions(px.endpoint(t))
			o.Mailbox = mailbox
			o.StatePath = filepath.Join(t.TempDir(), "state.json")
			px.Reset()
			start := time.Now()
			got, err := fetchOnce(t, e.newFetcher(o))
			took := time.Since(start)
			if err != nil || got.Seq != 42 || got.IPv4 != v4(42) || got.Problem != "" {
				t.Fatalf("FetchOnce(genuine under %d junk) = seq %d %v problem %q, %v; want seq 42, no problem", n, got.Seq, got.IPv4, got.Problem, err)
			}
			st := px.Stats()
			t.Logf("%d junk: fresh fetch %d commands, %d bytes down, took %v", n, st.Commands, st.BytesDown, took.Round(time.Millisecond))
			px.Reset()
			if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 42 {
				t.Fatalf("second FetchOnce = seq %d, %v; want 42", got.Seq, err)
			}
			if again := px.Stats(); again.BytesDown > 3000 {
				t.Errorf("second fetch: %d bytes down, want only the protocol overhead", again.BytesDown)
			}
		})
	}
}

// TestDovecotReplayAndKeys: a replayed old message above the newest, for a
// fresh and an offline client; then wrong key, right key; a future-dated
// message; another name; and check's report, all on Dovecot.
func TestDovecotReplayAndKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dovecottest.Options{})
	now := time.Now()
	e.createMailbox("Replay")
	old := filepath.Join(t.TempDir(), "offline.json")
	opts := func(mailbox, state string) fetcher.Options {
		o := e.fetcherOptions(e.endpoint())
		o.Mailbox, o.StatePath = mailbox, state
		return o
	}
	e.admin.appendAt("Replay", e.sealedMail(payload(1, v4(1), now.Add(-5*24*time.Hour))), now.Add(-5*24*time.Hour))
	if got, err := fetchOnce(t, e.newFetcher(opts("Replay", old))); err != nil || got.Seq != 1 {
		t.Fatalf("FetchOnce = seq %d, %v; want 1", got.Seq, err)
	}
	s2 := e.sealedMail(payload(2, v4(2), now.Add(-3*24*time.Hour)))
	e.admin.appendAt("Replay", s2, now.Add(-3*24*time.Hour))
	e.admin.appendAt("Replay", e.sealedMail(payload(3, v4(3), now.Add(-time.Hour))), now.Add(-time.Hour))
	e.admin.appendAt("Replay", s2, now)
	for name, state := range map[string]string{"fresh": "", "offline": old} {
		if got, err := fetchOnce(t, e.newFetcher(opts("Replay", state))); err != nil || got.Seq != 3 {
			t.Errorf("FetchOnce(%s, replay of seq 2 above seq 3) = seq %d, %v; want 3", name, got.Seq, err)
		}
	}

	// Wrong key, then the right one, with no new message.
	wrong, _ := codec.GenerateServerKey(nil)
	bad := opts("Replay", filepath.Join(t.TempDir(), "wrong.json"))
	bad.Keys = []codec.ClientKey{wrong.ClientKey()}
	got, err := fetchOnce(t, e.newFetcher(bad))
	want := fmt.Sprintf("4 messages signed by another key (key id %s; this client holds %s)", e.sk.ID(), wrong.ID())
	if !errors.Is(err, fetcher.ErrNoMessage) || got.Problem != want {
		t.Errorf("FetchOnce(wrong key) = %+v, %v; want ErrNoMessage with %q", got, err, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := e.newFetcher(bad).CheckNewest(ctx); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("key id %s; this client holds %s", e.sk.ID(), wrong.ID())) {
		t.Errorf("CheckNewest(wrong key) = %v, want the key ids", err)
	}
	good := bad
	good.Keys = []codec.ClientKey{wrong.ClientKey(), e.ck}
	if got, err := fetchOnce(t, e.newFetcher(good)); err != nil || got.Seq != 3 || got.Problem != "" {
		t.Errorf("FetchOnce(right key added) = seq %d problem %q, %v; want 3", got.Seq, got.Problem, err)
	}

	// Another name.
	e.createMailbox("Names")
	p := payload(9, v4(9), now)
	p.Name = "office-2"
	e.admin.appendAt("Names", e.sealedMail(p), now)
	got, err = fetchOnce(t, e.newFetcher(opts("Names", "")))
	if want := "1 message from `office-2`, this client is `office`"; !errors.Is(err, fetcher.ErrNoMessage) || !strings.HasPrefix(got.Problem, want) {
		t.Errorf("FetchOnce(other name) = %+v, %v; want ErrNoMessage with %q", got, err, want)
	}
	if _, err := e.newFetcher(opts("Names", "")).CheckNewest(ctx); err == nil || !strings.Contains(err.Error(), "is from `office-2`, this client is `office`") {
		t.Errorf("CheckNewest(other name) = %v, want the names", err)
	}

	// Dated ahead of this PC's clock, accepted when its time comes.
	e.createMailbox("Future")
	e.admin.appendAt("Future", e.sealedMail(payload(20, v4(20), now.Add(-time.Minute))), now)
	e.admin.appendAt("Future", e.sealedMail(payload(21, v4(21), now.Add(30*time.Minute))), now)
	clk := &fixedClock{t: now}
	fo := opts("Future", filepath.Join(t.TempDir(), "future.json"))
	fo.Clock = clk
	got, err = fetchOnce(t, e.newFetcher(fo))
	if err != nil || got.Seq != 20 || got.Problem != "1 message dated 30 min in the future (is this PC's clock right?)" {
		t.Errorf("FetchOnce(future) = seq %d problem %q, %v; want 20 with the clock problem", got.Seq, got.Problem, err)
	}
	clk.t = now.Add(25 * time.Minute)
	if got, err = fetchOnce(t, e.newFetcher(fo)); err != nil || got.Seq != 21 || got.Age.Round(time.Minute) != -5*time.Minute {
		t.Errorf("FetchOnce(25 min later) = seq %d age %v, %v; want 21 dated 5 min ahead", got.Seq, got.Age, err)
	}
}

// fixedClock is a Clock whose time the test sets (FetchOnce only reads it).
type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

func (c *fixedClock) NewTimer(d time.Duration) fetcher.Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
