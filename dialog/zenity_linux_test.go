package dialog_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ipsync/dialog"
	"ipsync/internal/xvfbtest"
)

// These tests show the real zenity dialogs on a private Xvfb display and
// answer them with the keyboard, as a person would (internal/xvfbtest).

// answer is what a dialog function returned.
type answer struct {
	text string
	err  error
}

// show runs f (a dialog) in the background and returns its answer, later.
func show(f func() (string, error)) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		s, err := f()
		ch <- answer{s, err}
	}()
	return ch
}

// await waits for the dialog's answer.
func await(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(xvfbtest.Timeout):
		t.Fatalf("the dialog did not return within %v", xvfbtest.Timeout)
	}
	return answer{}
}

// desktop starts a private display and returns it, with a context that
// bounds the dialogs of the test and the test's home directory.
func desktop(t *testing.T) (*xvfbtest.Display, context.Context, string) {
	t.Helper()
	xvfbtest.Require(t)
	// Not t.Context, and canceled after the display is gone: a failing
	// test's screenshot still shows the open dialog.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	d := xvfbtest.Start(t)
	home := xvfbtest.PrivateHome(t)
	if !dialog.Available() {
		t.Fatal("Available() = false with zenity installed")
	}
	return d, ctx, home
}

// secret is typed into the dialogs: spaces, quotes and shell characters.
const secret = ` correct horse, "battery" staple! $HOME;|*?` + "'~"

// holdsSecret reports whether err's text shows any part of secret.
func holdsSecret(err error) bool {
	if err == nil {
		return false
	}
	for _, part := range []string{"horse", "battery", "staple"} {
		if strings.Contains(err.Error(), part) {
			return true
		}
	}
	return false
}

// TestPasswordTyped: what is typed, spaces and punctuation included, is
// what Password returns.
func TestPasswordTyped(t *testing.T) {
	d, ctx, _ := desktop(t)
	const title = "ipsync: join office-pc3.ipsync"
	ch := show(func() (string, error) { return dialog.Password(ctx, title, "Passphrase of office-pc3.ipsync") })
	w := d.WaitWindow(t, title)
	d.Focus(t, w)
	d.Type(t, secret)
	d.Key(t, "Return")
	if a := await(t, ch); a.err != nil || a.text != secret {
		t.Errorf("Password() = %q, %v; want %q, nil", a.text, a.err, secret)
	}
	d.WaitGone(t, w)
}

// TestPasswordEscape: Escape cancels, and the error does not carry what
// was typed.
func TestPasswordEscape(t *testing.T) {
	d, ctx, _ := desktop(t)
	const title = "ipsync: password"
	ch := show(func() (string, error) { return dialog.Password(ctx, title, "Password of office@ipsync.test") })
	w := d.WaitWindow(t, title)
	d.Focus(t, w)
	d.Type(t, secret)
	d.Key(t, "Escape")
	a := await(t, ch)
	if a.text != "" || !errors.Is(a.err, dialog.ErrCanceled) {
		t.Errorf("Password() after Escape = %q, %v; want \"\", ErrCanceled", a.text, a.err)
	}
	if holdsSecret(a.err) {
		t.Errorf("the error %q holds the typed text", a.err)
	}
	d.WaitGone(t, w)
}

// TestPasswordContextEnds: ending ctx closes the open dialog at once and
// Password returns ctx's error, without what was typed.
func TestPasswordContextEnds(t *testing.T) {
	d, ctx, _ := desktop(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const title = "ipsync: password"
	ch := show(func() (string, error) { return dialog.Password(ctx, title, "Password of office@ipsync.test") })
	w := d.WaitWindow(t, title)
	d.Focus(t, w)
	d.Type(t, secret)
	start := time.Now()
	cancel()
	a := await(t, ch)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Password returned %v after ctx ended", took)
	}
	if a.text != "" || !errors.Is(a.err, context.Canceled) {
		t.Errorf("Password() after cancel = %q, %v; want \"\", context.Canceled", a.text, a.err)
	}
	if holdsSecret(a.err) {
		t.Errorf("the error %q holds the typed text", a.err)
	}
	d.WaitGone(t, w)
	// The zenity process is gone too, not only its window.
	if w.PID > 0 {
		if err := syscall.Kill(w.PID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("zenity (pid %d) still runs after ctx ended: %v", w.PID, err)
		}
	}
}

// TestOpenFileTyped: in the GTK file chooser started in a folder, a path
// typed from "/" opens its location field; Return chooses that file.
func TestOpenFileTyped(t *testing.T) {
	d, ctx, _ := desktop(t)
	dir := t.TempDir()
	want := filepath.Join(dir, "office pc3 (2).ipsync")
	if err := os.WriteFile(want, []byte("invitation"), 0o600); err != nil {
		t.Fatal(err)
	}
	const title = "ipsync: choose the invitation"
	// Started in a folder, as ipsync starts it in Downloads: GTK's own
	// start, its Recent view, moves to a folder once shown when there are
	// no recent files (a new home), and keys typed meanwhile are lost.
	ch := show(func() (string, error) { return dialog.OpenFile(ctx, title, "*.ipsync", dir) })
	w := d.WaitWindow(t, title)
	d.Focus(t, w)
	d.Type(t, want)
	// GTK enables the chooser's OK button, the default that Return
	// presses, 150 ms after the typed text last changed: a Return before
	// that does nothing, and a person presses it again. A Return after the
	// answer reaches no window.
	var a answer
	for tries := 1; ; tries++ {
		d.Key(t, "Return")
		var answered bool
		select {
		case a = <-ch:
			answered = true
		case <-time.After(time.Second):
		}
		if answered {
			break
		}
		if tries == 5 {
			t.Fatalf("the file chooser did not answer %d presses of Return", tries)
		}
	}
	if a.err != nil || a.text != want {
		t.Errorf("OpenFile() = %q, %v; want %q, nil", a.text, a.err, want)
	}
	d.WaitGone(t, w)
}

// TestMessagesReturn: Info and Error close with Return (their OK button).
func TestMessagesReturn(t *testing.T) {
	d, ctx, _ := desktop(t)
	for _, m := range []struct {
		title string
		show  func(context.Context, string, string) error
	}{
		{"ipsync", dialog.Info},
		{"ipsync: joining failed", dialog.Error},
	} {
		ch := show(func() (string, error) { return "", m.show(ctx, m.title, "This PC is set up.") })
		w := d.WaitWindow(t, m.title)
		d.Focus(t, w)
		d.Key(t, "Return")
		if a := await(t, ch); a.err != nil {
			t.Errorf("%s dialog closed with Return: %v, want nil", m.title, a.err)
		}
		d.WaitGone(t, w)
	}
}
