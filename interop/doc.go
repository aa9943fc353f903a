// Package interop holds ipsync's interoperability tests against a real
// Dovecot 2.3 IMAP server; it has no non-test code.
//
// The tests run whenever Dovecot is installed (package dovecot-imapd) and
// otherwise skip, saying so (a failure with CI set; see
// ipsync/internal/dovecottest). A system Dovecot may be running: the tests
// start their own on other ports.
//
//	go test -race ./interop/
//	go test -run '^$' -bench DovecotIdleLatency -benchtime=20x ./interop/
//
// Dovecot has no SMTP, so the publisher's mail is "delivered" by an IMAP
// APPEND of the bytes its SMTP mailer would send (rendered with go-mail the
// same way). The appending connection comes from 127.0.0.2, so, like SMTP
// delivery, it does not count against the account's per-user-and-IP IMAP
// connection limit that the fetchers share. A counting TCP proxy in front
// of Dovecot measures what the fetchers do on the wire: commands, bytes,
// logged-in sessions and connection-limit refusals.
//
// The OAuth2 tests (oauth2_test.go) sign in with XOAUTH2 and OAUTHBEARER
// through Dovecot's oauth2 passdb, for IMAP and for SMTP through Dovecot's
// submission service (dovecot-submissiond), which relays to loopmail.
package interop
