package interop

import (
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/internal/dovecottest"
	"ipsync/publisher"
)

// dsn is a delivery-status report (RFC 3464) about the message with
// Message-ID id, failed for rcpt, as Postfix writes one.
func dsn(id, rcpt string) []byte {
	return fmt.Appendf(nil, "From: MAILER-DAEMON@mx.example.test (Mail Delivery System)\r\n"+
		"To: %[1]s\r\nSubject: Undelivered Mail Returned to Sender\r\n"+
		"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-Id: <dsn.%[2]s>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"B1\"\r\n\r\n"+
		"--B1\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"+
		"This is the mail system at host mx.example.test.\r\n\r\n"+
		"--B1\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"+
		"Reporting-MTA: dns; mx.example.test\r\nX-Postfix-Queue-ID: 4ABC\r\n\r\n"+
		"Final-Recipient: rfc822; %[3]s\r\nOriginal-Recipient: rfc822;%[3]s\r\nAction: failed\r\n"+
		"Status: 5.1.1\r\nRemote-MTA: dns; mx2.example.test\r\n"+
		"Diagnostic-Code: smtp; 550 5.1.1 <%[3]s>: Recipient address rejected: User unknown\r\n\r\n"+
		"--B1\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"+
		"From: %[1]s\r\nSubject: %[4]s\r\nMessage-ID: <%[2]s>\r\n\r\n--B1--\r\n", fromAddr, id, rcpt, subject)
}

// TestDovecotBounce: a bounce report about a message the server sent is
// found on Dovecot, reported by recipient and deleted; a report about other
// mail stays.
func TestDovecotBounce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dovecottest.Options{})
	mailer := &appendMailer{a: e.admin}
	pub := e.newPublisher(mailer, &publisher.RetentionOptions{
		IMAP: e.endpoint(),
		Auth: e.auth(),
	})
	publish(t, pub, "198.51.100.1")
	sent := mailer.Sent()
	if len(sent) != 1 || sent[0].Msg.MessageID == "" {
		t.Fatalf("sent = %+v, want one message with a Message-ID", sent)
	}
	bounce := e.admin.mustAppend("INBOX", dsn(sent[0].Msg.MessageID, e.srv.User))
	other := e.admin.mustAppend("INBOX", dsn("someone-else@example.test", e.srv.User))

	if _, err := pub.Prune(t.Context()); err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	st := pub.Status()
	if len(st.Recipients) != 1 || st.Recipients[0].Addr != e.srv.User || st.Recipients[0].Kind != publisher.ProblemBounced {
		t.Errorf("Status().Recipients = %+v, want %s bounced", st.Recipients, e.srv.User)
	}
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
	if want := []imap.UID{sent[0].UID, other}; !slices.Equal(got, want) {
		t.Errorf("remaining UIDs = %v, want %v (the report %d deleted, the other kept)", got, want, bounce)
	}
}
