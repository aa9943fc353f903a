package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"ipsync/statefile"
)

// The locks that keep a PC's client processes in step, one set per config
// file: "client" is held by the running client (one per config), "first-run"
// by the not-set-up tray waiting for that config, "joining" by `ipsync join`
// while it writes and checks it. They live in the user cache folder
// (~/.cache/ipsync, %LOCALAPPDATA%\ipsync, ~/Library/Caches/ipsync), which is
// this machine's own, not beside the config, which may be on a network share
// seen by other PCs; the system drops a lock when its holder ends, however
// it ends.

// errAlreadyRunning: another process holds the lock.
var errAlreadyRunning = errors.New("already running")

// instanceWait is how long a starting client waits for the client lock;
// a client told to quit lets go of it at once (before it logs out).
var instanceWait = 2 * time.Second

// startedByIpsync, set in the environment of a client that ipsync started
// itself (join, the first-run tray), makes a client that finds another one
// running end without a word: the one that runs is the one wanted.
const startedByIpsync = "IPSYNC_STARTED_BY"

// lockPath is the lock of kind for configPath: one name for every spelling
// of the config's path (relative, through a link, in another case on
// Windows), in one folder whatever the session sets (a terminal, sudo -u or
// a deployment tool as well as the desktop).
func lockPath(configPath, kind string) (string, error) {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return "", err
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		abs = strings.ToLower(abs) // case-insensitive file systems
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, "ipsync", fmt.Sprintf("%x.%s", sum[:8], kind)), nil
}

// holdLock takes the lock of kind for configPath, waiting up to wait. It
// returns errAlreadyRunning when another process holds it, ctx's error
// when ctx ends, and any other failure to make the lock as it is.
func holdLock(ctx context.Context, configPath, kind string, wait time.Duration) (release func(), err error) {
	path, err := lockPath(configPath, kind)
	if err != nil {
		return nil, fmt.Errorf("find the %s lock: %w", kind, err)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err := statefile.Lock(wctx, path)
	switch {
	case err == nil:
		return func() { _ = unlock() }, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, errAlreadyRunning
	}
	return nil, err
}

// lockHeld reports whether another process holds the lock of kind for
// configPath. It makes nothing when no such lock was ever made.
func lockHeld(ctx context.Context, configPath, kind string) bool {
	path, err := lockPath(configPath, kind)
	if err != nil {
		return false
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		return false
	}
	release, err := holdLock(ctx, configPath, kind, 20*time.Millisecond)
	if err != nil {
		return errors.Is(err, errAlreadyRunning)
	}
	release()
	return false
}
