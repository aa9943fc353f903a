package publisher

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// rawIpsync renders a message as the publisher would send it.
func rawIpsync(t *testing.T, id, subject, name string) []byte {
	t.Helper()
	msg, err := buildMsg(Message{From: alice, To: []string{alice}, Subject: subject, Name: name,
		Body: "body " + id, MessageID: id})
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
	var own []string
	for i := 1; i <= 60; i++ {
		id := fmt.Sprintf("own-%02d@example.test", i)
		own = append(own, id)
		if err := srv.Deliver(alice, rawIpsync(t, id, "ipsync srv1", "srv1")); err != nil {
			t.Fatal(err)
		}
		if i%12 == 0 { // foreign mail in between, old and new
			fid := foreignIDs[i/12-1]
			if err := srv.Deliver(alice, foreign[fid]); err != nil {
				t.Fatal(err)
			}
		}
	}

	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{
		Name:   "srv1",
		From:   alice,
		Mailer: newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password),
		Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
		Finder: staticFinder{addrA},
		Store:  FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		Pruner: newPruner(t, RetentionOptions{
			IMAP:     endpointOf(t, srv, srv.IMAPAddr(), mailconn.TLSImplicit),
			Username: alice,
			Password: password,
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
		Pruner: newPruner(t, RetentionOptions{IMAP: imap, Username: alice, Password: "wrong", Timeout: 5 * time.Second}),
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
