package publisher

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// changingFinder finds a new address at every check, the worst case for
// a login backoff (each change would otherwise be sent at once).
type changingFinder struct {
	mu sync.Mutex
	n  int
}

func (f *changingFinder) Find(context.Context) (Addrs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return Addrs{IPv4: netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", f.n%250+1))}, nil
}

// TestRefusedPasswordBacksOff: with a wrong password and an address that
// changes at every check (every 5 minutes), the SMTP server sees at most 6
// logins in an hour, counted by loopmail; the status says "password
// refused", not a network error; PublishNow tries at once.
func TestRefusedPasswordBacksOff(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSNone) // outside the bubble; no TLS: certificates see the bubble's year 2000
	ep := endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSNone)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, Options{
			Name:   "srv1",
			From:   alice,
			Mailer: newMailer(t, ep, alice, "wrong password"),
			Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
			Finder: &changingFinder{},
			Store:  FileStore{Path: filepath.Join(dir, "state.json")},
		})
		defer l.stop()
		synctest.Wait()
		st := l.p.Status()
		if !st.PasswordRefused || st.PasswordRefusedBy != "smtp" || !errors.Is(st.LastError, ErrAuthRefused) || !st.LastErrorSending {
			t.Fatalf("Status() = %+v, want password refused by smtp", st)
		}
		if wait := time.Until(st.NextLogin); wait < authRetryMin || wait > authRetryMin*5/4 {
			t.Errorf("next login in %v, want %v to %v", wait, authRetryMin, authRetryMin*5/4)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		t.Logf("SMTP logins in the first hour: %d", srv.Stats().SMTPAuths)
		if n := srv.Stats().SMTPAuths; n > 6 || n < 3 {
			t.Errorf("SMTP logins in an hour = %d, want 3 to 6", n)
		}
		if st := l.p.Status(); !st.PasswordRefused || time.Until(st.NextLogin) <= 0 {
			t.Errorf("Status() after an hour = %+v, want still refused with a later login", st)
		}
		before := srv.Stats().SMTPAuths
		l.p.PublishNow()
		synctest.Wait()
		if n := srv.Stats().SMTPAuths; n != before+1 {
			t.Errorf("logins after PublishNow = %d, want %d: Publish now tries at once", n, before+1)
		}
	})
}

// TestRefusedRetentionPasswordBacksOff: sending works, but the IMAP login
// for retention is refused (AUTHENTICATIONFAILED). With a send at every
// check, retention logs in at most 6 times an hour.
func TestRefusedRetentionPasswordBacksOff(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSNone)
	smtpEP := endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSNone)
	imapEP := endpointOf(t, srv, srv.IMAPAddr(), mailconn.TLSNone)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		l := startLoop(t, Options{
			Name:   "srv1",
			From:   alice,
			Mailer: newMailer(t, smtpEP, alice, password),
			Encode: func(pl codec.Payload) (string, error) { return codec.Seal(pl, key, rand.Reader) },
			Finder: &changingFinder{},
			Store:  FileStore{Path: filepath.Join(dir, "state.json")},
			Pruner: newPruner(t, RetentionOptions{IMAP: imapEP, Auth: pwAuth(alice, "wrong"), Open: opener(key)}),
		})
		defer l.stop()
		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		st := srv.Stats()
		if st.SMTPMessages < 12 {
			t.Errorf("messages sent = %d, want one per check (12 or more)", st.SMTPMessages)
		}
		t.Logf("messages sent: %d, IMAP logins in the first hour: %d", st.SMTPMessages, st.IMAPLogins)
		if st.IMAPLogins > 6 || st.IMAPLogins < 3 {
			t.Errorf("IMAP logins in an hour = %d, want 3 to 6", st.IMAPLogins)
		}
		s := l.p.Status()
		if !s.PasswordRefused || s.PasswordRefusedBy != "imap" || !errors.Is(s.RetentionError, ErrAuthRefused) || s.LastError != nil {
			t.Errorf("Status() = %+v, want password refused by imap, publishing fine", s)
		}
	})
}
