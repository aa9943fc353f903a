package statefile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Waits between attempts while another holder has the lock. Holders keep it
// for a read and a write of a small file, so waits start short.
const (
	minLockWait = time.Millisecond
	maxLockWait = 50 * time.Millisecond
)

// Lock takes an exclusive advisory lock for the state file at path, so that
// processes sharing the file (a service and a one-off command) can read,
// change and write it without losing each other's updates. The lock is on
// the companion file path+".lock", created (mode 0600, directory 0700) when
// missing and never removed, and opened without following a link (an
// unsafe directory or lock file is refused, see the package documentation);
// path itself is neither created nor opened. Once the lock is held,
// temporary files left by an interrupted write of path are removed.
//
// Lock blocks until the lock is free or ctx ends; in the latter case it
// returns an error wrapping context.Cause(ctx). The lock excludes other
// Lock calls on the same path in this process as well as in others (flock
// on Unix, LockFileEx on Windows); the operating system drops it when the
// holder exits, so a crashed holder never leaves it stuck. It is advisory:
// code that does not call Lock is not stopped.
//
// unlock releases the lock; it is safe to call more than once (later calls
// return nil) and from any goroutine.
func Lock(ctx context.Context, path string) (unlock func() error, err error) {
	return lock(ctx, path, nil)
}

// lock is Lock; onBusy, if set, is called once when the lock is found held
// by someone else (tests use it to know that Lock is waiting).
func lock(ctx context.Context, path string, onBusy func()) (func() error, error) {
	name := path + ".lock"
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("lock state file %s: %w", name, err)
	}
	if err := makeDir(filepath.Dir(name)); err != nil {
		return nil, err
	}
	f, err := openChecked(name, os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("open state lock file: %w", err)
	}
	var timer *time.Timer
	for wait := minLockWait; ; wait = min(2*wait, maxLockWait) {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock state file %s: %w", name, err)
		}
		if ok {
			break
		}
		if onBusy != nil {
			onBusy()
			onBusy = nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			f.Close()
			return nil, fmt.Errorf("wait for state file lock %s: %w", name, context.Cause(ctx))
		case <-timer.C:
		}
	}
	if timer != nil {
		timer.Stop()
	}
	// Every write of path happens under this lock, so temporary files
	// present now are left over from a crash.
	removeTemps(path)
	var once sync.Once
	return func() error {
		err := error(nil)
		once.Do(func() {
			err = unlockFile(f)
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				err = fmt.Errorf("unlock state file %s: %w", name, err)
			}
		})
		return err
	}, nil
}

// cleanIfFree removes path's leftover temporary files if its lock can be
// taken at once; it creates nothing when the directory is missing, and does
// nothing when the lock is held (by another process, or by this one around
// a Load inside an update: the holder cleaned when it took the lock).
func cleanIfFree(path string) {
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return
	}
	f, err := openChecked(path+".lock", os.O_RDWR|os.O_CREATE)
	if err != nil {
		return
	}
	defer f.Close()
	if ok, err := tryLock(f); err != nil || !ok {
		return
	}
	removeTemps(path)
	_ = unlockFile(f)
}
