// Package statefile reads and writes small JSON state files crash-safely.
//
// Write goes through a temporary file in the same directory, fsyncs it,
// renames it over the target and fsyncs the directory, so after a crash the
// file holds either the old or the new content, never a torn mix. A failed
// write (disk full, permissions) leaves the old file untouched.
//
// Lock serialises read-change-write cycles on one file between goroutines
// and processes (an OS advisory lock on a companion ".lock" file), so two
// processes sharing a state file do not lose each other's updates.
//
// The state is trusted only where no other user can change it: on Unix a
// state directory or file (or lock file) owned by another user, or writable
// by users other than its owner, is refused with [ErrUnsafe] and the command
// that fixes it; a missing directory is created with mode 0700. State and
// lock files are opened without following symbolic links (O_NOFOLLOW), so a
// link planted in their place is refused rather than followed. Temporary
// files left by a crash in the middle of a write are removed by the next
// Lock, and by Load when no one holds the lock.
package statefile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnsafe marks a state directory or file that others could change (see
// the package documentation); the error names it and the fix. Test with
// errors.Is.
var ErrUnsafe = errors.New("unsafe state location")

// symlinkErr is the error for a symbolic link found where a state or lock
// file should be.
func symlinkErr(name string) error {
	return fmt.Errorf("%s is a symbolic link; ipsync does not follow links for its state files; fix: remove it (rm %s): %w", name, name, ErrUnsafe)
}

// Check checks, without creating anything, that the state file path and its
// directory are safe to use (see the package documentation). Missing ones
// are fine: they are created safely when first written.
func Check(path string) error {
	if err := checkDir(filepath.Dir(path)); err != nil {
		return err
	}
	for _, name := range []string{path, path + ".lock"} {
		fi, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check state file: %w", err)
		}
		if err := checkFile(name, fi); err != nil {
			return err
		}
	}
	return nil
}

// checkDir refuses the directory dir if it is unsafe; a missing dir is fine.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	return checkOwner("state directory", dir, fi)
}

// checkFile refuses the state or lock file name, described by fi (from
// Lstat or from the open file), if it is a link, not a regular file, or
// unsafe.
func checkFile(name string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return symlinkErr(name)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("state file %s is not a regular file (%s); fix: remove it: %w", name, fi.Mode().Type(), ErrUnsafe)
	}
	return checkOwner("state file", name, fi)
}

// makeDir creates dir (mode 0700, parents too) if missing and checks it.
func makeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	return checkDir(dir)
}

// openChecked opens name without following a link and checks what it
// opened.
func openChecked(name string, flag int) (*os.File, error) {
	f, err := openNoFollow(name, flag, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkFile(name, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// tempPrefix is the name prefix of path's temporary files (os.CreateTemp
// adds a random suffix).
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// removeTemps removes the temporary files of path left by an interrupted
// write. The caller holds path's lock, so no write of path is under way.
func removeTemps(path string) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Load reads path and decodes its JSON into v. A missing file is not an
// error: Load returns (false, nil) and leaves v as it was. An unsafe file or
// directory (see the package documentation) is an error wrapping
// [ErrUnsafe]. When no one holds path's lock, Load also removes temporary
// files left by an interrupted write.
func Load(path string, v any) (bool, error) {
	if err := checkDir(filepath.Dir(path)); err != nil {
		return false, err
	}
	cleanIfFree(path)
	f, err := openChecked(path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode state file %s: %w", path, err)
	}
	return true, nil
}

// Save encodes v as indented JSON and writes it to path atomically, creating
// the directory (mode 0700) if needed. The file gets mode 0600.
func Save(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return WriteFile(path, append(data, '\n'))
}

// SaveLocked is Save under path's Lock, so that it excludes, and is excluded
// by, every other locked update of path, here and in other processes. It
// waits for the lock until ctx ends.
func SaveLocked(ctx context.Context, path string, v any) (err error) {
	unlock, err := Lock(ctx, path)
	if err != nil {
		return err
	}
	defer func() {
		if uerr := unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	return Save(path, v)
}

// WriteFile writes data to path atomically (temp file, fsync, rename,
// directory fsync), mode 0600. It refuses an unsafe directory, and a link or
// unsafe file at path.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := makeDir(dir); err != nil {
		return err
	}
	if err := Check(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, tempPrefix(path)+"*")
	if err != nil {
		return fmt.Errorf("create temporary state file: %w", err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("set state file mode: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close state file: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		// Best effort: not every platform can sync a directory.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
