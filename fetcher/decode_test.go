package fetcher

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestDecodeMail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr error
	}{
		{"plain", "Subject: x\r\n\r\nhello\r\n", "hello\r\n", nil},
		{"qp", "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nab=\r\ncd=3D\r\n", "abcd=\r\n", nil},
		{"base64", "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n", "hello", nil},
		{"html only", "Content-Type: text/html\r\n\r\n<b>hi</b>", "", errNoText},
		{"attachment only", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nx\r\n--b--\r\n", "", errNoText},
		{"multipart picks plain", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>h</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b--\r\n", "plain", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeMail([]byte(tt.raw))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("decodeMail(%s) error = %v, want %v", tt.name, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Text != tt.want {
				t.Errorf("decodeMail(%s) = %q, %v; want %q", tt.name, got.Text, err, tt.want)
			}
		})
	}
}

func TestClassifyLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		err   error
		bye   string
		limit bool
	}{
		{"LIMIT code", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many simultaneous connections"}, "", true},
		{"BYE at greeting", fmt.Errorf("connect: %w", &imap.Error{Type: imap.StatusResponseTypeBye, Text: "bye"}), "", true},
		{"dovecot text", &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"}, "", true},
		{"BYE on LOGIN", fmt.Errorf("log in: %w", io.ErrUnexpectedEOF), "Too many simultaneous connections", true},
		{"unavailable", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "try later"}, "", true},
		{"wrong password", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Invalid credentials"}, "", false},
		{"network", errors.New("connection refused"), "", false},
		{"locked after bad passwords", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "Too many login failures, try again later"}, "", false},
		{"expired", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeExpired, Text: "password expired, try again later"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := errors.Is(classify(tt.err, tt.bye), errLimit); got != tt.limit {
				t.Errorf("classify(%v, %q) is limit = %v, want %v", tt.err, tt.bye, got, tt.limit)
			}
		})
	}
}

func TestByeWatcher(t *testing.T) {
	t.Parallel()
	var w byeWatcher
	w.Write([]byte("T1 LOGIN \"u\" \"secret\"\r\n"))
	w.Write([]byte("* OK hi\r\n* BYE [LIMIT] Too many\r\n"))
	if got := w.Text(); got != "[LIMIT] Too many" {
		t.Errorf("byeWatcher.Text() = %q, want %q", got, "[LIMIT] Too many")
	}
	if strings.Contains(w.Text(), "secret") {
		t.Error("byeWatcher kept the password")
	}
}

func FuzzDecodeMail(f *testing.F) {
	seeds := []string{
		"Subject: x\r\n\r\nhello",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=3D=\r\n",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--\r\n",
		"Content-Type: text/plain; charset=x-unknown\r\n\r\nabc",
		"Content-Type: multipart/alternative\r\n\r\nno boundary",
		"Date: not a date\r\n\r\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		mt, err := decodeMail(raw)
		if err == nil && len(mt.Text) > len(raw) {
			t.Errorf("decoded text of %d bytes from %d bytes of mail", len(mt.Text), len(raw))
		}
	})
}
