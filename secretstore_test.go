package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/zalando/go-keyring"
)

// TestSecretStoreUndoRestores: a failed `join --force` over a working
// set-up must leave that set-up working: undo puts back the secrets put
// replaced (keyring entries and files), removes only the ones it added, and
// a replaced file never shows the new secret under its old, looser mode.
func TestSecretStoreUndoRestores(t *testing.T) {
	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		old := filepath.Join(dir, "office.client.key")
		if err := os.WriteFile(old, []byte("old key\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		st := &secretStore{dir: dir, files: true, log: slog.New(slog.DiscardHandler)}
		if _, err := st.put("office client key", "office.client.key", "new key"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.put("office password", "office.password", "new password"); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(old); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("replaced secret file: %v, %v; want mode 0600", fi.Mode(), err)
		}
		st.undo()
		if b, err := os.ReadFile(old); err != nil || string(b) != "old key\n" {
			t.Errorf("after undo %s = %q, %v; want the old key back", old, b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "office.password")); !os.IsNotExist(err) {
			t.Errorf("after undo the added password file is still there (%v)", err)
		}
	})
	t.Run("keyring", func(t *testing.T) {
		keyring.MockInit()
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent") // keyringUsable
		if err := keyring.Set(keyringService, "office client key", "old key"); err != nil {
			t.Fatal(err)
		}
		st := &secretStore{dir: t.TempDir(), log: slog.New(slog.DiscardHandler)}
		if _, err := st.put("office client key", "office.client.key", "new key"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.put("office password", "office.password", "new password"); err != nil {
			t.Fatal(err)
		}
		st.undo()
		if v, err := keyring.Get(keyringService, "office client key"); err != nil || v != "old key" {
			t.Errorf("after undo the keyring entry = %q, %v; want the old key back", v, err)
		}
		if _, err := keyring.Get(keyringService, "office password"); err == nil {
			t.Errorf("after undo the added keyring entry is still there")
		}
	})
}
