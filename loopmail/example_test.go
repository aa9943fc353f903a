package loopmail_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"ipsync/loopmail"
)

// ExampleStart sends a message over SMTP with AUTH PLAIN and reads the
// recipient's INBOX back.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv, err := loopmail.Start(ctx, loopmail.Options{
		Users: map[string]string{
			"server@example.test": "server-password",
			"client@example.test": "client-password",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", srv.SMTPAddr())
	if err != nil {
		log.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "server@example.test", "server-password")); err != nil {
		log.Fatal(err)
	}
	msg := "From: server@example.test\r\nTo: client@example.test\r\nSubject: ipsync demo\r\n\r\nhello\r\n"
	if err := c.SendMail("server@example.test", []string{"client@example.test"}, strings.NewReader(msg)); err != nil {
		log.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		log.Fatal(err)
	}

	msgs, err := srv.Messages("client@example.test")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(msgs), "message(s); first line:", strings.SplitN(string(msgs[0]), "\r\n", 2)[0])
	fmt.Println("accepted over SMTP:", srv.Stats().SMTPMessages)
	// Output:
	// 1 message(s); first line: From: server@example.test
	// accepted over SMTP: 1
}
