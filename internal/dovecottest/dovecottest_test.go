package dovecottest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func TestStartAndLogin(t *testing.T) {
	s := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		t.Fatalf("Login() = %v", err)
	}
	if !c.Caps().Has("IDLE") {
		t.Errorf("Caps() = %v, want IDLE", c.Caps())
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("Select(INBOX) = %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("Logout() = %v", err)
	}
}
