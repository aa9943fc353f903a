package publisher

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// rawDSN is a delivery-status report (RFC 3464) as a provider's MTA writes
// it: delivery of the message with Message-ID id to rcpt failed.
func rawDSN(id, rcpt, status, diag string) []byte {
	return fmt.Appendf(nil, "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"+
		"To: %[1]s\r\n"+
		"Subject: Undelivered Mail Returned to Sender\r\n"+
		"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"+
		"Message-ID: <dsn-%[2]s>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"BOUNDARY\"\r\n"+
		"\r\n"+
		"--BOUNDARY\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\n"+
		"\r\n"+
		"I'm sorry to have to inform you that your message could not be delivered.\r\n"+
		"\r\n"+
		"--BOUNDARY\r\n"+
		"Content-Type: message/delivery-status\r\n"+
		"\r\n"+
		"Reporting-MTA: dns; mx.example.test\r\n"+
		"Arrival-Date: Thu, 03 Dec 2026 09:59:58 +0000\r\n"+
		"\r\n"+
		"Final-Recipient: rfc822; %[3]s\r\n"+
		"Original-Recipient: rfc822;%[3]s\r\n"+
		"Action: failed\r\n"+
		"Status: %[4]s\r\n"+
		"Diagnostic-Code: smtp; %[5]s\r\n"+
		"\r\n"+
		"--BOUNDARY\r\n"+
		"Content-Type: text/rfc822-headers\r\n"+
		"\r\n"+
		"From: %[1]s\r\n"+
		"Subject: ipsync srv1\r\n"+
		"Message-ID: <%[2]s>\r\n"+
		"\r\n"+
		"--BOUNDARY--\r\n", alice, id, rcpt, status, diag)
}

// settableClock is an Options.Now the test moves.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *settableClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBounceIsReportedAndRemoved(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clock := &settableClock{t: time.Now()}
	p, err := New(Options{
		Name:   "srv1",
		From:   alice,
		To:     []string{bob, carol},
		Mailer: newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password),
		Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
		Finder: staticFinder{addrA},
		Store:  FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		Now:    clock.Now,
		Pruner: newPruner(t, RetentionOptions{
			IMAP: endpointOf(t, srv, srv.IMAPAddr(), mailconn.TLSImplicit),
			Auth: pwAuth(alice, password),
			Open: opener(key),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.RunOnce(t.Context()); err != nil {
		t.Fatalf("RunOnce() = %v", err)
	}
	if st := p.Status(); st.LastError != nil || len(st.Recipients) != 0 {
		t.Fatalf("Status() = %+v, want sent with no problem (the provider accepted both)", st)
	}
	sentIDs := messageIDs(t, srv, carol)
	if len(sentIDs) != 1 {
		t.Fatalf("carol got %d messages, want 1", len(sentIDs))
	}
	// carol's remote server bounces it; an unrelated report arrives too.
	if err := srv.Deliver(alice, rawDSN(sentIDs[0], carol, "5.1.1", "550 5.1.1 <carol@example.test>: user unknown")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Deliver(alice, rawDSN("someone-else@example.test", carol, "5.2.2", "552 mailbox full")); err != nil {
		t.Fatal(err)
	}

	clock.add(10 * time.Minute)
	if _, err := p.Prune(t.Context()); err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	st := p.Status()
	if len(st.Recipients) != 1 || st.Recipients[0].Addr != carol || st.Recipients[0].Kind != ProblemBounced ||
		!strings.Contains(st.Recipients[0].Reply, "5.1.1") {
		t.Fatalf("Status().Recipients = %+v, want %s bounced 5.1.1", st.Recipients, carol)
	}
	if s := st.Recipients[0].String(); !strings.HasPrefix(s, carol+": bounced 550 5.1.1") {
		t.Errorf("RecipientProblem.String() = %q", s)
	}
	if got, want := messageIDs(t, srv, alice), []string{"dsn-someone-else@example.test"}; !slices.Equal(got, want) {
		t.Errorf("alice's inbox = %v, want only the unrelated report %v", got, want)
	}

	// A later message is accepted by the provider: that alone is no proof
	// of delivery. Once it is bounceQuiet old without a bounce, it is.
	if _, err := p.PublishAddrs(t.Context(), addrB); err != nil {
		t.Fatalf("PublishAddrs() = %v", err)
	}
	if st := p.Status(); len(st.Recipients) != 1 {
		t.Errorf("Status().Recipients = %+v after a new send, want the bounce still shown", st.Recipients)
	}
	clock.add(bounceQuiet)
	if _, err := p.Prune(t.Context()); err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	if st := p.Status(); len(st.Recipients) != 0 {
		t.Errorf("Status().Recipients = %+v, want none: the later message did not bounce", st.Recipients)
	}
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	got, err := parseDSN(rawDSN("abc@example.test", "x@example.test", "5.1.1", "550 5.1.1 unknown"))
	if err != nil || got.messageID != "abc@example.test" || len(got.recipients) != 1 ||
		got.recipients[0].final != "x@example.test" || got.recipients[0].status != "5.1.1" || got.recipients[0].action != "failed" {
		t.Errorf("parseDSN() = %+v, %v", got, err)
	}
	for _, raw := range [][]byte{rawPlain("x@y", "Undelivered"), []byte("garbage"), {}} {
		if _, err := parseDSN(raw); err == nil {
			t.Errorf("parseDSN(%q) = nil error, want one", raw)
		}
	}
}

func FuzzParseDSN(f *testing.F) {
	f.Add(rawDSN("abc@example.test", "x@example.test", "5.1.1", "550 5.1.1 unknown"))
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = parseDSN(raw) // must not panic
	})
}
