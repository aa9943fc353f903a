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
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads path and decodes its JSON into v. A missing file is not an
// error: Load returns (false, nil) and leaves v as it was.
func Load(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
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

// WriteFile writes data to path atomically (temp file, fsync, rename,
// directory fsync), mode 0600.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
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
