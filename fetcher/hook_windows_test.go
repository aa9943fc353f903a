package fetcher

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"

	"ipsync/codec"
	"ipsync/mailconn"
)

// hookHelperEnv makes the test binary act as an on_change command:
// "spawn:FILE" starts a grandchild ("sleep"), writes its PID to FILE and
// exits; "sleep" sleeps for five minutes.
const hookHelperEnv = "IPSYNC_TEST_HOOK_HELPER"

func init() {
	switch v := os.Getenv(hookHelperEnv); {
	case v == "sleep":
		// The long-running grandchild itself, not a wait in a test.
		time.Sleep(5 * time.Minute)
		os.Exit(0)
	case strings.HasPrefix(v, "spawn:"):
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), hookHelperEnv+"=sleep")
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		if err := os.WriteFile(strings.TrimPrefix(v, "spawn:"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			os.Exit(4)
		}
		os.Exit(0)
	}
}

// TestOnChangeHookJobKilled: on Windows an on_change command runs in a job
// object; a grandchild it leaves running is killed when the command exits.
// Outside Windows it runs under Wine:
//
//	GOOS=windows go test -c -o fetcher.test.exe ./fetcher/
//	wine fetcher.test.exe -test.run TestOnChangeHookJobKilled -test.v
func TestOnChangeHookJobKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Setenv(hookHelperEnv, "spawn:"+pidFile)
	log, logs := newLogger(t)
	f, err := New(Options{
		IMAP:     mailconn.Endpoint{Host: "127.0.0.1", Port: 1, TLS: mailconn.TLSNone},
		Auth:     passwordAuth(testUser, ""),
		Name:     testName,
		Decode:   func(string) (codec.Payload, error) { return codec.Payload{}, nil },
		OnChange: []string{os.Args[0]},
		Logger:   log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	f.execHook(ctx, payload(1, "192.0.2.1", time.Now()), payload(2, "192.0.2.2", time.Now()))
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the hook wrote no PID: %v\n%s", err, logs)
	}
	pid, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatal(err)
	}
	h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		return // already gone
	}
	defer windows.CloseHandle(h)
	ev, err := windows.WaitForSingleObject(h, uint32(waitTimeout/time.Millisecond))
	if err != nil || ev != windows.WAIT_OBJECT_0 {
		_ = windows.TerminateProcess(h, 1)
		t.Fatalf("grandchild %d still runs %v after the hook exited (wait = %#x, %v)\n%s", pid, waitTimeout, ev, err, logs)
	}
}
