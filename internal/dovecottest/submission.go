package dovecottest

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// submissionBinary is Dovecot's SMTP submission service (Debian package
// dovecot-submissiond).
const submissionBinary = "/usr/lib/dovecot/submission"

// Submission describes Dovecot's SMTP submission service set up by
// SubmissionConfig.
type Submission struct {
	// Addr is its listener, "127.0.0.1:port": plain SMTP with AUTH, no TLS.
	Addr string
	// Config is the dovecot.conf part, for Options.ExtraConfig.
	Config string
}

// SubmissionConfig returns the configuration of Dovecot's SMTP submission
// service (RFC 6409) on 127.0.0.1, which signs users in through the same
// passdbs as IMAP (so, with OAuth2Config, with XOAUTH2 and OAUTHBEARER) and
// relays accepted mail to relayAddr, signing in there as relayUser with
// relayPassword (plain text: loopback only).
//
// It skips the test when dovecot-submissiond is not installed, unless the
// environment variable CI is set: then the test fails.
func SubmissionConfig(t testing.TB, relayAddr, relayUser, relayPassword string) Submission {
	t.Helper()
	if _, err := os.Stat(submissionBinary); err != nil {
		const why = "Dovecot's submission service is not installed (apt-get install dovecot-submissiond)"
		if ci := os.Getenv("CI"); ci != "" {
			t.Fatalf("%s: %s, and CI=%q makes that a failure", t.Name(), why, ci)
		}
		fmt.Fprintf(os.Stderr, "SKIP %s: %s\n", t.Name(), why)
		t.Skip(why + "; skipping. Set CI=true to make this a failure.")
	}
	host, port, err := net.SplitHostPort(relayAddr)
	if err != nil {
		t.Fatalf("dovecottest: relay address %q: %v", relayAddr, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	return Submission{
		Addr: addr.String(),
		Config: fmt.Sprintf(`protocols = imap submission
hostname = localhost
submission_relay_host = %s
submission_relay_port = %s
submission_relay_trusted = no
submission_relay_ssl = no
submission_relay_user = %s
submission_relay_password = %s
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = %d
  }
}
`, host, port, relayUser, relayPassword, addr.Port),
	}
}
