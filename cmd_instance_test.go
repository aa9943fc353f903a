package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// TestHoldLock: one holder at a time, within this process too (as between
// processes); a waiter gives up with errAlreadyRunning, or with ctx's error
// when ctx ends; lockHeld makes nothing for a lock never made.
func TestHoldLock(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if lockHeld(t.Context(), cfg, "client") {
		t.Fatal("lockHeld before any lock = true")
	}
	path, err := lockPath(cfg, "client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lockHeld made %s (%v)", path, err)
	}
	release, err := holdLock(t.Context(), cfg, "client", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !lockHeld(t.Context(), cfg, "client") {
		t.Error("lockHeld with the lock held = false")
	}
	if _, err := holdLock(t.Context(), cfg, "client", 30*time.Millisecond); !errors.Is(err, errAlreadyRunning) {
		t.Errorf("second holdLock = %v, want errAlreadyRunning", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := holdLock(ctx, cfg, "client", time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("holdLock with ctx ended = %v, want context.Canceled", err)
	}
	if r, err := holdLock(t.Context(), cfg, "first-run", 30*time.Millisecond); err != nil {
		t.Errorf("another kind's lock = %v, want it free", err)
	} else {
		r()
	}
	release()
	if lockHeld(t.Context(), cfg, "client") {
		t.Error("lockHeld after release = true")
	}
	if filepath.Dir(filepath.Dir(path)) != os.Getenv("XDG_CACHE_HOME") {
		t.Errorf("lock %s not under the cache folder", path)
	}
	// Every spelling of the config's path is one lock.
	t.Chdir(filepath.Dir(cfg))
	if rel, err := lockPath("config.yaml", "client"); err != nil || rel != path {
		t.Errorf("lockPath(relative) = %s, %v; want %s", rel, err, path)
	}
}

// TestWaitForJoined: the first-run tray waits while a join holds the
// joining lock, though the config is already there, and goes on once the
// join is done.
func TestWaitForJoined(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	synctest.Test(t, func(t *testing.T) {
		release, err := holdLock(t.Context(), cfg, "joining", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan bool, 1)
		go func() { done <- waitForJoined(t.Context(), cfg, time.Second) }()
		if err := os.WriteFile(cfg, []byte("role: client\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second) // ten polls of the bubble's clock
		select {
		case <-done:
			t.Fatal("waitForJoined returned while join held its lock")
		default:
		}
		release()
		time.Sleep(2 * time.Second)
		select {
		case ok := <-done:
			if !ok {
				t.Error("waitForJoined = false, want true")
			}
		default:
			t.Fatal("waitForJoined still waiting after the join ended")
		}
	})
}
