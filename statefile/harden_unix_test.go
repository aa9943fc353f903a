//go:build unix

package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type doc struct {
	Seq uint64 `json:"seq"`
}

// wantUnsafe fails t unless err wraps ErrUnsafe and its message holds every
// one of want (the path, the mode or owner, the fix).
func wantUnsafe(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, ErrUnsafe) {
		t.Errorf("%s = %v, want ErrUnsafe", what, err)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s = %q, want it to mention %q", what, err, w)
		}
	}
}

// TestPlantedSymlinkRefused: links planted where the lock file or the state
// file go (the attacker's way to make ipsync create or read a file of their
// choosing) are refused, and the link target is neither created nor read.
func TestPlantedSymlinkRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	elsewhere := t.TempDir()
	path := filepath.Join(dir, "server-x.json")

	target := filepath.Join(elsewhere, "created-by-ipsync")
	if err := os.Symlink(target, path+".lock"); err != nil {
		t.Fatal(err)
	}
	if unlock, err := Lock(t.Context(), path); err == nil {
		unlock()
		t.Fatal("Lock() through a planted lock-file link succeeded")
	} else {
		wantUnsafe(t, "Lock(planted lock link)", err, path+".lock", "symbolic link", "rm "+path+".lock")
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the link target %s exists after Lock: %v", target, err)
	}
	if err := Check(path); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Check(planted lock link) = %v, want ErrUnsafe", err)
	}
	if err := SaveLocked(t.Context(), path, doc{Seq: 1}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("SaveLocked(planted lock link) = %v, want ErrUnsafe", err)
	}
	os.Remove(path + ".lock")

	forged := filepath.Join(elsewhere, "forged.json")
	if err := os.WriteFile(forged, []byte(`{"seq": 100000000000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(forged, path); err != nil {
		t.Fatal(err)
	}
	var d doc
	found, err := Load(path, &d)
	wantUnsafe(t, "Load(planted state link)", err, path, "symbolic link")
	if found || d.Seq != 0 {
		t.Errorf("Load(planted state link) trusted it: found %v, seq %d", found, d.Seq)
	}
	if err := Save(path, doc{Seq: 2}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Save(planted state link) = %v, want ErrUnsafe", err)
	}
}

// TestWritableStateDirRefused: a state directory other users can write (or
// a state file they can) is refused by every entry point, with the path,
// the mode and the chmod that fixes it.
func TestWritableStateDirRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "server-x.json")
	if err := Save(path, doc{Seq: 7}); err != nil {
		t.Fatalf("Save() = %v", err)
	}
	for _, mode := range []fs.FileMode{0o777, 0o1777, 0o770} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		var d doc
		_, err := Load(path, &d)
		wantUnsafe(t, "Load(dir "+mode.String()+")", err, dir, "chmod 700 "+dir, "written by other users")
		wantUnsafe(t, "Check(dir "+mode.String()+")", Check(path), dir, "chmod 700 "+dir)
		wantUnsafe(t, "Save(dir "+mode.String()+")", Save(path, doc{Seq: 8}), dir)
		if unlock, err := Lock(t.Context(), path); err == nil {
			unlock()
			t.Errorf("Lock(dir %s) succeeded", mode)
		} else {
			wantUnsafe(t, "Lock(dir "+mode.String()+")", err, dir)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var d doc
	if ok, err := Load(path, &d); err != nil || !ok || d.Seq != 7 {
		t.Fatalf("Load(dir 0755) = %v, %v, seq %d; want the saved state", ok, err, d.Seq)
	}

	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, &d)
	wantUnsafe(t, "Load(file 0666)", err, path, "-rw-rw-rw-", "chmod 600 "+path)
}

// TestForeignOwnerRefused: a state file or directory owned by another user
// is refused even with a safe mode. Creating one needs root.
func TestForeignOwnerRefused(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "client-x.json")
	if err := os.WriteFile(path, []byte(`{"seq": 100000000000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var d doc
	_, err := Load(path, &d)
	wantUnsafe(t, "Load(file of uid 65534)", err, path, "uid 65534", "chown 0 "+path)
	if d.Seq != 0 {
		t.Errorf("Load trusted another user's file: seq %d", d.Seq)
	}
	sub := filepath.Join(dir, "other")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sub, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, "Check(dir of uid 65534)", Check(filepath.Join(sub, "s.json")), sub, "uid 65534")
}

// TestStaleTempFilesRemoved: temporary files left by writes cut short (kill
// -9 between create and rename) are removed by the next Lock, and by Load
// when the lock is free, and only this state file's.
func TestStaleTempFilesRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "server-x.json")
	other := filepath.Join(dir, "client-x.json")
	plant := func(n int) []string {
		var names []string
		for range n {
			for _, p := range []string{path, other} {
				f, err := os.CreateTemp(dir, tempPrefix(p)+"*")
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
				if p == path {
					names = append(names, f.Name())
				}
			}
		}
		return names
	}
	left := func() (mine, theirs int) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			switch {
			case strings.HasPrefix(e.Name(), tempPrefix(path)):
				mine++
			case strings.HasPrefix(e.Name(), tempPrefix(other)):
				theirs++
			}
		}
		return mine, theirs
	}

	plant(8)
	unlock, err := Lock(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if mine, theirs := left(); mine != 0 || theirs != 8 {
		t.Errorf("after Lock: %d of this file's temporary files left (want 0), %d of the other's (want 8)", mine, theirs)
	}
	// While the lock is held, Load must not touch a write under way.
	plant(1)
	var d doc
	if _, err := Load(path, &d); err != nil {
		t.Fatal(err)
	}
	if mine, _ := left(); mine != 1 {
		t.Errorf("Load under a held lock removed a temporary file (left %d, want 1)", mine)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, &d); err != nil {
		t.Fatal(err)
	}
	if mine, _ := left(); mine != 0 {
		t.Errorf("Load with the lock free left %d temporary files, want 0", mine)
	}
}

// TestStateDirCreatedPrivate: a missing state directory (and its missing
// parents) is created with mode 0700, by Save and by Lock alike.
func TestStateDirCreatedPrivate(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	for _, create := range []func(string) error{
		func(p string) error { return Save(p, doc{Seq: 1}) },
		func(p string) error { return SaveLocked(t.Context(), p, doc{Seq: 1}) },
	} {
		dir := filepath.Join(base, "a", "state")
		if err := create(filepath.Join(dir, "s.json")); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, filepath.Dir(dir)} {
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("%s created with mode %v, want 0700", d, fi.Mode().Perm())
			}
		}
		os.RemoveAll(filepath.Join(base, "a"))
	}
}
