package interop

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/internal/dovecottest"
	"ipsync/publisher"
)

// TestDovecotRetention: 60 of this server's messages and 5 foreign ones
// that look alike in various ways; Prune with KeepMessages 48 on Dovecot
// deletes the 12 oldest of this server's and nothing else.
func TestDovecotRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dovecottest.Options{})
	mailer := &appendMailer{a: e.admin}
	pub := e.newPublisher(mailer, nil)

	// Foreign mail, interleaved with ours so that UIDs mix.
	now := time.Now()
	foreign := []publisher.Message{
		{Subject: "ipsync lab", Name: "lab"},                  // another server
		{Subject: subject, Name: "office2"},                   // name header only a superstring
		{Subject: subject + " (old)", Name: serverName},       // subject only a superstring
		{Subject: subject, Name: ""},                          // no name header value
		{Subject: "weekly report", Name: "not ipsync at all"}, // unrelated
	}
	var foreignUIDs []imap.UID
	for i := range 60 {
		if i%12 == 5 {
			m := foreign[len(foreignUIDs)]
			m.From, m.To, m.Body, m.Date = "other@example.test", []string{e.srv.User}, "hello", now
			raw, err := publisher.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			foreignUIDs = append(foreignUIDs, e.admin.mustAppend("INBOX", raw))
		}
		publish(t, pub, fmt.Sprintf("198.51.100.%d", i+1))
	}
	ours := mailer.Sent()
	if len(ours) != 60 || len(foreignUIDs) != len(foreign) {
		t.Fatalf("seeded %d own and %d foreign messages, want 60 and %d", len(ours), len(foreignUIDs), len(foreign))
	}

	pruner := e.newPublisher(&appendMailer{a: e.admin}, &publisher.RetentionOptions{
		IMAP:         e.endpoint(),
		Auth:         e.auth(),
		KeepMessages: 48,
	})
	ctx := t.Context()
	n, err := pruner.Prune(ctx)
	if err != nil || n != 12 {
		t.Fatalf("Prune() = %d, %v; want 12, nil", n, err)
	}

	var want []imap.UID
	for _, a := range ours[12:] {
		want = append(want, a.UID)
	}
	want = append(want, foreignUIDs...)
	slices.Sort(want)
	var got []imap.UID
	e.admin.command("list remaining messages", func(c *imapclient.Client) error {
		if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return err
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			return err
		}
		got = data.AllUIDs()
		return c.Unselect().Wait()
	})
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("UIDs left after Prune = %v, want the 48 newest own %v plus foreign %v", got, uidsOf(ours[12:]), foreignUIDs)
	}

	// A second Prune has nothing to do.
	if n, err := pruner.Prune(ctx); err != nil || n != 0 {
		t.Errorf("second Prune() = %d, %v; want 0, nil", n, err)
	}
}

func uidsOf(as []appended) []imap.UID {
	out := make([]imap.UID, len(as))
	for i, a := range as {
		out[i] = a.UID
	}
	return out
}
