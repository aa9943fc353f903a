package fetcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
	"ipsync/statefile"
)

func fetchOnce(t *testing.T, f *Fetcher) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return f.FetchOnce(ctx)
}

func TestFetchOnceEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	o, _ := e.options()
	f := e.newFetcher(o)

	if _, err := fetchOnce(t, f); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("FetchOnce(empty mailbox) = %v, want ErrNoMessage", err)
	}
	issued := time.Now().Add(-time.Minute)
	p := payload(7, "203.0.113.7", issued)
	p.IPv6 = netip.MustParseAddr("2001:db8::7")
	e.sendSMTP(plainMail(testSubject, "Address update\n\n"+sealWith(t, e.sk, p), issued))

	got, err := fetchOnce(t, f)
	if err != nil {
		t.Fatalf("FetchOnce = %v, want nil", err)
	}
	if got.Name != testName || got.IPv4 != p.IPv4 || got.IPv6 != p.IPv6 || got.Seq != 7 || !got.IssuedAt.Equal(p.IssuedAt) || got.Format != codec.FormatSealed {
		t.Errorf("FetchOnce = %+v, want payload %+v", got, p)
	}
	if got.Age < time.Minute-time.Second || got.Age > time.Hour {
		t.Errorf("FetchOnce().Age = %v, want about 1m", got.Age)
	}
	js, err := got.MarshalJSON()
	var back struct {
		Name       string  `json:"name"`
		IPv4       *string `json:"ipv4"`
		Seq        uint64  `json:"sequence"`
		AgeSeconds *int64  `json:"age_seconds"`
		Problem    *string `json:"problem"`
	}
	if err == nil {
		err = json.Unmarshal(js, &back)
	}
	if err != nil || back.Name != testName || back.IPv4 == nil || *back.IPv4 != "203.0.113.7" || back.Seq != 7 ||
		back.AgeSeconds == nil || *back.AgeSeconds < 60 || *back.AgeSeconds > 3600 || back.Problem != nil {
		t.Errorf("MarshalJSON = %s, %v; want name, ipv4, sequence and age_seconds (about 60) fields and no problem", js, err)
	}
	msgs, err := e.srv.Messages(testUser)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Messages = %d, %v; want 1 message kept", len(msgs), err)
	}
}

func TestFetchOnceImplicitTLSAndCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{IMAPTLS: loopmail.TLSImplicit})
	pool := mustPool(t, e.srv.CertPEM())
	o, _ := e.options()
	o.IMAP.TLS = mailconn.TLSImplicit
	o.IMAP.RootCAs = pool
	f := e.newFetcher(o)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check = %v, want nil", err)
	}
	p := payload(1, "198.51.100.1", time.Now())
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, p), time.Now()))
	if got, err := fetchOnce(t, f); err != nil || got.IPv4 != p.IPv4 {
		t.Fatalf("FetchOnce over TLS = %+v, %v; want %v", got, err, p.IPv4)
	}

	bad := o
	bad.Auth = passwordAuth(testUser, "wrong")
	fb := e.newFetcher(bad)
	err := fb.Check(ctx)
	if err == nil || errors.Is(err, ErrNoMessage) || errors.Is(err, errLimit) {
		t.Errorf("Check(wrong password) = %v, want a login error", err)
	}
	if strings.Contains(fmt.Sprint(err), "wrong") {
		t.Errorf("Check error %q reveals the password", err)
	}
	if _, err := fb.FetchOnce(ctx); err == nil || errors.Is(err, ErrNoMessage) {
		t.Errorf("FetchOnce(wrong password) = %v, want a mail error, not ErrNoMessage", err)
	}
}

// TestFetchOnceTransferEncodings checks that the armour is found after
// quoted-printable, base64 and multipart encodings.
func TestFetchOnceTransferEncodings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	sealed := sealWith(t, e.sk, payload(3, "192.0.2.3", time.Now()))
	var qp strings.Builder
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte("Hello=\n" + sealed))
	w.Close()
	b64 := base64.StdEncoding.EncodeToString([]byte(sealed))
	var wrapped strings.Builder
	for len(b64) > 76 {
		wrapped.WriteString(b64[:76] + "\n")
		b64 = b64[76:]
	}
	wrapped.WriteString(b64 + "\n")
	multipart := "--XYZ\nContent-Type: text/html; charset=utf-8\n\n<p>see text part</p>\n--XYZ\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp.String() + "\n--XYZ--\n"
	tests := []struct {
		name    string
		headers string
		body    string
	}{
		{"quoted-printable", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable", qp.String()},
		{"base64", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64", wrapped.String()},
		{"multipart", "Content-Type: multipart/alternative; boundary=XYZ", multipart},
		{"no content type", "X-Nothing: 1", sealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mt, err := decodeMail(rawMail(testSubject, time.Now(), tt.headers, tt.body))
			if err != nil {
				t.Fatalf("decodeMail = %v", err)
			}
			p, err := codec.Open(mt.Text, e.ck)
			if err != nil || p.Seq != 3 {
				t.Errorf("Open(decodeMail(%s)) = %+v, %v; want seq 3", tt.name, p, err)
			}
		})
	}
	// And once through the server.
	e.deliver(rawMail(testSubject, time.Now(), tests[0].headers, tests[0].body))
	o, _ := e.options()
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 3 {
		t.Errorf("FetchOnce(quoted-printable) = %+v, %v; want seq 3", got, err)
	}
}

// TestAdversarialMailbox fills the mailbox with hostile messages above a
// good one: none is accepted, the good address stays, each is logged once,
// except the oversized one, which is never downloaded (SEARCH SMALLER).
func TestAdversarialMailbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	o, logs := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	good := payload(10, "203.0.113.10", now.Add(-time.Minute))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, good), now))
	f := e.newFetcher(o)
	if got, err := fetchOnce(t, f); err != nil || got.Seq != 10 {
		t.Fatalf("FetchOnce(good) = %+v, %v; want seq 10", got, err)
	}

	otherKey, _ := codec.GenerateServerKey(nil)
	evil := "198.51.100.66"
	flipped := []byte(sealWith(t, e.sk, payload(12, evil, now)))
	mid := strings.Index(string(flipped), "\n") + 10
	flipped[mid] ^= 0x01
	if flipped[mid] == '\n' || flipped[mid] < '+' {
		flipped[mid] = 'A'
	}
	big := sealWith(t, e.sk, payload(13, evil, now)) + strings.Repeat("x", 70<<10)
	legacy := codec.Legacy{Factor: -9.616013867352109, Alphabet: "odzmtaciru", Padding: "befghjklnpqsvwxy"}
	legacyText, err := legacy.Encode(netip.MustParseAddr(evil))
	if err != nil {
		t.Fatal(err)
	}
	wrongName := payload(14, evil, now)
	wrongName.Name = "elsewhere"
	hostile := []struct {
		name   string
		raw    []byte
		reason string
	}{
		{"forged", plainMail(testSubject, sealWith(t, otherKey, payload(11, evil, now)), now), "does not open"},
		{"replayed", plainMail(testSubject, sealWith(t, e.sk, payload(9, evil, now.Add(-time.Hour))), now), "not newer"},
		{"bit-flipped", plainMail(testSubject, string(flipped), now), "does not open"},
		{"oversized", plainMail(testSubject, big, now), ""},
		{"html-only", rawMail(testSubject, now, "Content-Type: text/html; charset=utf-8", "<pre>"+sealWith(t, e.sk, payload(15, evil, now))+"</pre>"), "no text/plain part"},
		{"wrong-name", plainMail(testSubject, sealWith(t, e.sk, wrongName), now), "names server"},
		{"future-dated", plainMail(testSubject, sealWith(t, e.sk, payload(16, evil, now.Add(2*time.Hour))), now), "in the future"},
		{"legacy-junk", plainMail(testSubject, legacyText, now), "does not open"},
	}
	for _, h := range hostile {
		e.deliver(h.raw)
	}
	for range 2 {
		got, err := fetchOnce(t, f)
		if err != nil || got.IPv4 != good.IPv4 || got.Seq != 10 {
			t.Fatalf("FetchOnce(hostile mailbox) = %+v, %v; want the good address %v seq 10", got, err, good.IPv4)
		}
	}
	// A new Fetcher from the same state file does not read them again.
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.IPv4 != good.IPv4 {
		t.Fatalf("FetchOnce(restarted) = %+v, %v; want the good address", got, err)
	}
	rejected := logs.Lines("rejected message")
	if len(rejected) != len(hostile)-1 {
		t.Errorf("rejected-message log lines = %d, want %d (one per hostile message but the oversized):\n%s", len(rejected), len(hostile)-1, strings.Join(rejected, "\n"))
	}
	for i, h := range hostile {
		uid := fmt.Sprintf("uid=%d ", i+2)
		var lines []string
		for _, l := range rejected {
			if strings.Contains(l, uid) {
				lines = append(lines, l)
			}
		}
		if h.reason == "" {
			if len(lines) != 0 {
				t.Errorf("log for %s (%s) = %q, want none (never downloaded)", h.name, uid, lines)
			}
			continue
		}
		if len(lines) != 1 || !strings.Contains(lines[0], h.reason) {
			t.Errorf("log for %s (%s) = %q, want one line with %q", h.name, uid, lines, h.reason)
		}
	}
	if strings.Contains(logs.String(), testPassword) {
		t.Errorf("log reveals the IMAP password")
	}
}

// TestFallbackToNextNewest: junk on top of a newer good message.
func TestFallbackToNextNewest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	now := time.Now()
	otherKey, _ := codec.GenerateServerKey(nil)
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now)), now))
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", now)), now))
	e.deliver(plainMail(testSubject, sealWith(t, otherKey, payload(3, "192.0.2.99", now)), now))
	e.deliver(plainMail("unrelated", "hello", now))
	o, _ := e.options()
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 2 {
		t.Errorf("FetchOnce = %+v, %v; want seq 2 (the newest valid)", got, err)
	}
}

func TestLegacyFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	legacy := codec.Legacy{Factor: -9.616013867352109, Alphabet: "odzmtaciru", Padding: "befghjklnpqsvwxy"}
	enc := func(a string) string {
		s, err := legacy.Encode(netip.MustParseAddr(a))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now().Truncate(time.Second)
	o, logs := e.options()
	o.Format = codec.FormatLegacy
	o.Keys = nil
	o.Legacy = legacy
	f := e.newFetcher(o)
	e.deliver(plainMail(testSubject, "Your IP: "+enc("192.168.0.1")+"\n", now.Add(-time.Hour)))
	got, err := fetchOnce(t, f)
	if err != nil || got.IPv4 != netip.MustParseAddr("192.168.0.1") || got.Format != codec.FormatLegacy || !got.IssuedAt.Equal(now.Add(-time.Hour)) {
		t.Fatalf("FetchOnce(legacy) = %+v, %v; want 192.168.0.1 dated by its Date header", got, err)
	}
	// An older-dated message arriving later is not newer.
	e.deliver(plainMail(testSubject, enc("10.9.8.7"), now.Add(-2*time.Hour)))
	e.deliver(plainMail(testSubject, enc("10.1.2.3"), now))
	got, err = fetchOnce(t, f)
	if err != nil || got.IPv4 != netip.MustParseAddr("10.1.2.3") {
		t.Fatalf("FetchOnce(newer legacy) = %+v, %v; want 10.1.2.3", got, err)
	}
	e.deliver(plainMail(testSubject, enc("10.9.8.7"), now.Add(-2*time.Hour)))
	if got, err = fetchOnce(t, f); err != nil || got.IPv4 != netip.MustParseAddr("10.1.2.3") {
		t.Fatalf("FetchOnce(older legacy) = %+v, %v; want 10.1.2.3 kept", got, err)
	}
	if n := len(logs.Lines("NOT authenticated")); n != 1 {
		t.Errorf("legacy warnings = %d, want 1", n)
	}
	if n := len(logs.Lines("before the last accepted")); n != 1 {
		t.Errorf("older-legacy rejections logged = %d, want 1", n)
	}
}

// TestUIDValidityChangeResetsSeenBound: a state file from another
// UIDVALIDITY with a high seen UID must not hide the mailbox's messages.
func TestUIDValidityChangeResetsSeenBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	o, logs := e.options()
	o.StatePath = filepath.Join(t.TempDir(), "state.json")
	old := payload(1, "192.0.2.1", time.Now().Add(-time.Hour))
	var examined uidRanges
	examined.add(1, 1000)
	st := saved{Version: stateVersion, Account: testUser + "@" + o.IMAP.Addr() + "/INBOX", Accepted: toSaved(old), Format: codec.FormatSealed, Examined: examined, UIDValidity: 4242}
	if err := statefile.Save(o.StatePath, st); err != nil {
		t.Fatal(err)
	}
	e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(2, "192.0.2.2", time.Now())), time.Now()))
	if got, err := fetchOnce(t, e.newFetcher(o)); err != nil || got.Seq != 2 {
		t.Fatalf("FetchOnce after UIDVALIDITY change = %+v, %v; want seq 2", got, err)
	}
	if len(logs.Lines("UIDVALIDITY changed")) != 1 {
		t.Errorf("no UIDVALIDITY log line:\n%s", logs)
	}
	var after saved
	if _, err := statefile.Load(o.StatePath, &after); err != nil || after.UIDValidity == 4242 || after.Examined.String() != "1" || after.AcceptedUID != 1 {
		t.Errorf("state after = %+v, %v; want the new UIDVALIDITY and examined UID 1 only", after, err)
	}
}

// TestFetchCostIndependentOfMailboxSize measures one FetchOnce with 10 and
// with 10,000 messages in the mailbox, with and without ESEARCH.
func TestFetchCostIndependentOfMailboxSize(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 20,000 messages")
	}
	t.Parallel()
	for _, noESearch := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoESEARCH=%v", noESearch), func(t *testing.T) {
			t.Parallel()
			cost := func(n int) loopmail.Stats {
				now := time.Now()
				// Each message arrives when it was issued (INTERNALDATE).
				var arrival atomic.Int64
				arrival.Store(now.Add(-48 * time.Hour).UnixNano())
				e := newEnv(t, loopmail.Options{NoESEARCH: noESearch, Now: func() time.Time { return time.Unix(0, arrival.Load()) }})
				// Old heartbeats in sealed form; every tenth an unrelated mail.
				old := plainMail(testSubject, sealWith(t, e.sk, payload(1, "192.0.2.1", now.Add(-48*time.Hour))), now)
				other := plainMail("weekly report", "nothing to see", now)
				for i := range n - 1 {
					if i%10 == 9 {
						e.deliver(other)
					} else {
						e.deliver(old)
					}
				}
				arrival.Store(now.UnixNano())
				e.deliver(plainMail(testSubject, sealWith(t, e.sk, payload(uint64(n), "192.0.2.200", now)), now))
				o, _ := e.options()
				f := e.newFetcher(o)
				e.srv.ResetStats()
				got, err := fetchOnce(t, f)
				if err != nil || got.Seq != uint64(n) {
					t.Fatalf("FetchOnce(%d messages) = %+v, %v; want seq %d", n, got, err, n)
				}
				return e.srv.Stats()
			}
			small, large := cost(10), cost(10000)
			t.Logf("10 messages: %d commands, %d bytes in, %d bytes out; 10000 messages: %d commands, %d bytes in, %d bytes out",
				small.IMAPCommands, small.IMAPBytesIn, small.IMAPBytesOut, large.IMAPCommands, large.IMAPBytesIn, large.IMAPBytesOut)
			check := func(what string, s, l int64) {
				if float64(l) > 1.2*float64(s) {
					t.Errorf("%s at 10000 messages = %d, at 10 = %d: over 1.2x", what, l, s)
				}
			}
			check("commands", small.IMAPCommands, large.IMAPCommands)
			check("bytes", small.IMAPBytesIn+small.IMAPBytesOut, large.IMAPBytesIn+large.IMAPBytesOut)
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, loopmail.Options{})
	base, _ := e.options()
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"ok", func(*Options) {}, ""},
		{"no name", func(o *Options) { o.Name = "" }, "name is empty"},
		{"no user", func(o *Options) { o.Auth = passwordAuth("", "") }, "username is empty"},
		{"no keys", func(o *Options) { o.Keys = nil }, "client key"},
		{"bad idle", func(o *Options) { o.Idle = "sometimes" }, "idle"},
		{"bad format", func(o *Options) { o.Format = "rot13" }, "format"},
		{"plain remote", func(o *Options) { o.IMAP.Host = "imap.example.com" }, "loopback"},
		{"negative poll", func(o *Options) { o.PollEvery = -time.Second }, "poll_every"},
		{"bad legacy", func(o *Options) { o.Format = codec.FormatLegacy }, "legacy"},
		{"subject newline", func(o *Options) { o.Subject = "a\r\nBcc: x" }, "line break"},
		{"bad env exclusion", func(o *Options) { o.HookEnvExclude = []string{"A=B"} }, "not a variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := base
			tt.mod(&o)
			_, err := New(o)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("New(%s) = %v, want error containing %q", tt.name, err, tt.want)
			}
		})
	}
	f, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if f.o.Subject != testSubject || f.o.Mailbox != "INBOX" || f.o.PollEvery != DefaultPollEvery || f.o.Idle != IdleAuto || f.o.MaxSize != 64<<10 {
		t.Errorf("defaults = subject %q mailbox %q poll %v idle %q max %d", f.o.Subject, f.o.Mailbox, f.o.PollEvery, f.o.Idle, f.o.MaxSize)
	}
}

// TestResultJSONWithoutMessage: with no valid message the JSON says what
// is unknown as null (sequence, issued_at, age_seconds, addresses), never
// as a zero that looks like data.
func TestResultJSONWithoutMessage(t *testing.T) {
	t.Parallel()
	js, err := Result{Name: testName, Problem: "2 messages signed by another key"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sequence", "issued_at", "age_seconds", "ipv4", "ipv6"} {
		if v, ok := back[k]; !ok || v != nil {
			t.Errorf("MarshalJSON()[%q] = %v (present %v), want null", k, v, ok)
		}
	}
	if back["problem"] != "2 messages signed by another key" {
		t.Errorf("MarshalJSON()[problem] = %v", back["problem"])
	}
}
