package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/zalando/go-keyring"

	"ipsync/config"
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
	keys       []string // keyring users stored
	paths      []string // files stored
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
			err := keyring.Set(keyringService, user, value)
			if err == nil {
				s.useKeyring = true
				s.keys = append(s.keys, user)
				return s.ref(user, file), nil
			}
			s.log.Info("the OS keyring cannot be used: storing secrets in files", "err", err)
		}
	}
	if s.useKeyring {
		if err := keyring.Set(keyringService, user, value); err != nil {
			return config.Secret{}, usageErr("store a secret in the OS keyring (service %s, user %s): %v", keyringService, user, err)
		}
		s.keys = append(s.keys, user)
		return s.ref(user, file), nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return config.Secret{}, usageErr("create %s: %v", s.dir, err)
	}
	p := filepath.Join(s.dir, file)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		return config.Secret{}, usageErr("store a secret: %v", err)
	}
	s.paths = append(s.paths, p)
	if err := os.Chmod(p, 0o600); err != nil { // a file that was there keeps its mode
		return config.Secret{}, usageErr("store a secret: %v", err)
	}
	return s.ref(user, file), nil
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

// undo removes what put stored.
func (s *secretStore) undo() {
	for _, u := range s.keys {
		_ = keyring.Delete(keyringService, u)
	}
	for _, p := range s.paths {
		_ = os.Remove(p)
	}
	s.keys, s.paths = nil, nil
}
