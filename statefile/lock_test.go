package statefile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// within fails the test unless ch delivers within 10s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case v := <-ch:
		return v
	case <-timeout.C:
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

func TestLockWaitsForHolder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	unlock1, err := Lock(t.Context(), path)
	if err != nil {
		t.Fatalf("Lock() = %v", err)
	}

	busy := make(chan struct{})
	type result struct {
		unlock func() error
		err    error
	}
	acquired := make(chan result, 1)
	go func() {
		u, err := lock(t.Context(), path, func() { close(busy) })
		acquired <- result{u, err}
	}()

	within(t, busy, "the second Lock to find the lock held")
	select {
	case r := <-acquired:
		t.Fatalf("second Lock() returned (%v) while the first holder had not unlocked", r.err)
	default:
	}
	if err := unlock1(); err != nil {
		t.Fatalf("unlock() = %v", err)
	}
	r := within(t, acquired, "the second Lock after the first unlock")
	if r.err != nil {
		t.Fatalf("second Lock() = %v, want nil", r.err)
	}
	if err := r.unlock(); err != nil {
		t.Errorf("second unlock() = %v", err)
	}
}

func TestLockContextEnds(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	unlock, err := Lock(t.Context(), path)
	if err != nil {
		t.Fatalf("Lock() = %v", err)
	}
	defer unlock()

	stop := errors.New("test gave up waiting")
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() {
		u, err := lock(ctx, path, func() { cancel(stop) })
		if err == nil {
			u()
		}
		done <- err
	}()
	if err := within(t, done, "Lock to give up"); !errors.Is(err, stop) {
		t.Errorf("Lock() with a cancelled context = %v, want the cause %v", err, stop)
	}
	if _, err := Lock(ctx, path); !errors.Is(err, stop) {
		t.Errorf("Lock() with an already cancelled context = %v, want the cause %v", err, stop)
	}
}

// TestLockSerialisesUpdates runs read-change-write cycles on one state file
// from many goroutines, each with its own open lock file, as separate
// processes would: no update may be lost and no two holders may overlap.
func TestLockSerialisesUpdates(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	const workers, rounds = 4, 25
	var inside atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				unlock, err := Lock(t.Context(), path)
				if err != nil {
					t.Errorf("Lock() = %v", err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("holders inside the lock = %d, want 1", n)
				}
				var st struct{ N int }
				if _, err := Load(path, &st); err != nil {
					t.Errorf("Load() = %v", err)
				}
				st.N++
				if err := Save(path, st); err != nil {
					t.Errorf("Save() = %v", err)
				}
				inside.Add(-1)
				if err := unlock(); err != nil {
					t.Errorf("unlock() = %v", err)
				}
			}
		})
	}
	wg.Wait()
	var st struct{ N int }
	if _, err := Load(path, &st); err != nil || st.N != workers*rounds {
		t.Errorf("Load() after %d updates = %d, %v, want %d", workers*rounds, st.N, err, workers*rounds)
	}
}

func TestLockFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new", "dir", "state.json")
	unlock, err := Lock(t.Context(), path)
	if err != nil {
		t.Fatalf("Lock() in a missing directory = %v", err)
	}
	fi, err := os.Stat(path + ".lock")
	if err != nil {
		t.Fatalf("Stat(lock file) = %v", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode = %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(state file) = %v, want not exist: Lock must not create it", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("unlock() = %v", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock() = %v, want nil", err)
	}
	unlock, err = Lock(t.Context(), path)
	if err != nil {
		t.Fatalf("Lock() after unlock = %v", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("unlock() = %v", err)
	}
}
