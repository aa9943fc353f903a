package fetcher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ipsync/codec"
	"ipsync/mailconn"
)

// TestOnChangeHookGroupKilled: an on_change command that starts a
// grandchild (a background sleep) leaves nothing running, whether it is
// cut by its timeout, by ipsync stopping (the context ends) or simply exits.
// The grandchild's PID comes through a FIFO; its end is awaited with a
// pidfd (readable once the process has exited), bounded by waitTimeout.
func TestOnChangeHookGroupKilled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string // $0 is the FIFO
		timeout time.Duration
		cancel  bool // end the context once the grandchild runs
		wantErr string
	}{
		{"timeout", `sleep 300 & echo $! > "$0"; wait`, time.Second, false, "deadline exceeded"},
		{"stop", `sleep 300 & echo $! > "$0"; wait`, time.Hour, true, "context canceled"},
		{"exit", `sleep 300 & echo $! > "$0"; echo hook done`, time.Hour, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fifo := filepath.Join(t.TempDir(), "pid")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			log, logs := newLogger(t)
			f, err := New(Options{
				IMAP:        mailconn.Endpoint{Host: "127.0.0.1", Port: 1, TLS: mailconn.TLSNone},
				Auth:        passwordAuth(testUser, ""),
				Name:        testName,
				Decode:      func(string) (codec.Payload, error) { return codec.Payload{}, nil },
				OnChange:    []string{"/bin/sh", "-c", tt.script, fifo},
				HookTimeout: tt.timeout,
				Logger:      log,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pids := make(chan int, 1)
			go func() {
				// Opening a FIFO for reading blocks until the hook opens it.
				data, err := os.ReadFile(fifo)
				pid, perr := strconv.Atoi(strings.TrimSpace(string(data)))
				if err != nil || perr != nil {
					pid = 0
				}
				pids <- pid
			}()
			done := make(chan struct{})
			go func() {
				defer close(done)
				f.execHook(ctx, payload(1, "192.0.2.1", time.Now()), payload(2, "192.0.2.2", time.Now()))
			}()
			var pid int
			select {
			case pid = <-pids:
			case <-time.After(waitTimeout):
				t.Fatalf("the hook did not report its grandchild's PID\n%s", logs)
			}
			if pid <= 0 {
				t.Fatalf("bad PID from the hook\n%s", logs)
			}
			// pidfd of the grandchild, taken while it is certainly alive
			// (the hook waits on it, or it sleeps for 300 s).
			pidfd, err := unix.PidfdOpen(pid, 0)
			if err != nil && !errors.Is(err, syscall.ESRCH) {
				t.Fatalf("pidfd_open(%d) = %v", pid, err)
			}
			if tt.cancel {
				cancel()
			}
			select {
			case <-done:
			case <-time.After(waitTimeout):
				t.Fatal("execHook did not return")
			}
			if err == nil {
				defer unix.Close(pidfd)
				fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
				n, err := unix.Poll(fds, int(waitTimeout/time.Millisecond))
				for errors.Is(err, unix.EINTR) {
					n, err = unix.Poll(fds, int(waitTimeout/time.Millisecond))
				}
				if err != nil || n != 1 {
					_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
					t.Fatalf("grandchild %d still runs %v after the hook ended (poll = %d, %v)\n%s", pid, waitTimeout, n, err, logs)
				}
			}
			switch {
			case tt.wantErr == "" && len(logs.Lines("on_change command ran")) != 1:
				t.Errorf("want one 'on_change command ran' line:\n%s", logs)
			case tt.wantErr != "" && !strings.Contains(logs.String(), tt.wantErr):
				t.Errorf("want a failure with %q:\n%s", tt.wantErr, logs)
			}
		})
	}
}
