//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package statefile

import (
	"errors"
	"fmt"
	"os"
)

// errLockUnsupported: this platform has no advisory file lock here.
var errLockUnsupported = fmt.Errorf("advisory file locks on this platform: %w", errors.ErrUnsupported)

// tryLock fails: this platform has no advisory file lock here, and a lock
// that does not exclude anything would only hide the risk.
func tryLock(*os.File) (bool, error) { return false, errLockUnsupported }

// unlockFile is never reached: tryLock never succeeds.
func unlockFile(*os.File) error { return errLockUnsupported }
