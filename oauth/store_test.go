package oauth_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"ipsync/oauth"
)

func TestFileStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ipsync")
	fs := oauth.FileStore{Path: filepath.Join(dir, "oauth-token")}
	if _, err := fs.Load(); !errors.Is(err, oauth.ErrNoToken) {
		t.Fatalf("Load() of a missing file = %v, want ErrNoToken", err)
	}
	if err := fs.Save("rt-1"); err != nil {
		t.Fatalf("Save() = %v", err)
	}
	if err := fs.Save("rt-2"); err != nil {
		t.Fatalf("Save() again = %v", err)
	}
	if got, err := fs.Load(); got != "rt-2" || err != nil {
		t.Fatalf("Load() = %q, %v; want rt-2", got, err)
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{fs.Path: 0o600, dir: 0o700} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("mode of %s = %04o, want %04o", path, got, want)
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary files left)", len(entries))
	}
	if err := fs.Delete(); err != nil {
		t.Fatalf("Delete() = %v", err)
	}
	if err := fs.Delete(); err != nil {
		t.Fatalf("Delete() of nothing = %v, want nil", err)
	}
	if _, err := fs.Load(); !errors.Is(err, oauth.ErrNoToken) {
		t.Fatalf("Load() after Delete = %v, want ErrNoToken", err)
	}
}

func TestFileStoreRefusesReadableFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not apply on Windows")
	}
	t.Parallel()
	fs := oauth.FileStore{Path: filepath.Join(t.TempDir(), "token")}
	if err := os.WriteFile(fs.Path, []byte("rt-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := fs.Load()
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+fs.Path) || strings.Contains(err.Error(), "rt-secret") {
		t.Fatalf("Load() of a 0644 file = %v, want a chmod hint and no token", err)
	}
}

// The keyring tests share go-keyring's global mock: not parallel.

func TestKeyringStore(t *testing.T) {
	keyring.MockInit()
	ks := oauth.KeyringStore{Account: "ipsync@example.test microsoft"}
	if _, err := ks.Load(); !errors.Is(err, oauth.ErrNoToken) {
		t.Fatalf("Load() of nothing = %v, want ErrNoToken", err)
	}
	if err := ks.Save("rt"); err != nil {
		t.Fatal(err)
	}
	if got, err := ks.Load(); got != "rt" || err != nil {
		t.Fatalf("Load() = %q, %v; want rt", got, err)
	}
	if err := ks.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := ks.Delete(); err != nil {
		t.Fatalf("Delete() of nothing = %v, want nil", err)
	}
	if !strings.Contains(ks.String(), "keyring") || !strings.Contains(ks.String(), ks.Account) {
		t.Errorf("String() = %q, want it to name the keyring and the account", ks.String())
	}
}

func TestOpenStore(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	t.Run("keyring", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent") // the mock answers instead
		keyring.MockInit()
		store, reason := oauth.OpenStore("acct", file, nil)
		if _, ok := store.(oauth.KeyringStore); !ok || reason != "" {
			t.Errorf("OpenStore() = %v, %q; want the keyring store", store, reason)
		}
	})
	t.Run("keyring-broken", func(t *testing.T) {
		t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
		keyring.MockInitWithError(errors.New("the Secret Service is locked"))
		logs := &logBuffer{}
		store, reason := oauth.OpenStore("acct", file, logs.logger())
		if fs, ok := store.(oauth.FileStore); !ok || fs.Path != file || !strings.Contains(reason, "locked") {
			t.Errorf("OpenStore() = %v, %q; want the file store and the keyring's error", store, reason)
		}
		if !strings.Contains(logs.String(), file) {
			t.Errorf("log = %q, want it to say where the token goes", logs.String())
		}
	})
	if runtime.GOOS == "linux" {
		t.Run("no-session-bus", func(t *testing.T) {
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
			t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
			keyring.MockInit() // would answer; must not be asked
			store, reason := oauth.OpenStore("acct", file, nil)
			if _, ok := store.(oauth.FileStore); !ok || !strings.Contains(reason, "DBUS_SESSION_BUS_ADDRESS") {
				t.Errorf("OpenStore() = %v, %q; want the file store because there is no session bus", store, reason)
			}
		})
	}
}
