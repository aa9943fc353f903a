//go:build windows

package statefile

import (
	"io/fs"
	"os"
)

// openNoFollow opens name, refusing a symbolic link (or other reparse
// point) there. Windows has no O_NOFOLLOW: the check comes just before the
// open. State directories live in the user's profile, whose ACLs keep other
// users out.
func openNoFollow(name string, flag int, perm fs.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(name); err == nil && fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return nil, symlinkErr(name)
	}
	return os.OpenFile(name, flag, perm)
}

// checkOwner does nothing on Windows: access is governed by ACLs, not by
// owner and mode bits (the user's profile directory is private by default).
func checkOwner(what, name string, fi fs.FileInfo) error { return nil }
