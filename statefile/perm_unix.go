//go:build unix

package statefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// openNoFollow opens name without following a symbolic link in its last
// element (O_NOFOLLOW): a link planted there fails with errSymlink.
func openNoFollow(name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NOFOLLOW, perm)
	if errors.Is(err, syscall.ELOOP) {
		return nil, symlinkErr(name)
	}
	return f, err
}

// checkOwner refuses a state directory or file that another user owns or
// that users other than its owner can write: either could plant state
// (a forged sequence number, an old address) or links there.
func checkOwner(what, name string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	fix := "chmod 600 " + name
	if fi.IsDir() {
		fix = "chmod 700 " + name
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("%s %s is owned by uid %d, not by this user (uid %d): another user could change ipsync's state; fix: use a state_dir of your own, or chown %d %s and %s: %w",
			what, name, st.Uid, uid, uid, name, fix, ErrUnsafe)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s %s can be written by other users (mode %s): they could plant state or links there; fix: %s: %w",
			what, name, fi.Mode(), fix, ErrUnsafe)
	}
	return nil
}
