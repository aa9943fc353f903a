// Package enrol makes and opens invitations: one file that carries
// everything a staff PC needs to become an ipsync client (the mail account's
// endpoints and user name, the mailbox, the client key, the fetch settings,
// and optionally the mailbox password and a CA certificate), encrypted with
// a passphrase.
//
// The encryption is age's passphrase (scrypt) recipient (filippo.io/age),
// ASCII-armoured so that the file survives being mailed or pasted. The
// plaintext is a JSON document whose kind and role are checked on opening,
// so a file made for another purpose or role is refused.
//
// Open tells apart the failures a user can act on: ErrWrongPassphrase,
// ErrDamaged (tampered or truncated), ErrNotInvitation and *RoleError. No
// error carries the passphrase or any secret of the bundle.
package enrol

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"ipsync/codec"
)

// Kind is the marker inside every bundle.
const Kind = "ipsync-invitation"

// Version is the bundle format this package writes and reads.
const Version = 1

// MaxSize bounds the file Open reads; real bundles are a few kilobytes.
const MaxSize = 1 << 20

// MaxWorkFactor is the largest scrypt work factor (log2 N) Open accepts:
// 19, 512 MiB, one more than the default Seal uses.
const MaxWorkFactor = 19

// The errors of Open that callers branch on.
var (
	// ErrWrongPassphrase: the passphrase does not open the file (or the
	// part of the file that wraps the key was altered).
	ErrWrongPassphrase = errors.New("the passphrase does not open this invitation")
	// ErrDamaged: the file was altered or cut short after it was made.
	ErrDamaged = errors.New("the invitation is damaged (changed or cut short)")
	// ErrNotInvitation: the file is not an ipsync invitation at all.
	ErrNotInvitation = errors.New("the file is not an ipsync invitation")
)

// RoleError is returned by Open for a bundle made for another role.
type RoleError struct {
	// Got is the bundle's role, Want the role asked for.
	Got, Want string
}

func (e *RoleError) Error() string {
	return fmt.Sprintf("the invitation is for the %s role, not the %s role", e.Got, e.Want)
}

// Bundle is the content of an invitation.
type Bundle struct {
	// Kind is always the constant Kind; Seal sets it.
	Kind string `json:"kind"`
	// Version is the format version; Seal sets it.
	Version int `json:"version"`
	// Role is the role the bundle sets up: "client".
	Role string `json:"role"`
	// Name is the server's name (config key name).
	Name string `json:"name"`
	// Mail is the account the client reads.
	Mail Mail `json:"mail"`
	// ClientKey is the codec client key text (ipsync-client-1:…).
	ClientKey string `json:"client_key"`
	// Subject is the subject of the server's messages (publisher.subject).
	Subject string `json:"subject,omitempty"`
	// Fetch holds the fetch settings.
	Fetch Fetch `json:"fetch"`
	// CAPEM is the PEM text of mail.ca_file, "" when the system roots are
	// used.
	CAPEM string `json:"ca_pem,omitempty"`
}

// Mail is the mail account of a bundle.
type Mail struct {
	Address  string `json:"address"`
	Username string `json:"username"`
	// Password is the mailbox password; "" when it does not travel.
	Password string `json:"password,omitempty"`
	// PasswordMode is how the client gets the password: "include" (it is
	// in Password), "ask" (joining asks the PC's user) or "omit" (it is set
	// up on the PC by other means).
	PasswordMode string   `json:"password_mode"`
	SMTP         Endpoint `json:"smtp"`
	IMAP         Endpoint `json:"imap"`
	Mailbox      string   `json:"mailbox"`
}

// Endpoint is a mail server.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	TLS  string `json:"tls"`
}

// Fetch holds the client's fetch settings as config writes them
// (durations in Go syntax, "" for the default).
type Fetch struct {
	Idle        string `json:"idle,omitempty"`
	IdleRefresh string `json:"idle_refresh,omitempty"`
	PollEvery   string `json:"poll_every,omitempty"`
	StaleAfter  string `json:"stale_after,omitempty"`
	ProbePort   int    `json:"probe_port,omitempty"`
}

// The password modes.
const (
	PasswordInclude = "include"
	PasswordAsk     = "ask"
	PasswordOmit    = "omit"
)

// Options tune Seal. The zero value is the default.
type Options struct {
	// WorkFactor is scrypt's log2(N); 0 = age's default (18, about a
	// second and 256 MiB). Tests use less.
	WorkFactor int
}

// Validate reports the first thing that makes b unusable.
func (b *Bundle) Validate() error {
	switch {
	case b.Role == "":
		return errors.New("bundle: no role")
	case b.Name == "":
		return errors.New("bundle: no name")
	case b.Mail.Address == "" || b.Mail.IMAP.Host == "" || b.Mail.IMAP.Port == 0:
		return errors.New("bundle: mail address or IMAP endpoint missing")
	}
	switch b.Mail.PasswordMode {
	case PasswordInclude:
		if b.Mail.Password == "" {
			return errors.New("bundle: password mode include but no password")
		}
	case PasswordAsk, PasswordOmit:
		if b.Mail.Password != "" {
			return fmt.Errorf("bundle: password mode %s but a password is included", b.Mail.PasswordMode)
		}
	default:
		return fmt.Errorf("bundle: password mode %q: use include, ask or omit", b.Mail.PasswordMode)
	}
	if b.Role == "client" {
		if _, err := codec.ParseClientKeys(b.ClientKey); err != nil {
			return fmt.Errorf("bundle: client key: %w", err)
		}
	}
	return nil
}

// Seal writes b to w encrypted with passphrase. It sets b's Kind and
// Version. It does not close w.
func Seal(w io.Writer, b Bundle, passphrase string, opts *Options) error {
	if passphrase == "" {
		return errors.New("seal invitation: empty passphrase")
	}
	b.Kind, b.Version = Kind, Version
	if err := b.Validate(); err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	plain, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	if opts != nil && opts.WorkFactor != 0 {
		r.SetWorkFactor(opts.WorkFactor)
	}
	aw := armor.NewWriter(w)
	ew, err := age.Encrypt(aw, r)
	if err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	if _, err := ew.Write(plain); err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	if err := ew.Close(); err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("seal invitation: %w", err)
	}
	return nil
}

// Open reads a bundle from r (at most MaxSize bytes), decrypts it with
// passphrase and checks that it is a valid invitation for role. Errors wrap
// ErrWrongPassphrase, ErrDamaged or ErrNotInvitation, or are a *RoleError.
func Open(r io.Reader, passphrase, role string) (Bundle, error) {
	var b Bundle
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return b, fmt.Errorf("read invitation: %w", err)
	}
	if len(data) > MaxSize {
		return b, fmt.Errorf("%w: it is larger than %d bytes", ErrNotInvitation, MaxSize)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	var src io.Reader
	switch {
	case bytes.HasPrefix(trimmed, []byte(armor.Header)):
		src = armor.NewReader(bytes.NewReader(data))
	case bytes.HasPrefix(trimmed, []byte("age-encryption.org/")):
		src = bytes.NewReader(data)
	case len(trimmed) > 0 && len(trimmed) < len(armor.Header) && strings.HasPrefix(armor.Header, string(trimmed)):
		return b, fmt.Errorf("%w: it ends inside its first line", ErrDamaged)
	default:
		return b, ErrNotInvitation
	}
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrWrongPassphrase, err)
	}
	// A file asking for more work than any invitation needs must not make
	// the PC spend gigabytes (age's own limit, 22, is 4 GiB).
	id.SetMaxWorkFactor(MaxWorkFactor)
	dr, err := age.Decrypt(src, id)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return b, ErrWrongPassphrase
		}
		return b, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	plain, err := io.ReadAll(dr)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || b.Kind != Kind {
		// Authenticated but not ours: made by age for something else.
		return Bundle{}, fmt.Errorf("%w: it opens, but holds no ipsync settings", ErrNotInvitation)
	}
	if b.Version != Version {
		return Bundle{}, fmt.Errorf("%w: format version %d; this ipsync reads version %d (update ipsync)", ErrNotInvitation, b.Version, Version)
	}
	if b.Role != role {
		return Bundle{}, &RoleError{Got: b.Role, Want: role}
	}
	if err := b.Validate(); err != nil {
		return Bundle{}, fmt.Errorf("%w: %v", ErrNotInvitation, err)
	}
	return b, nil
}

// NewPassphrase returns a random passphrase of 125 bits in groups of five
// letters and digits, easy to read aloud or type: "ABCDE-FGH23-…".
func NewPassphrase() string {
	t := rand.Text() // 26 base32 characters, 130 bits
	var groups []string
	for i := 0; i < 25; i += 5 {
		groups = append(groups, t[i:i+5])
	}
	return strings.Join(groups, "-")
}
