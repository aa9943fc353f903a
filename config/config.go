// Package config loads, checks and explains ipsync's YAML configuration.
//
// Load reads a file strictly: an unknown key is an error naming the file, the
// line and the key (with a suggestion when it looks like a typo), so a typo
// never silently falls back to a default. After decoding, defaults are filled
// in and every field is validated; each problem becomes one Problem naming the
// key, the bad value and what to do. The defaults of the roles' settings and
// the rules of the settings another package reads (codec.legacy.*,
// publisher.ipv6_suffix) are that package's own, so a file that config
// accepts is one the roles accept.
//
// Secrets (mail.password, mail.oauth2.client_secret, codec.key) are references — env:NAME, file:PATH,
// keyring:SERVICE/USER — or literals, which work but draw a warning. They are
// resolved only when needed, by Secret.Resolve, and never printed.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"ipsync/fetcher"
	"ipsync/publisher"
	"ipsync/publisher/discover"
)

// Role is the part a machine plays.
type Role string

// The roles.
const (
	RoleServer Role = "server"
	RoleClient Role = "client"
)

// Config is the whole file. Field comments give the YAML key; the
// documentation of every key is config.example.yaml.
type Config struct {
	Role      Role      `yaml:"role"`
	Name      string    `yaml:"name"`
	StateDir  string    `yaml:"state_dir"`
	Mail      Mail      `yaml:"mail"`
	Codec     Codec     `yaml:"codec"`
	Publisher Publisher `yaml:"publisher"`
	Fetcher   Fetcher   `yaml:"fetcher"`
	Notify    Notify    `yaml:"notify"`

	// Path is the file the configuration came from ("" when built in code).
	Path string `yaml:"-"`
	// Warnings are non-fatal remarks found while loading (e.g. a literal
	// secret). main logs them.
	Warnings []string `yaml:"-"`

	keyLines map[string]int // dotted key → line in Path
	fileMode fs.FileMode    // permission bits of Path; 0 when not known
}

// KeyLine returns the line of the dotted key ("publisher.sources") in the
// file, or 0 when it is not written there.
func (c *Config) KeyLine(key string) int { return c.keyLines[key] }

// Mail is the account both roles use.
type Mail struct {
	Address  string `yaml:"address"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// Auth is "password" (the default) or "oauth2".
	Auth   string `yaml:"auth"`
	OAuth2 OAuth2 `yaml:"oauth2"`
	CAFile string `yaml:"ca_file"`
	SMTP   Server `yaml:"smtp"`
	IMAP   IMAP   `yaml:"imap"`
}

// Server is an SMTP endpoint.
type Server struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	TLS  string `yaml:"tls"`
	// HELO is the name given in EHLO; "" means "localhost" (never the
	// machine's host name).
	HELO string `yaml:"helo"`
}

// IMAP is an IMAP endpoint and the folder ipsync reads.
type IMAP struct {
	Host    string `yaml:"host"`
	Port    int    `yaml:"port"`
	TLS     string `yaml:"tls"`
	Mailbox string `yaml:"mailbox"`
}

// Codec chooses the message format and its keys.
type Codec struct {
	Format string `yaml:"format"`
	Key    Secret `yaml:"key"`
	Legacy Legacy `yaml:"legacy"`
}

// Legacy holds the legacy format's shared parameters.
type Legacy struct {
	// Factor is a pointer so that "not set" differs from 0 (which is invalid).
	Factor   *float64 `yaml:"factor"`
	Alphabet string   `yaml:"alphabet"`
	Padding  string   `yaml:"padding"`
}

// Publisher is the server role's settings.
type Publisher struct {
	To             []string `yaml:"to"`
	Subject        string   `yaml:"subject"`
	CheckEvery     Duration `yaml:"check_every"`
	HeartbeatEvery Duration `yaml:"heartbeat_every"`
	Sources        []string `yaml:"sources"`
	Agree          int      `yaml:"agree"`
	IPv4           string   `yaml:"ipv4"`
	IPv6           string   `yaml:"ipv6"`
	IPv6Suffix     string   `yaml:"ipv6_suffix"`
	// KeepMessages is a pointer so that an explicit 0 (retention off)
	// differs from "not set" (default 48).
	KeepMessages *int `yaml:"keep_messages"`
}

// Fetcher is the client role's settings.
type Fetcher struct {
	Idle        string   `yaml:"idle"`
	IdleRefresh Duration `yaml:"idle_refresh"`
	PollEvery   Duration `yaml:"poll_every"`
	StaleAfter  Duration `yaml:"stale_after"`
	OnChange    []string `yaml:"on_change"`
	Probe       Probe    `yaml:"probe"`
}

// Probe is the optional reachability check of the server's address.
type Probe struct {
	Port int `yaml:"port"`
}

// Notify controls desktop notifications.
type Notify struct {
	// Enabled is a pointer so that an explicit false differs from unset.
	Enabled *bool `yaml:"enabled"`
}

// DefaultPath returns os.UserConfigDir()/ipsync/config.yaml.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user config directory (use --config FILE): %w", err)
	}
	return filepath.Join(dir, "ipsync", "config.yaml"), nil
}

// ApplyDefaults fills every unset field with its default. It is idempotent.
// The defaults of the roles' settings are the packages' own (e.g.
// publisher.DefaultCheckEvery), so a file that leaves a key out behaves as
// the package does with a zero option.
func (c *Config) ApplyDefaults() {
	c.applyOAuth2Defaults()
	if c.Mail.Username == "" {
		c.Mail.Username = c.Mail.Address
	}
	if c.Mail.SMTP.TLS == "" {
		c.Mail.SMTP.TLS = "implicit"
	}
	if c.Mail.SMTP.Port == 0 {
		c.Mail.SMTP.Port = map[string]int{"implicit": 465, "starttls": 587, "none": 25}[c.Mail.SMTP.TLS]
	}
	if c.Mail.IMAP.TLS == "" {
		c.Mail.IMAP.TLS = "implicit"
	}
	if c.Mail.IMAP.Port == 0 {
		c.Mail.IMAP.Port = map[string]int{"implicit": 993, "starttls": 143, "none": 143}[c.Mail.IMAP.TLS]
	}
	if c.Mail.IMAP.Mailbox == "" {
		c.Mail.IMAP.Mailbox = fetcher.DefaultMailbox
	}
	if c.Codec.Format == "" {
		c.Codec.Format = "sealed"
	}
	p := &c.Publisher
	if len(p.To) == 0 && c.Mail.Address != "" {
		p.To = []string{c.Mail.Address}
	}
	if p.Subject == "" && c.Name != "" {
		p.Subject = "ipsync " + c.Name
	}
	if p.CheckEvery == 0 {
		p.CheckEvery = Duration(publisher.DefaultCheckEvery)
	}
	if p.HeartbeatEvery == 0 {
		p.HeartbeatEvery = Duration(publisher.DefaultHeartbeatEvery)
	}
	if p.Agree == 0 {
		p.Agree = discover.DefaultAgree
	}
	if p.IPv4 == "" {
		p.IPv4 = "auto"
	}
	if p.IPv6 == "" {
		p.IPv6 = "auto"
	}
	if p.KeepMessages == nil {
		n := publisher.DefaultKeepMessages
		p.KeepMessages = &n
	}
	f := &c.Fetcher
	if f.Idle == "" {
		f.Idle = "auto"
	}
	if f.IdleRefresh == 0 {
		f.IdleRefresh = Duration(fetcher.DefaultIdleRefresh)
	}
	if f.PollEvery == 0 {
		f.PollEvery = Duration(fetcher.DefaultPollEvery)
	}
	if c.Notify.Enabled == nil {
		t := true
		c.Notify.Enabled = &t
	}
}

// StatePath returns the path of a state file named file, under state_dir or
// the default <user config dir>/ipsync/state.
func (c *Config) StatePath(file string) (string, error) {
	dir := c.StateDir
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the user config directory (set state_dir): %w", err)
		}
		dir = filepath.Join(base, "ipsync", "state")
	} else {
		dir = c.resolvePath(dir)
	}
	return filepath.Join(dir, file), nil
}

// resolvePath expands a leading ~ and makes a relative path relative to the
// config file's directory.
func (c *Config) resolvePath(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	if !filepath.IsAbs(p) && c.Path != "" {
		p = filepath.Join(filepath.Dir(c.Path), p)
	}
	return p
}

// CAFile returns mail.ca_file resolved against the config file's directory,
// or "" when unset.
func (c *Config) CAFile() string {
	if c.Mail.CAFile == "" {
		return ""
	}
	return c.resolvePath(c.Mail.CAFile)
}

// NotifyEnabled reports notify.enabled with its default (true).
func (c *Config) NotifyEnabled() bool {
	return c.Notify.Enabled == nil || *c.Notify.Enabled
}

// Duration is a time.Duration written as "5m", "1h30m" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String writes d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as "5m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML reads a Go duration such as "90s", "5m" or "1h30m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	fail := func(msg string) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
	}
	if n.Kind != yaml.ScalarNode {
		return fail("expected a duration like 90s, 5m or 1h30m")
	}
	s := strings.TrimSpace(n.Value)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fail(fmt.Sprintf("%q is not a duration: write it like 90s, 5m or 1h30m", s))
	}
	if v < 0 {
		return fail(fmt.Sprintf("%q is negative", s))
	}
	*d = Duration(v)
	return nil
}

// errNoConfig is wrapped by Load when the file does not exist.
var errNoConfig = errors.New("config file not found")

// IsNotFound reports whether err says the config file does not exist.
func IsNotFound(err error) bool { return errors.Is(err, errNoConfig) }
