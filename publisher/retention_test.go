package publisher

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// rawIpsync renders a message as the publisher would send it, with a body
// no key opens.
func rawIpsync(t *testing.T, id, subject, name string) []byte {
	t.Helper()
	return rawWithBody(t, id, subject, name, "body "+id)
}

// rawSealed renders a genuine message of server name with sequence seq,
// sealed with key.
func rawSealed(t *testing.T, key codec.ServerKey, id, name string, seq uint64) []byte {
	t.Helper()
	body, err := codec.Seal(codec.Payload{Name: name, IPv4: addrA.IPv4, Seq: seq, IssuedAt: time.Unix(int64(1e9+seq), 0).UTC()}, key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return rawWithBody(t, id, "ipsync "+name, name, body)
}

// rawWithBody renders a message as the publisher would send it.
func rawWithBody(t *testing.T, id, subject, name, body string) []byte {
	t.Helper()
	msg, err := buildMsg(Message{From: alice, To: []string{alice}, Subject: subject, Name: name,
		Body: body, MessageID: id})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawPlain(id, subject string) []byte {
	return fmt.Appendf(nil, "From: friend@example.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nhello\r\n", alice, subject, id)
}

// messageIDs lists the Message-IDs in user's inbox, oldest first.
func messageIDs(t *testing.T, srv *loopmail.Server, user string) []string {
	t.Helper()
	msgs, err := srv.Messages(user)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, raw := range msgs {
		mr, err := mail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := mr.Header.MessageID()
		ids = append(ids, id)
	}
	return ids
}

func TestRetentionKeepsNewestOwnMessages(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	foreign := map[string][]byte{
		"f-same-subject-no-header@x": rawPlain("f-same-subject-no-header@x", "ipsync srv1"),
		"f-reply@x":                  rawIpsync(t, "f-reply@x", "Re: ipsync srv1", "srv1"),
		"f-other-server@x":           rawIpsync(t, "f-other-server@x", "ipsync srv10", "srv10"),
		"f-name-substring@x":         rawIpsync(t, "f-name-substring@x", "ipsync srv1", "srv10"),
		"f-plain@x":                  rawPlain("f-plain@x", "lunch?"),
	}
	foreignIDs := slices.Sorted(func(yield func(string) bool) {
		for id := range foreign {
			if !yield(id) {
				return
			}
		}
	})
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for i := 1; i <= 60; i++ {
		id := fmt.Sprintf("own-%02d@example.test", i)
		own = append(own, id)
		if err := srv.Deliver(alice, rawSealed(t, key, id, "srv1", uint64(i))); err != nil {
			t.Fatal(err)
		}
		if i%12 == 0 { // foreign mail in between, old and new
			fid := foreignIDs[i/12-1]
			if err := srv.Deliver(alice, foreign[fid]); err != nil {
				t.Fatal(err)
			}
		}
	}

	p, err := New(Options{
		Name:     "srv1",
		From:     alice,
		Mailer:   newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password),
		Encode:   func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
		Finder:   staticFinder{addrA},
		Store:    FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		SeqFloor: func(time.Time) uint64 { return 61 },
		Pruner: newPruner(t, RetentionOptions{
			IMAP: endpointOf(t, srv, srv.IMAPAddr(), mailconn.TLSImplicit),
			Auth: pwAuth(alice, password),
			Open: opener(key),
		}),
	})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}

	n, err := p.Prune(t.Context())
	if err != nil || n != 12 {
		t.Fatalf("Prune() = %d, %v, want 12 deleted", n, err)
	}
	check := func(wantOwn []string) {
		t.Helper()
		ids := messageIDs(t, srv, alice)
		var gotOwn, gotForeign []string
		for _, id := range ids {
			if _, ok := foreign[id]; ok {
				gotForeign = append(gotForeign, id)
			} else {
				gotOwn = append(gotOwn, id)
			}
		}
		slices.Sort(gotForeign)
		if !slices.Equal(gotOwn, wantOwn) {
			t.Errorf("own messages kept = %d %v, want %d %v", len(gotOwn), gotOwn, len(wantOwn), wantOwn)
		}
		if !slices.Equal(gotForeign, foreignIDs) {
			t.Errorf("foreign messages = %v, want all of %v", gotForeign, foreignIDs)
		}
	}
	check(own[12:])

	// A second run has nothing to do.
	if n, err := p.Prune(t.Context()); err != nil || n != 0 {
		t.Errorf("second Prune() = %d, %v, want 0, nil", n, err)
	}

	// Publishing runs retention after the send: the new message stays and
	// the oldest one goes.
	if _, err := p.RunOnce(t.Context()); err != nil {
		t.Fatalf("RunOnce() = %v", err)
	}
	ids := messageIDs(t, srv, alice)
	newest := ids[len(ids)-1]
	check(append(slices.Clone(own[13:]), newest))
}

func TestRetentionFailureDoesNotBlockPublishing(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	imap := endpointOf(t, srv, srv.IMAPAddr(), mailconn.TLSImplicit)
	p, err := New(Options{
		Name:   "srv1",
		From:   alice,
		Mailer: newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password),
		Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
		Finder: staticFinder{addrA},
		Store:  FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		Pruner: newPruner(t, RetentionOptions{IMAP: imap, Auth: pwAuth(alice, "wrong"), Timeout: 5 * time.Second, Open: opener(key)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Prune(t.Context()); err == nil {
		t.Error("Prune(wrong password) = nil, want a login error")
	}
	if _, err := p.RunOnce(t.Context()); err != nil {
		t.Errorf("RunOnce() with failing retention = %v, want nil", err)
	}
	if ids := messageIDs(t, srv, alice); len(ids) != 1 {
		t.Errorf("inbox holds %d messages, want 1", len(ids))
	}
	off, err := New(Options{Name: "srv1", From: alice, Mailer: mailerFunc(nil), Encode: jsonEncode, Store: &memStore{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Prune(t.Context()); !errors.Is(err, ErrRetentionOff) {
		t.Errorf("Prune() without retention = %v, want ErrRetentionOff", err)
	}
}

func newPruner(t *testing.T, o RetentionOptions) *IMAPPruner {
	t.Helper()
	r, err := NewIMAPPruner(o)
	if err != nil {
		t.Fatalf("NewIMAPPruner() = %v", err)
	}
	return r
}

// opener is RetentionOptions.Open for key.
func opener(key codec.ServerKey) func(string) (codec.Payload, error) {
	own := key.ClientKey()
	return func(body string) (codec.Payload, error) { return codec.Open(body, own) }
}

// TestRetentionTrustsOnlySignatures is issue 10's case: with keep 3, a
// genuine G1, three forged messages with the same subject and name header,
// then a genuine G2. Header-based retention deleted G1 and kept the forged
// ones; proven retention deletes nothing, and later keeps the newest
// genuine messages by sequence number, whatever their UIDs.
func TestRetentionTrustsOnlySignatures(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(raw []byte) {
		t.Helper()
		if err := srv.Deliver(alice, raw); err != nil {
			t.Fatal(err)
		}
	}
	pr := newPruner(t, RetentionOptions{
		IMAP:         endpointOf(t, srv, srv.IMAPAddr(), mailconn.TLSImplicit),
		Auth:         pwAuth(alice, password),
		KeepMessages: 3,
		Open:         opener(key),
	})
	deliver(rawSealed(t, key, "g1@x", "srv1", 1))
	deliver(rawIpsync(t, "forged-junk@x", "ipsync srv1", "srv1"))
	deliver(rawSealed(t, other, "forged-other-key@x", "srv1", 99)) // signed, but not by this server
	deliver(rawWithBody(t, "forged-big@x", "ipsync srv1", "srv1", strings.Repeat("x", 10<<10)))
	deliver(rawSealed(t, key, "g2@x", "srv1", 2))

	req := PruneRequest{Name: "srv1", Subject: "ipsync srv1"}
	res, err := pr.Prune(t.Context(), req)
	if n := res.Deleted; err != nil || n != 0 {
		t.Errorf("Prune() = %d, %v, want 0 deleted: only 2 genuine messages", n, err)
	}
	all := []string{"g1@x", "forged-junk@x", "forged-other-key@x", "forged-big@x", "g2@x"}
	if got := messageIDs(t, srv, alice); !slices.Equal(got, all) {
		t.Errorf("inbox = %v, want all of %v", got, all)
	}

	// G3..G5 arrive, then a replayed copy of G1 (highest UID) and of G5.
	deliver(rawSealed(t, key, "g3@x", "srv1", 3))
	deliver(rawSealed(t, key, "g5@x", "srv1", 5))
	deliver(rawSealed(t, key, "g4@x", "srv1", 4)) // reordered in transit
	deliver(rawSealed(t, key, "g1-replay@x", "srv1", 1))
	deliver(rawSealed(t, key, "g5-replay@x", "srv1", 5))
	res, err = pr.Prune(t.Context(), req)
	if n := res.Deleted; err != nil || n != 4 {
		t.Errorf("Prune() = %d, %v, want 4 deleted (g1, g2, g1-replay, g5-replay)", n, err)
	}
	want := []string{"forged-junk@x", "forged-other-key@x", "forged-big@x", "g3@x", "g5@x", "g4@x"}
	if got := messageIDs(t, srv, alice); !slices.Equal(got, want) {
		t.Errorf("inbox = %v, want %v", got, want)
	}

	// Nothing is downloaded twice: a session over the same mailbox sends
	// no message bodies, only the search and the session's small talk.
	srv.ResetStats()
	if res, err := pr.Prune(t.Context(), req); err != nil || res.Deleted != 0 {
		t.Errorf("third Prune() = %+v, %v, want nothing deleted", res, err)
	}
	if out := srv.Stats().IMAPBytesOut; out > 1500 {
		t.Errorf("third session read %d bytes from the server, want under 1500 (no message downloaded again)", out)
	} else {
		t.Logf("third session: %d bytes from the server", out)
	}
}

func TestRetentionNeedsProof(t *testing.T) {
	t.Parallel()
	_, err := NewIMAPPruner(RetentionOptions{IMAP: mailconn.Endpoint{Host: "127.0.0.1", Port: 143, TLS: mailconn.TLSNone}, Auth: pwAuth(alice, "")})
	if err == nil || !strings.Contains(err.Error(), "verify") {
		t.Errorf("NewIMAPPruner(no Open) = %v, want an error: retention must prove its messages", err)
	}
}
