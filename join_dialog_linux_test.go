package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJoinAsksMailboxPassword: an invitation without the mailbox password
// (--mailbox-password ask) has join ask for it — here without a terminal,
// so in the desktop's dialog, played by a zenity stand-in on PATH — and the
// password typed there is what the client signs in with. join runs as a
// child process: the dialog library looks its program up once per process.
func TestJoinAsksMailboxPassword(t *testing.T) {
	et := newEnrolTest(t, false)
	inv := et.invite(t, "--mailbox-password", "ask")
	bin := t.TempDir()
	prompts := filepath.Join(bin, "prompts")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + prompts + "\nprintf 'pw-e2e\\n'\n"
	// The library takes qarma, then zenity, then matedialog, whatever
	// the order on PATH: the stand-in answers to all three names.
	for _, name := range []string{"qarma", "zenity", "matedialog"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnvFor("join", inv, "--passphrase-file", et.passFile))
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "PASS imap 127.0.0.1") {
		t.Fatalf("join: %v\n%s%s", err, out.String(), errOut.String())
	}
	asked, _ := os.ReadFile(prompts)
	if !strings.Contains(string(asked), "--hide-text") || !strings.Contains(string(asked), "--text Password of office@ipsync.test") {
		t.Errorf("the dialog was called with %q", asked)
	}
	if pw, _ := os.ReadFile(filepath.Join(et.cfgDir, "office.password")); string(pw) != "pw-e2e\n" {
		t.Errorf("stored password = %q", pw)
	}
}
