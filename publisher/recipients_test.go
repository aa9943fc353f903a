package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"ipsync/codec"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"ipsync/loopmail"
	"ipsync/mailconn"
)

const departed = "departed.employee@example.test" // not a loopmail user: 550 5.1.1

func TestSendGoesOnPastRefusedRecipient(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	m := newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password)
	err := m.Send(t.Context(), testMessage(alice, departed, bob))
	var rerr *RecipientError
	if !errors.As(err, &rerr) {
		t.Fatalf("Send() = %v, want a *RecipientError", err)
	}
	if errors.Is(err, ErrRejected) {
		t.Errorf("Send() = %v, want no ErrRejected: the message went to the others", err)
	}
	if !slices.Equal(rerr.Delivered, []string{alice, bob}) {
		t.Errorf("Delivered = %v, want [%s %s]", rerr.Delivered, alice, bob)
	}
	if len(rerr.Refused) != 1 || rerr.Refused[0].Rcpt != departed || rerr.Refused[0].Code != 550 ||
		rerr.Refused[0].Status != "5.1.1" || !rerr.Refused[0].Permanent() {
		t.Errorf("Refused = %+v, want %s refused 550 5.1.1", rerr.Refused, departed)
	}
	for _, user := range []string{alice, bob} {
		if msgs, err := srv.Messages(user); err != nil || len(msgs) != 1 {
			t.Errorf("Messages(%s) = %d, %v, want 1", user, len(msgs), err)
		}
	}
	if st := srv.Stats(); st.SMTPMessages != 1 || st.SMTPRecipients != 2 {
		t.Errorf("Stats() = %d messages to %d recipients, want 1 to 2 (one transaction)", st.SMTPMessages, st.SMTPRecipients)
	}
	// The recipients still do not see each other.
	msgs, _ := srv.Messages(bob)
	if len(msgs) == 1 {
		for _, other := range []string{alice + ",", departed, "Bcc:", "Cc:"} {
			if strings.Contains(string(msgs[0]), other) {
				t.Errorf("message to bob contains %q:\n%s", other, msgs[0])
			}
		}
	}
}

// TestRefusedRecipientDoesNotBlockOthers runs the loop against loopmail:
// with one departed recipient in Options.To, the others get every message,
// and the status names the refused one.
func TestRefusedRecipientDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	opts := r.options(t, r.inner)
	opts.To = []string{alice, departed, bob}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, p)
	defer stop()
	st := r.waitStatus(t, func(s Status) bool { return s.LastSeq != 0 })
	for i, a := range []Addrs{addrB, addrC} {
		r.disc.set(a, nil)
		p.PublishNow()
		seq := st.LastSeq
		st = r.waitStatus(t, func(s Status) bool { return s.LastSeq > seq })
		if st.LastError != nil {
			t.Errorf("publication %d: LastError = %v, want nil", i+2, st.LastError)
		}
	}
	for _, user := range []string{alice, bob} {
		got := r.inbox(t, user)
		if len(got) != 3 || got[2].IPv4 != addrC.IPv4 {
			t.Errorf("inbox of %s = %d messages, want all 3 ending with %v", user, len(got), addrC)
		}
	}
	if len(st.Recipients) != 1 || st.Recipients[0].Addr != departed || st.Recipients[0].Kind != ProblemRefused ||
		!strings.HasPrefix(st.Recipients[0].Reply, "550 5.1.1") {
		t.Errorf("Status().Recipients = %+v, want %s refused 550 5.1.1", st.Recipients, departed)
	}
	if s := st.Recipients[0].String(); !strings.Contains(s, departed+": refused 550 5.1.1") || !strings.Contains(s, " since ") {
		t.Errorf("RecipientProblem.String() = %q", s)
	}
}

// rcptMailer refuses the recipients in refused (550 5.1.1) and delivers to
// the others, recording each delivery.
type rcptMailer struct {
	mu      sync.Mutex
	refused map[string]bool
	got     map[string][]uint64 // recipient → sequence numbers
	tries   map[string][]time.Time
}

func (m *rcptMailer) Send(_ context.Context, msg Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rerr RecipientError
	for _, to := range msg.To {
		m.tries[to] = append(m.tries[to], time.Now())
		if m.refused[to] {
			rerr.Refused = append(rerr.Refused, Refusal{Rcpt: to, Code: 550, Status: "5.1.1", Text: "No such user"})
			continue
		}
		rerr.Delivered = append(rerr.Delivered, to)
		p, err := jsonDecode(msg.Body)
		if err != nil {
			return err
		}
		m.got[to] = append(m.got[to], p.Seq)
	}
	if len(rerr.Refused) > 0 {
		return &rerr
	}
	return nil
}

func (m *rcptMailer) setRefused(addr string, refused bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused[addr] = refused
}

func TestRefusedRecipientRetriedOnItsOwn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		m := &rcptMailer{refused: map[string]bool{departed: true}, got: map[string][]uint64{}, tries: map[string][]time.Time{}}
		opts := baseOptions(&fakeDisc{a: addrA}, m, &memStore{})
		opts.To = []string{alice, departed}
		l := startLoop(t, opts) // RetryMax 10m, heartbeat 1h
		defer l.stop()
		synctest.Wait()
		st := l.p.Status()
		if st.LastError != nil || st.LastSeq != 1 || len(st.Recipients) != 1 || !st.Recipients[0].NextRetry.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("Status() = %+v, want seq 1 sent, %s refused with a retry at 10m", st, departed)
		}
		time.Sleep(15 * time.Minute) // a retry at 10m, refused again
		m.setRefused(departed, false)
		time.Sleep(20 * time.Minute) // the next retry, at 10m+20m, succeeds
		synctest.Wait()
		m.mu.Lock()
		var offs []time.Duration
		for _, at := range m.tries[departed] {
			offs = append(offs, at.Sub(t0))
		}
		got := slices.Clone(m.got[departed])
		gotAlice := slices.Clone(m.got[alice])
		m.mu.Unlock()
		if want := []time.Duration{0, 10 * time.Minute, 30 * time.Minute}; !sameDurations(offs, want) {
			t.Errorf("tries to %s at %v, want %v", departed, offs, want)
		}
		if !slices.Equal(got, []uint64{1}) {
			t.Errorf("%s got %v, want the newest message (seq 1) once, from the retry", departed, got)
		}
		if !slices.Equal(gotAlice, []uint64{1}) {
			t.Errorf("alice got %v, want seq 1 once: retries go to the refused recipient only", gotAlice)
		}
		if st := l.p.Status(); len(st.Recipients) != 0 || st.LastSeq != 1 {
			t.Errorf("Status() = %+v, want no recipient problem and seq 1 still the last sent", st)
		}
	})
}

func jsonDecode(body string) (codec.Payload, error) {
	var p codec.Payload
	err := json.Unmarshal([]byte(body), &p)
	return p, err
}

func TestCheckRecipients(t *testing.T) {
	t.Parallel()
	srv := startMail(t, loopmail.TLSImplicit)
	m := newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password)
	refused, err := m.CheckRecipients(t.Context(), alice, []string{bob, departed})
	if err != nil || len(refused) != 1 || refused[0].Rcpt != departed || refused[0].String() != "550 5.1.1 No such user here" {
		t.Errorf("CheckRecipients() = %+v, %v, want %s refused 550 5.1.1", refused, err, departed)
	}
	if st := srv.Stats(); st.SMTPMessages != 0 {
		t.Errorf("SMTPMessages = %d, want 0: a check sends nothing", st.SMTPMessages)
	}
}
