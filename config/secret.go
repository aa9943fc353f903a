package config

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/zalando/go-keyring"
	"gopkg.in/yaml.v3"
)

// Secret is a reference to a secret value: "env:NAME", "file:PATH",
// "keyring:SERVICE/USER", or a literal. Its String method never shows a
// literal's value, so a Secret is safe to log.
type Secret struct {
	ref  string
	line int
}

// NewSecret returns a Secret for a reference or literal, as if read from a file.
func NewSecret(ref string) Secret { return Secret{ref: ref} }

// IsSet reports whether a value or reference was given.
func (s Secret) IsSet() bool { return strings.TrimSpace(s.ref) != "" }

// Kind is "env", "file", "keyring", "literal", or "" when unset.
func (s Secret) Kind() string {
	switch {
	case !s.IsSet():
		return ""
	case strings.HasPrefix(s.ref, "env:"):
		return "env"
	case strings.HasPrefix(s.ref, "file:"):
		return "file"
	case strings.HasPrefix(s.ref, "keyring:"):
		return "keyring"
	}
	return "literal"
}

// EnvName is the variable name of an env:NAME reference, else "".
func (s Secret) EnvName() string {
	if s.Kind() != "env" {
		return ""
	}
	return strings.TrimPrefix(s.ref, "env:")
}

// SecretEnvNames returns the names of the environment variables that hold
// this config's secrets (env:NAME references), for removal from the
// environment of commands ipsync runs.
func (c *Config) SecretEnvNames() []string {
	var names []string
	for _, s := range []Secret{c.Mail.Password, c.Mail.OAuth2.ClientSecret, c.Codec.Key} {
		if n := s.EnvName(); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// String describes where the secret comes from without revealing it.
func (s Secret) String() string {
	switch s.Kind() {
	case "":
		return "(not set)"
	case "literal":
		return "(literal, redacted)"
	}
	return s.ref
}

// UnmarshalYAML reads a scalar.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a secret reference like env:NAME, file:PATH or keyring:SERVICE/USER", n.Line)}}
	}
	s.ref, s.line = n.Value, n.Line
	return nil
}

// MarshalYAML writes the reference (a literal is redacted).
func (s Secret) MarshalYAML() (any, error) {
	if s.Kind() == "literal" {
		return "REDACTED", nil
	}
	return s.ref, nil
}

// ErrSecretUnavailable wraps every failure to resolve a secret.
var ErrSecretUnavailable = errors.New("secret unavailable")

// validateRef checks the form of a reference without reading it.
func (s Secret) validateRef() string {
	switch s.Kind() {
	case "env":
		if strings.TrimPrefix(s.ref, "env:") == "" {
			return "env: needs a variable name, e.g. env:IPSYNC_PASSWORD"
		}
	case "file":
		if strings.TrimPrefix(s.ref, "file:") == "" {
			return "file: needs a path, e.g. file:~/.config/ipsync/password"
		}
	case "keyring":
		svc, user, ok := strings.Cut(strings.TrimPrefix(s.ref, "keyring:"), "/")
		if !ok || svc == "" || user == "" {
			return "keyring: needs SERVICE/USER, e.g. keyring:ipsync/me@example.com"
		}
	}
	return ""
}

// Resolve returns the secret's value. key names the setting in error
// messages; c resolves relative file paths. Values read from files have
// surrounding whitespace trimmed. The value is never part of an error.
func (c *Config) Resolve(key string, s Secret) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%s: %w: %s", key, ErrSecretUnavailable, fmt.Sprintf(format, args...))
	}
	switch s.Kind() {
	case "":
		return fail("not set")
	case "env":
		name := strings.TrimPrefix(s.ref, "env:")
		v, ok := os.LookupEnv(name)
		if !ok || strings.TrimSpace(v) == "" {
			return fail("environment variable %s is not set or empty; export it before starting ipsync", name)
		}
		return strings.TrimSpace(v), nil
	case "file":
		path := c.resolvePath(strings.TrimPrefix(s.ref, "file:"))
		data, err := os.ReadFile(path)
		if err != nil {
			return fail("cannot read %s (%v); create it with mode 0600", path, errors.Unwrap(err))
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			return fail("file %s is empty", path)
		}
		return v, nil
	case "keyring":
		svc, user, _ := strings.Cut(strings.TrimPrefix(s.ref, "keyring:"), "/")
		v, err := keyring.Get(svc, user)
		if err != nil {
			return fail("OS keyring has no usable entry for service %q user %q (%v); store it with your keyring tool, e.g. secret-tool store --label=ipsync service %s username %s", svc, user, err, svc, user)
		}
		return strings.TrimSpace(v), nil
	}
	return strings.TrimSpace(s.ref), nil
}

func (c *Config) literalSecretWarnings() []string {
	var w []string
	for _, s := range []struct {
		key string
		sec Secret
	}{{"mail.password", c.Mail.Password}, {"mail.oauth2.client_secret", c.Mail.OAuth2.ClientSecret}, {"codec.key", c.Codec.Key}} {
		if s.sec.Kind() != "literal" {
			continue
		}
		at := ""
		if s.sec.line > 0 {
			at = fmt.Sprintf("line %d: ", s.sec.line)
		}
		if c.othersCanRead() {
			w = append(w, fmt.Sprintf("%s: %s%s is written in clear in a file other users can read (mode %04o): run chmod 600 %s, and better, move it out of the file (env:NAME, file:PATH or keyring:SERVICE/USER)", c.Path, at, s.key, c.fileMode, shellQuote(c.Path)))
			continue
		}
		w = append(w, fmt.Sprintf("%s: %s%s is written in the file in clear; prefer env:NAME, file:PATH or keyring:SERVICE/USER", c.Path, at, s.key))
	}
	return w
}

// othersCanRead reports whether the config file's mode lets users other
// than its owner read it. On Windows file modes say nothing about access,
// and it is false.
func (c *Config) othersCanRead() bool {
	return runtime.GOOS != "windows" && c.fileMode&0o044 != 0
}

// shellQuote returns p as one shell word: as is when it holds only
// characters no shell treats specially, else in single quotes.
func shellQuote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@~%") == "" && !strings.HasPrefix(p, "~") {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// secretFileWarnings flags file: secrets that other users can read. (On
// Windows, file modes say nothing about access and nothing is checked.)
func (c *Config) secretFileWarnings() []string {
	if runtime.GOOS == "windows" {
		return nil
	}
	var w []string
	for _, s := range []struct {
		key string
		sec Secret
	}{{"mail.password", c.Mail.Password}, {"mail.oauth2.client_secret", c.Mail.OAuth2.ClientSecret}, {"codec.key", c.Codec.Key}} {
		if s.sec.Kind() != "file" {
			continue
		}
		path := c.resolvePath(strings.TrimPrefix(s.sec.ref, "file:"))
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			w = append(w, fmt.Sprintf("%s: %s: %s can be read by other users (mode %04o); run chmod 600 %s", c.Path, s.key, path, fi.Mode().Perm(), shellQuote(path)))
		}
	}
	return w
}
