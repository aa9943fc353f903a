package interop

import (
	"testing"

	"ipsync/fetcher"
)

// TestDovecotReconnectMidIdle: the fetcher's connection is cut while it
// IDLEs; it reconnects at once (without reporting an error), IDLEs again
// and gets the next messages by push, and a message delivered while it is
// reconnecting is not lost.
func TestDovecotReconnectMidIdle(t *testing.T) {
	t.Parallel()
	r := newIdleRig(t)
	mails := r.mails(3)

	if n := r.px.CloseAll(); n != 1 {
		t.Fatalf("connections cut = %d, want the 1 IDLE connection", n)
	}
	// The reconnect reads the mailbox once (nothing new) and IDLEs again.
	r.ups.waitFor(t, "reading the mailbox after the reconnect", func(u fetcher.Update) bool { return u.Fetching })
	r.ups.waitFor(t, "idling again after the reconnect", func(u fetcher.Update) bool {
		return settled(1)(u) && u.Mode == fetcher.ModeIdle
	})
	conns := r.px.Stats().Conns
	if conns != 2 {
		t.Errorf("connections after the cut = %d, want 2 (one reconnect)", conns)
	}
	for i, mail := range mails[:2] {
		seq := uint64(i + 2)
		_, u := r.deliver(t, mail, seq)
		if u.Payload.IPv4 != v4(i+2) || !u.Changed || u.State != fetcher.Current {
			t.Errorf("Update for seq %d = {IPv4 %v, Changed %v, State %v}; want {%v, true, %v}",
				seq, u.Payload.IPv4, u.Changed, u.State, v4(i+2), fetcher.Current)
		}
	}
	if got := r.px.Stats().Conns; got != conns {
		t.Errorf("connections = %d after the pushes, want %d (mail must arrive over the new IDLE)", got, conns)
	}
	// Cut again and deliver at once: the message lands while the fetcher
	// is away or reconnecting, and must still be read.
	r.px.CloseAll()
	r.e.admin.mustAppend("INBOX", mails[2])
	if u := r.ups.waitFor(t, "with the message delivered during the reconnect", settled(4)); u.Payload.IPv4 != v4(4) {
		t.Errorf("Update for seq 4 has IPv4 %v, want %v", u.Payload.IPv4, v4(4))
	}
	if errs := r.ups.Errors(); len(errs) > 0 {
		t.Errorf("fetcher reported State Error after a dropped connection: %s", errs[0])
	}
}
