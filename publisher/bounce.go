package publisher

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
)

// Bounds of the search for delivery-status reports in one session.
const (
	// maxReportSize: a report larger than this is not downloaded (it
	// returns our message, which is about 1 KiB, plus the provider's text).
	maxReportSize = 256 << 10
	// maxReports: at most this many reports (the newest) per session.
	maxReports = 200
	// maxReportParts bounds the MIME parts looked at in one report.
	maxReportParts = 16
)

// Bounce is a delivery-status report (RFC 3464) that came back for a
// message this server sent: delivery to Rcpt failed.
type Bounce struct {
	// Rcpt is the recipient it failed for, as the publisher sent to it.
	Rcpt string
	// Status is the report's status, e.g. "5.1.1"; Diagnostic the remote
	// server's reply, e.g. "smtp; 550 5.1.1 user unknown", if given.
	Status, Diagnostic string
	// MessageID is the Message-ID of the message that bounced.
	MessageID string
	// SentAt is when that message was sent.
	SentAt time.Time
}

// Reply returns the status and diagnostic for a RecipientProblem.
func (b Bounce) Reply() string {
	d := strings.TrimSpace(b.Diagnostic)
	if i := strings.IndexByte(d, ';'); i >= 0 && !strings.ContainsAny(d[:i], " ") {
		d = strings.TrimSpace(d[i+1:]) // drop the "smtp;" type
	}
	switch {
	case d == "":
		return b.Status
	case b.Status == "" || strings.Contains(d, b.Status):
		return d
	}
	return b.Status + " " + d
}

// Permanent reports a failed delivery that will not succeed unchanged
// (status class 5).
func (b Bounce) Permanent() bool { return strings.HasPrefix(b.Status, "5") }

// dsnRecipient is one per-recipient block of a delivery-status report.
type dsnRecipient struct {
	original, final, action, status, diagnostic string
}

// parsedDSN is what ipsync reads from a delivery-status report.
type parsedDSN struct {
	messageID  string // of the message that bounced, without brackets
	recipients []dsnRecipient
}

// errNotDSN: the message is not a delivery-status report ipsync can read.
var errNotDSN = errors.New("not a delivery-status report")

// parseDSN reads a multipart/report; report-type=delivery-status message:
// the per-recipient fields of its message/delivery-status part and the
// Message-ID of the returned message (a message/rfc822 or
// text/rfc822-headers part).
func parseDSN(raw []byte) (parsedDSN, error) {
	var out parsedDSN
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return out, fmt.Errorf("parse report: %w", err)
	}
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" || !strings.EqualFold(params["report-type"], "delivery-status") {
		return out, errNotDSN
	}
	mr := e.MultipartReader()
	if mr == nil {
		return out, errNotDSN
	}
	for range maxReportParts {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return out, fmt.Errorf("parse report part: %w", err)
		}
		pmt, _, _ := part.Header.ContentType()
		body, err := io.ReadAll(io.LimitReader(part.Body, maxReportSize))
		if err != nil {
			return out, fmt.Errorf("read report part: %w", err)
		}
		switch pmt {
		case "message/delivery-status", "message/global-delivery-status":
			out.recipients = parseStatusFields(body)
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			if out.messageID == "" {
				out.messageID = returnedMessageID(body)
			}
		}
	}
	if len(out.recipients) == 0 || out.messageID == "" {
		return out, errNotDSN
	}
	return out, nil
}

// parseStatusFields reads the blocks of a message/delivery-status body:
// the per-message block, then one block per recipient.
func parseStatusFields(body []byte) []dsnRecipient {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	var out []dsnRecipient
	for first := true; ; first = false {
		h, err := r.ReadMIMEHeader()
		if len(h) > 0 && !first {
			out = append(out, dsnRecipient{
				original:   addressOf(h.Get("Original-Recipient")),
				final:      addressOf(h.Get("Final-Recipient")),
				action:     strings.ToLower(strings.TrimSpace(h.Get("Action"))),
				status:     strings.TrimSpace(h.Get("Status")),
				diagnostic: strings.TrimSpace(h.Get("Diagnostic-Code")),
			})
		}
		if err != nil {
			return out
		}
	}
}

// addressOf returns the address of a recipient field ("rfc822; a@b").
func addressOf(field string) string {
	if _, addr, ok := strings.Cut(field, ";"); ok {
		field = addr
	}
	return strings.Trim(strings.TrimSpace(field), "<>")
}

// returnedMessageID returns the Message-ID of the returned message or
// headers in body, without brackets.
func returnedMessageID(body []byte) string {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	h, _ := r.ReadMIMEHeader()
	v := strings.TrimSpace(h.Get("Message-Id"))
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return ""
}

// bounces finds the delivery-status reports in the selected mailbox that
// refer to a message in sent, marks them \Deleted and returns the bounces
// and the report UIDs. Reports about other mail are left alone.
func (r *IMAPPruner) bounces(c *imapclient.Client, sent []SentID) ([]Bounce, []imap.UID, error) {
	if len(sent) == 0 {
		return nil, nil, nil
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{
		Header:  []imap.SearchCriteriaHeaderField{{Key: "Content-Type", Value: "report"}},
		NotFlag: []imap.Flag{imap.FlagDeleted},
	}, nil).Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("search delivery-status reports: %w", err)
	}
	uids := found.AllUIDs()
	if len(uids) == 0 {
		return nil, nil, nil
	}
	uids = uids[max(0, len(uids)-maxReports):]
	sizes, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, nil, fmt.Errorf("fetch sizes of %d reports: %w", len(uids), err)
	}
	var small []imap.UID
	for _, m := range sizes {
		if m.UID != 0 && m.RFC822Size <= maxReportSize {
			small = append(small, m.UID)
		}
	}
	if len(small) == 0 {
		return nil, nil, nil
	}
	byID := make(map[string]SentID, len(sent))
	for _, s := range sent {
		byID[s.ID] = s
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(small...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %d reports: %w", len(small), err)
	}
	var out []Bounce
	var ours []imap.UID
	for _, m := range msgs {
		dsn, err := parseDSN(m.FindBodySection(section))
		if err != nil {
			continue
		}
		s, ok := byID[dsn.messageID]
		if !ok {
			continue // a report about someone else's mail
		}
		ours = append(ours, m.UID)
		for _, rc := range dsn.recipients {
			if rc.action != "failed" {
				continue // delayed, delivered, relayed, expanded
			}
			out = append(out, Bounce{Rcpt: sentRecipient(s.To, rc), Status: rc.status,
				Diagnostic: rc.diagnostic, MessageID: s.ID, SentAt: s.At})
		}
	}
	return out, ours, nil
}

// sentRecipient returns which of to the report's recipient block is about:
// the Original-Recipient or Final-Recipient that matches one of them
// (case-insensitively), else the final recipient as reported.
func sentRecipient(to []string, rc dsnRecipient) string {
	for _, cand := range []string{rc.original, rc.final} {
		for _, t := range to {
			if cand != "" && strings.EqualFold(cand, t) {
				return t
			}
		}
	}
	if rc.final != "" {
		return rc.final
	}
	return rc.original
}

// bounceQuiet is how long after a message was sent a missing bounce is
// taken as its delivery: a recipient that bounced is well again once a
// message sent to it after the bounced one is this old without a bounce.
const bounceQuiet = 30 * time.Minute

// bounced records the bounces a retention session found, and clears the
// bounce problem of each recipient that got a later message which has not
// bounced within bounceQuiet. sent are the messages the session knew.
func (p *Publisher) bounced(bounces []Bounce, sent []SentID) {
	now := p.now()
	p.mu.Lock()
	fresh := make(map[string]bool)
	for _, b := range bounces {
		if !slices.Contains(p.opts.To, b.Rcpt) {
			p.log.Warn("a bounce report names a recipient not in publisher.to", "to", b.Rcpt,
				"status", b.Status, "message_id", b.MessageID)
			continue
		}
		if st, ok := p.rcpts[b.Rcpt]; ok && st.problem.Kind == ProblemBounced && !b.SentAt.After(st.bounceOf) {
			continue // an older report than the one already recorded
		}
		fresh[b.Rcpt] = true
		p.recipientBouncedLocked(b, now)
	}
	for addr, st := range p.rcpts {
		if st.problem.Kind != ProblemBounced || fresh[addr] {
			continue
		}
		for _, s := range sent {
			if s.At.After(st.bounceOf) && now.Sub(s.At) >= bounceQuiet && slices.Contains(s.To, addr) {
				delete(p.rcpts, addr)
				p.log.Info("no bounce for a later message; the recipient is taken as reachable again",
					"to", addr, "was", st.problem.String())
				break
			}
		}
	}
	p.mu.Unlock()
	p.changed()
}

// recipientBouncedLocked records bounce b at now. A bounced recipient is
// not sent extra copies: the next regular message goes to it as to the
// others. Called with p.mu held.
func (p *Publisher) recipientBouncedLocked(b Bounce, now time.Time) {
	if p.rcpts == nil {
		p.rcpts = make(map[string]*rcptState)
	}
	st, ok := p.rcpts[b.Rcpt]
	if !ok || st.problem.Kind != ProblemBounced {
		since := b.SentAt
		if ok {
			since = st.problem.Since
		}
		st = &rcptState{problem: RecipientProblem{Addr: b.Rcpt, Since: since}}
		p.rcpts[b.Rcpt] = st
	}
	st.problem.Kind, st.problem.Reply, st.problem.NextRetry = ProblemBounced, b.Reply(), time.Time{}
	st.bounceOf = b.SentAt
	p.log.Warn("a message bounced; the recipient did not get it", "to", b.Rcpt, "reply", b.Reply(),
		"message_id", b.MessageID, "sent_at", b.SentAt)
}
