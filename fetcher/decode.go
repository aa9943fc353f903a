package fetcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"ipsync/codec"
)

// errNoText: the mail has no text/plain part (HTML-only mail, attachments).
var errNoText = errors.New("mail has no text/plain part")

// maxParts bounds how many MIME parts decodeMail looks at.
const maxParts = 32

// mailText is what the fetcher needs from one mail.
type mailText struct {
	Text string    // the first text/plain part, transfer encoding removed
	Date time.Time // the Date header; zero if missing or unparsable
}

// decodeMail parses a raw RFC 5322 message and returns its first text/plain
// part with the transfer encoding (quoted-printable, base64) removed. A
// message without Content-Type is text/plain. It never panics on any input.
func decodeMail(raw []byte) (mailText, error) {
	var out mailText
	e, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: int64(len(raw)) + 1})
	if err != nil && !message.IsUnknownCharset(err) {
		return out, fmt.Errorf("parse mail: %w", err)
	}
	h := mail.Header{Header: e.Header}
	if d, derr := h.Date(); derr == nil {
		out.Date = d
	}
	parts := 0
	found := false
	walkErr := e.Walk(func(_ []int, part *message.Entity, perr error) error {
		parts++
		if parts > maxParts {
			return errors.New("too many MIME parts")
		}
		if found || (perr != nil && !message.IsUnknownCharset(perr)) {
			return nil
		}
		mt, _, cerr := part.Header.ContentType()
		if part.Header.Get("Content-Type") == "" {
			mt, cerr = "text/plain", nil
		}
		if cerr != nil || mt != "text/plain" {
			return nil
		}
		if disp, _, _ := part.Header.ContentDisposition(); disp == "attachment" {
			return nil
		}
		body, rerr := io.ReadAll(io.LimitReader(part.Body, int64(len(raw))+1))
		if rerr != nil {
			return fmt.Errorf("read text part: %w", rerr)
		}
		out.Text = string(body)
		found = true
		return nil
	})
	if !found {
		if walkErr != nil {
			return out, fmt.Errorf("parse mail: %w", walkErr)
		}
		return out, errNoText
	}
	return out, nil
}

// defaultDecoder builds the Decoder for o.Format from o.Keys or o.Legacy.
func defaultDecoder(o Options) Decoder {
	if o.Format == codec.FormatLegacy {
		legacy, name := o.Legacy, o.Name
		return func(text string) (codec.Payload, error) {
			text = strings.TrimSpace(text)
			addr, err := legacy.Decode(text)
			if err != nil {
				// The encoded address may sit among other words (a greeting,
				// a signature): take the first field that decodes.
				for _, f := range strings.Fields(text) {
					if a, ferr := legacy.Decode(f); ferr == nil {
						addr, err = a, nil
						break
					}
				}
			}
			if err != nil {
				return codec.Payload{}, err
			}
			return codec.Payload{Name: name, IPv4: addr}, nil
		}
	}
	keys := append([]codec.ClientKey(nil), o.Keys...)
	return func(text string) (codec.Payload, error) {
		return codec.Open(text, keys...)
	}
}
