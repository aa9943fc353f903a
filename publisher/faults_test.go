package publisher

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"ipsync/codec"
	"ipsync/loopmail"
	"ipsync/mailconn"
)

// These tests run the real loop against a real SMTP server (loopmail) in
// real time, with millisecond retry waits. Every wait has a deadline.

// mailerFunc adapts a function to Mailer.
type mailerFunc func(context.Context, Message) error

func (f mailerFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// faultRig is a loop sending through loopmail with a real sealed codec.
type faultRig struct {
	srv    *loopmail.Server
	key    codec.ServerKey
	inner  *SMTPMailer
	disc   *fakeDisc
	status chan Status
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	srv := startMail(t, loopmail.TLSImplicit)
	key, err := codec.GenerateServerKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &faultRig{
		srv:    srv,
		key:    key,
		inner:  newMailer(t, endpointOf(t, srv, srv.SMTPAddr(), mailconn.TLSImplicit), alice, password),
		disc:   &fakeDisc{a: addrA},
		status: make(chan Status, 1000),
	}
}

func (r *faultRig) options(t *testing.T, m Mailer) Options {
	return Options{
		Name:     "srv1",
		From:     alice,
		Mailer:   m,
		Encode:   func(p codec.Payload) (string, error) { return codec.Seal(p, r.key, rand.Reader) },
		Finder:   r.disc,
		Store:    FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		RetryMin: time.Millisecond,
		RetryMax: 5 * time.Millisecond,
		OnStatus: func(s Status) {
			select {
			case r.status <- s:
			default:
			}
		},
	}
}

// open reads the payload of a sealed body.
func (r *faultRig) open(t *testing.T, body string) codec.Payload {
	t.Helper()
	p, err := codec.Open(body, r.key.ClientKey())
	if err != nil {
		t.Fatalf("codec.Open() = %v", err)
	}
	return p
}

// waitStatus returns the first status that satisfies ok, or fails after 10s.
func (r *faultRig) waitStatus(t *testing.T, ok func(Status) bool) Status {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case s := <-r.status:
			if ok(s) {
				return s
			}
		case <-timeout.C:
			t.Fatal("timed out waiting for the publisher's status")
		}
	}
}

// inbox returns the payloads delivered to user.
func (r *faultRig) inbox(t *testing.T, user string) []codec.Payload {
	t.Helper()
	msgs, err := r.srv.Messages(user)
	if err != nil {
		t.Fatal(err)
	}
	var out []codec.Payload
	for _, raw := range msgs {
		mr, err := mail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		part, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.open(t, string(body)))
	}
	return out
}

func runInBackground(t *testing.T, p *Publisher) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	}
}

func TestFaultSMTPDownThenUp(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	r.srv.SetSMTPDown(true)
	const upAt = 4
	var attempts atomic.Int64
	m := mailerFunc(func(ctx context.Context, msg Message) error {
		if attempts.Add(1) == upAt {
			r.srv.SetSMTPDown(false)
		}
		return r.inner.Send(ctx, msg)
	})
	p, err := New(r.options(t, m))
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, p)
	st := r.waitStatus(t, func(s Status) bool { return s.LastSeq != 0 })
	stop()

	if n := attempts.Load(); n != upAt {
		t.Errorf("attempts = %d, want %d", n, upAt)
	}
	got := r.inbox(t, alice)
	if len(got) != 1 || got[0].IPv4 != addrA.IPv4 || got[0].Seq != upAt {
		t.Errorf("inbox = %+v, want exactly one message with %v, seq %d", got, addrA, upAt)
	}
	if s := r.srv.Stats(); s.SMTPMessages != 1 {
		t.Errorf("SMTPMessages = %d, want 1", s.SMTPMessages)
	}
	if st.LastSeq != upAt || st.LastError != nil {
		t.Errorf("Status() = %+v, want seq %d and no error", st, upAt)
	}
}

func TestFaultAddressChangesDuringOutage(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	r.srv.SetSMTPDown(true)
	var attempts, attemptsC atomic.Int64
	m := mailerFunc(func(ctx context.Context, msg Message) error {
		p := r.open(t, msg.Body)
		switch attempts.Add(1) {
		case 1:
			r.disc.set(addrB, nil) // the address moves while mail is down...
		case 2:
			r.disc.set(addrC, nil) // ...twice
		}
		if p.IPv4 == addrC.IPv4 && attemptsC.Add(1) == 2 {
			r.srv.SetSMTPDown(false) // the outage ends on the second try with C
		}
		return r.inner.Send(ctx, msg)
	})
	opts := r.options(t, m)
	opts.CheckEvery = 5 * time.Millisecond
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, p)
	r.waitStatus(t, func(s Status) bool { return s.LastSeq != 0 })
	stop()

	got := r.inbox(t, alice)
	if len(got) != 1 || got[0].IPv4 != addrC.IPv4 {
		t.Errorf("inbox = %+v, want exactly one message with the newest %v", got, addrC)
	}
	if s := r.srv.Stats(); s.SMTPMessages != 1 {
		t.Errorf("SMTPMessages = %d, want 1", s.SMTPMessages)
	}
}

func TestFaultAuthFailureBacksOff(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t)
	var attempts atomic.Int64
	bad := newMailer(t, endpointOf(t, r.srv, r.srv.SMTPAddr(), mailconn.TLSImplicit), alice, "wrong")
	m := mailerFunc(func(ctx context.Context, msg Message) error {
		attempts.Add(1)
		return bad.Send(ctx, msg)
	})
	p, err := New(r.options(t, m)) // RetryMin 1ms: a transient error would retry at once
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, p)
	defer stop()
	st := r.waitStatus(t, func(s Status) bool { return s.Pending })
	if !errors.Is(st.LastError, ErrRejected) {
		t.Errorf("Status().LastError = %v, want ErrRejected", st.LastError)
	}
	// The next try waits the login backoff (minutes, growing to hours),
	// not the 1ms retry minimum.
	if wait := time.Until(st.NextRetry); wait < authRetryMin-time.Minute || wait > authRetryMin*5/4 {
		t.Errorf("next retry in %v, want about %v", wait, authRetryMin)
	}
	if !st.PasswordRefused || st.PasswordRefusedBy != "smtp" || !st.NextLogin.Equal(st.NextRetry) {
		t.Errorf("Status() = %+v, want password refused by smtp", st)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("attempts = %d, want 1", n)
	}
}
