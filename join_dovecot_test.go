package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/codec"
	"ipsync/internal/dovecottest"
	"ipsync/publisher"
)

// TestInviteJoinDovecot: the round trip against a real Dovecot. The server
// config points at Dovecot's IMAP (plain, on loopback); the invitation
// sets up a fresh home whose client check passes and whose `fetch --once`
// reads a sealed message APPENDed the way the server's mail would arrive.
// Runs with IPSYNC_TEST_DOVECOT=1 (.ci/run sets it).
func TestInviteJoinDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	et := newEnrolTest(t, false)
	dir := t.TempDir()
	sk, err := codec.GenerateServerKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("server.key", sk.Text())
	write("password", srv.Password+"\n")
	host, port, _ := net.SplitHostPort(srv.Addr)
	et.serverCfg = write("server.yaml", `role: server
name: office
mail:
  address: `+srv.User+`
  password: file:password
  smtp: {host: 127.0.0.1, port: 25, tls: none}
  imap: {host: `+host+`, port: `+port+`, tls: none}
codec:
  key: file:server.key
`)
	inv := et.invite(t)
	code, out, errOut := runCLI(t, "join", inv, "--passphrase-file", et.passFile)
	if code != exitOK || !strings.Contains(out, "PASS imap "+srv.Addr) {
		t.Fatalf("join against Dovecot = %d\n%s%s", code, out, errOut)
	}

	body, err := codec.Seal(codec.Payload{Name: "office", IPv4: netip.MustParseAddr("8.8.4.4"), Seq: 7, IssuedAt: time.Now()}, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := publisher.Render(publisher.Message{From: srv.User, To: []string{srv.User}, Subject: "ipsync office", Name: "office", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, srv, raw)

	code, out, errOut = runCLI(t, "fetch", "--once")
	if code != exitOK || !strings.HasPrefix(out, "office 8.8.4.4 (seq 7,") {
		t.Errorf("fetch after join against Dovecot = %d %q %q", code, out, errOut)
	}
}

// appendRaw stores raw in the INBOX of srv's user.
func appendRaw(t *testing.T, srv *dovecottest.Server, raw []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(srv.User, srv.Password).Wait(); err != nil {
		t.Fatalf("login to Dovecot: %v", err)
	}
	cmd := c.Append("INBOX", int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("APPEND to Dovecot: %v", err)
	}
}
