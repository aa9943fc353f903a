//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnsafeStateDirRefused: publish and fetch refuse a state_dir other
// users can write, with exit 2 and the fix in the message, before any mail
// is sent or read.
func TestUnsafeStateDirRefused(t *testing.T) {
	e := newE2E(t)
	dir := filepath.Dir(e.serverCfg)
	for _, tt := range []struct {
		cfg, state string
		args       []string
	}{
		{e.serverCfg, "state-server", []string{"publish", "--once", "--ip", "8.8.4.4"}},
		{e.clientCfg, "state-client", []string{"fetch", "--once"}},
	} {
		state := filepath.Join(dir, tt.state)
		if err := os.Mkdir(state, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(state, 0o777); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, append(tt.args, "--config", tt.cfg)...)
		if code != exitUsage || !strings.Contains(errOut, "chmod 700 "+state) {
			t.Errorf("%s with a world-writable state_dir = %d %q %q, want exit %d naming chmod 700 %s", tt.args[0], code, out, errOut, exitUsage, state)
		}
	}
	if n := e.mail.Stats().SMTPMessages; n != 0 {
		t.Errorf("publish sent %d messages despite the unsafe state_dir", n)
	}
}
