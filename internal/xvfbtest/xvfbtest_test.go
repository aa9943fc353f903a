//go:build linux

package xvfbtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestTypeIntoZenity: a zenity entry on the private display, found by its
// exact title (regular expression characters in it), gets what is typed,
// and Xvfb is gone after the test.
func TestTypeIntoZenity(t *testing.T) {
	var name string
	t.Run("display", func(t *testing.T) {
		d := Start(t)
		name = d.Name
		if got := os.Getenv("DISPLAY"); got != d.Name {
			t.Errorf("DISPLAY = %q, want %q", got, d.Name)
		}
		PrivateHome(t)
		ctx, cancel := context.WithTimeout(t.Context(), Timeout)
		defer cancel()
		const title = "a.b (1) [x]*"
		// A near match, shown first: the search must not take it.
		near := exec.CommandContext(ctx, "zenity", "--info", "--title", "a.b (1) [x]*?", "--text", "near")
		if err := near.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = near.Process.Kill(); _ = near.Wait() }()
		nearWin := d.WaitWindow(t, "a.b (1) [x]*?")
		if nearWin.PID != near.Process.Pid {
			t.Errorf("window pid = %d, want zenity's %d", nearWin.PID, near.Process.Pid)
		}

		cmd := exec.CommandContext(ctx, "zenity", "--entry", "--title", title, "--text", "type here")
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		w := d.WaitWindow(t, title)
		if w.PID != cmd.Process.Pid {
			t.Errorf("window pid = %d, want zenity's %d", w.PID, cmd.Process.Pid)
		}
		d.Focus(t, w)
		d.Type(t, `-x y, "z" $HOME!`)
		d.Key(t, "Return")
		if err := <-done; err != nil {
			t.Fatalf("zenity: %v", err)
		}
		if got, want := out.String(), "-x y, \"z\" $HOME!\n"; got != want {
			t.Errorf("zenity printed %q, want %q", got, want)
		}
		d.WaitGone(t, w)
		if _, err := exec.LookPath("import"); err == nil {
			p := t.TempDir() + "/shot.png"
			if err := d.Screenshot(p); err != nil {
				t.Error(err)
			} else if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
				t.Errorf("screenshot %s: %v", p, err)
			}
		}
	})
	if name == "" {
		return // skipped
	}
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "xdotool", "getdisplaygeometry")
	cmd.Env = append(os.Environ(), "DISPLAY="+name)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("display %s still answers after the test: %s", name, out)
	}
}
