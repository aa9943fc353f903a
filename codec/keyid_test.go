package codec

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestMessageKeyID(t *testing.T) {
	t.Parallel()
	k, err := GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := Payload{Name: "office", IPv4: netip.MustParseAddr("192.0.2.1"), Seq: 1, IssuedAt: time.Unix(1700000000, 0).UTC()}
	text, err := Seal(p, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := MessageKeyID(text); err != nil || got != k.ID() {
		t.Errorf("MessageKeyID(sealed) = %q, %v; want %q", got, err, k.ID())
	}
	if _, err := MessageKeyID("hello"); !errors.Is(err, ErrMalformed) {
		t.Errorf("MessageKeyID(junk) = %v, want ErrMalformed", err)
	}
}
