package oauth

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/zalando/go-keyring"
)

// ErrNoToken is returned by Store.Load when no refresh token is stored.
var ErrNoToken = errors.New("no refresh token stored")

// Store keeps one refresh token. Implementations must be safe for
// concurrent use by one process; the Source reloads the token before each
// refresh, so a sign-in by another process is picked up.
type Store interface {
	// Load returns the stored refresh token, or an error wrapping
	// ErrNoToken when there is none.
	Load() (string, error)
	// Save replaces the stored refresh token.
	Save(refreshToken string) error
	// Delete removes the stored token; deleting nothing is not an error.
	Delete() error
	// String says where the token is kept, for messages; never the token.
	String() string
}

// KeyringService is the service name ipsync's tokens are kept under in the
// OS keyring.
const KeyringService = "ipsync"

// KeyringStore keeps the refresh token in the OS keyring (Windows
// Credential Manager, macOS Keychain, the Secret Service on Linux) through
// github.com/zalando/go-keyring, under KeyringService and Account.
type KeyringStore struct {
	// Account tells this token from others of ipsync (for example the mail
	// address and the provider).
	Account string
}

var _ Store = KeyringStore{}

// Load implements Store.
func (k KeyringStore) Load() (string, error) {
	tok, err := keyring.Get(KeyringService, k.Account)
	if errors.Is(err, keyring.ErrNotFound) {
		return "", fmt.Errorf("read %s: %w", k, ErrNoToken)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", k, err)
	}
	return tok, nil
}

// Save implements Store.
func (k KeyringStore) Save(refreshToken string) error {
	if err := keyring.Set(KeyringService, k.Account, refreshToken); err != nil {
		return fmt.Errorf("write %s: %w", k, err)
	}
	return nil
}

// Delete implements Store.
func (k KeyringStore) Delete() error {
	if err := keyring.Delete(KeyringService, k.Account); err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("delete from %s: %w", k, err)
	}
	return nil
}

func (k KeyringStore) String() string {
	return fmt.Sprintf("the OS keyring (service %q, account %q)", KeyringService, k.Account)
}

// FileStore keeps the refresh token in a file that only its owner can read
// (mode 0600, in a directory created 0700), for machines without an OS
// keyring such as headless Linux servers.
type FileStore struct {
	// Path is the file.
	Path string
}

var _ Store = FileStore{}

// Load implements Store. On Unix it refuses a file that others can read.
func (f FileStore) Load() (string, error) {
	fi, err := os.Stat(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read token file %s: %w", f.Path, ErrNoToken)
	}
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o, so others can read the refresh token: run chmod 600 %s (and sign in again if others may have read it)", f.Path, fi.Mode().Perm(), f.Path)
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty: %w", f.Path, ErrNoToken)
	}
	return tok, nil
}

// Save implements Store. It writes a temporary file with mode 0600 next to
// Path and renames it over Path, so a crash leaves the old token or the new.
func (f FileStore) Save(refreshToken string) error {
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".*")
	if err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return fmt.Errorf("write token file: %w", err)
	}
	if _, err := tmp.WriteString(refreshToken + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}

// Delete implements Store.
func (f FileStore) Delete() error {
	if err := os.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete token file: %w", err)
	}
	return nil
}

func (f FileStore) String() string { return "the file " + f.Path + " (mode 0600)" }

// OpenStore returns the OS keyring store for account if this machine has a
// usable keyring, else the file store at file. The reason for a fallback is
// logged at info level and returned, so the caller can tell the user where
// the token goes and why ("" when the keyring is used). It never starts a
// D-Bus daemon: on Linux without a session bus the keyring is taken as
// absent.
func OpenStore(account, file string, log *slog.Logger) (store Store, fallbackReason string) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reason := keyringProblem(account)
	if reason == "" {
		return KeyringStore{Account: account}, ""
	}
	fs := FileStore{Path: file}
	log.Info("oauth: no OS keyring; keeping the refresh token in a file", "file", file, "reason", reason)
	return fs, reason
}

// keyringProblem returns why the keyring cannot be used, or "".
func keyringProblem(account string) string {
	if runtime.GOOS != "windows" && runtime.GOOS != "darwin" && !sessionBusAvailable() {
		// godbus would launch dbus-launch to find a bus: avoid that.
		return "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset), so no Secret Service keyring"
	}
	_, err := keyring.Get(KeyringService, account)
	if err == nil || errors.Is(err, keyring.ErrNotFound) {
		return ""
	}
	return "the OS keyring is not usable: " + err.Error()
}

func sessionBusAvailable() bool {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return true
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		if fi, err := os.Stat(filepath.Join(dir, "bus")); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return true
		}
	}
	return false
}
