package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/zalando/go-keyring"

	"ipsync/config"
	"ipsync/statefile"
)

// keyringService is the service name of ipsync's keyring entries.
const keyringService = "ipsync"

// secretStore puts the secrets that join and init set up in the OS keyring
// (service "ipsync"), or, when there is none or files are asked for, in
// files of mode 0600 in dir. It remembers what it stored, so that a later
// failure can take it back (undo).
type secretStore struct {
	dir string
	// files: never use the keyring.
	files bool
	log   *slog.Logger

	decided    bool // the first put chose keyring or files
	useKeyring bool
	// undos put back what each put replaced (join --force over an
	// existing set-up) or remove what it added, newest first.
	undos []func()
}

// keyringUsable says whether to try the keyring at all. On Linux and the
// BSDs go-keyring talks to the Secret Service over the session bus; with
// no session bus address, godbus would start a stray dbus-launch.
func keyringUsable() bool {
	switch runtime.GOOS {
	case "windows", "darwin":
		return true
	}
	return os.Getenv("DBUS_SESSION_BUS_ADDRESS") != ""
}

// put stores value and returns its reference: keyring:ipsync/USER, or
// file:FILE (relative to dir, where the config is).
func (s *secretStore) put(user, file, value string) (config.Secret, error) {
	if !s.decided {
		s.decided = true
		if !s.files && keyringUsable() {
			undo, err := setKeyring(user, value)
			if err == nil {
				s.useKeyring = true
				s.undos = append(s.undos, undo)
				return s.ref(user, file), nil
			}
			s.log.Info("the OS keyring cannot be used: storing secrets in files", "err", err)
		}
	}
	if s.useKeyring {
		undo, err := setKeyring(user, value)
		if err != nil {
			return config.Secret{}, usageErr("store a secret in the OS keyring (service %s, user %s): %v", keyringService, user, err)
		}
		s.undos = append(s.undos, undo)
		return s.ref(user, file), nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return config.Secret{}, usageErr("create %s: %v", s.dir, err)
	}
	if err := s.writeFile(filepath.Join(s.dir, file), []byte(value+"\n")); err != nil {
		return config.Secret{}, usageErr("store a secret: %v", err)
	}
	return s.ref(user, file), nil
}

// writeFile writes data to p atomically, mode 0600 from the first byte (a
// file that was there, and its mode, is replaced, never written through),
// and remembers how to undo it.
func (s *secretStore) writeFile(p string, data []byte) error {
	old, readErr := os.ReadFile(p)
	if err := statefile.WriteFile(p, data); err != nil {
		return err
	}
	if readErr == nil {
		s.undos = append(s.undos, func() { _ = statefile.WriteFile(p, old) })
	} else {
		s.undos = append(s.undos, func() { _ = os.Remove(p) })
	}
	return nil
}

// setKeyring sets the keyring entry of user and returns how to put back
// what was there before (or to delete it when nothing was).
func setKeyring(user, value string) (undo func(), err error) {
	old, getErr := keyring.Get(keyringService, user)
	if err := keyring.Set(keyringService, user, value); err != nil {
		return nil, err
	}
	if getErr == nil {
		return func() { _ = keyring.Set(keyringService, user, old) }, nil
	}
	return func() { _ = keyring.Delete(keyringService, user) }, nil
}

// ref is the reference put would return, without storing anything.
func (s *secretStore) ref(user, file string) config.Secret {
	if s.useKeyring || (!s.decided && !s.files && keyringUsable()) {
		return config.NewSecret("keyring:" + keyringService + "/" + user)
	}
	return config.NewSecret("file:" + file)
}

// where says where the secrets went, for people.
func (s *secretStore) where() string {
	if s.useKeyring {
		return "the OS keyring, service " + keyringService
	}
	return "files of mode 0600 in " + s.dir
}

// undo takes back what put stored: entries and files that were there
// before get their old value again (a failed `join --force` leaves the old
// set-up working), new ones are removed.
func (s *secretStore) undo() {
	for i := len(s.undos) - 1; i >= 0; i-- {
		s.undos[i]()
	}
	s.undos = nil
}
