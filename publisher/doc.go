// Package publisher is ipsync's server role: it watches the host's public
// address and mails it to the clients' mailboxes.
//
// A [Publisher] checks the address every Options.CheckEvery (default 5m)
// through a [Finder], publishes at once when it changes and otherwise
// sends a heartbeat every Options.HeartbeatEvery (default 1h). Each message
// carries the text of Options.Encode (a sealed or legacy codec message) as a
// text/plain body under a neutral subject, and goes to every address of
// Options.To in one transaction of the [Mailer] (an [SMTPMailer], built on
// go-mail). A recipient the server refuses does not stop the others: the
// message goes to every recipient that accepted, the refused ones are shown
// in Status.Recipients and sent the newest message again on their own
// schedule (see [RecipientError]).
//
// The caller (main) builds the parts that touch the outside and hands them
// in: the Mailer, the [Store] (a [FileStore]) and, for retention, the
// [Pruner] (an [IMAPPruner]).
//
// Delivery is crash-safe and never reuses a sequence number: the number is
// reserved in the state file (a [Store]) before the message is sent, and
// recorded as sent afterwards. Each update of the state file holds an OS
// file lock and merges what is on disk, so a running service and a one-off
// `ipsync publish` sharing the file take turns: each reserves a number
// above every number reserved so far, and each adopts the other's newer
// sent record. Failed sends retry with capped exponential
// backoff and jitter, always with the newest known address; a permanent
// refusal by the mail server ([ErrRejected], e.g. 554 message refused) is
// reported in [Status] and not retried until the address changes, the user
// asks with PublishNow, or a heartbeat interval has passed. A refused
// password ([ErrAuthRefused]: SMTP 535/534/530, IMAP AUTHENTICATIONFAILED)
// is shown as Status.PasswordRefused and the login is retried after waits
// growing from 5 minutes to 4 hours, which nothing but PublishNow, a
// success or a new Publisher shortens, so a wrong password does not get the
// account locked. Logins go through a mailconn.Auth (SMTPOptions.Auth,
// RetentionOptions.Auth): a password or an OAuth2 token. When the OAuth2
// sign-in is no longer accepted ([ErrSignInNeeded]) no mail server is
// contacted: Status.SignInNeeded is set and the token source is asked again
// every 5 minutes (a local look at the token store) or at PublishNow.
//
// At each check the loop also reads the state file: a newer message sent by
// another process (`ipsync publish --once --ip X` beside the service) is
// adopted, and if the address the check finds differs, it is published at
// once with a higher sequence number.
//
// A check that finds no address for a family (IPv4 or IPv6) the current
// address has keeps the last known one for that family until it has been
// missing for Options.MissingChecks checks in a row (default 3), so a brief
// failure of one family's sources is not published as an address change.
//
// With Options.Pruner set, the publisher deletes its own older messages
// from the mailbox over IMAP after each successful send, keeping the newest
// ones by sequence number; it counts and deletes only messages it proves
// its own by their signature (RetentionOptions.Open), never other mail. The
// same session recognises delivery-status reports (bounces) that refer to
// the Message-IDs the server sent (kept in the state as Record.SentIDs),
// shows the failing recipient in Status.Recipients and deletes the report.
//
// The pause switch (SetPaused) applies at once and is saved in the
// background, so the tray's event goroutine never waits for the state file.
// Options.OnStatus is called with no lock held.
//
// Waits use the time package's timers, so tests drive the schedule with
// testing/synctest.
package publisher
