// Package dialog asks the desktop user for a passphrase or a file and shows
// messages, in the system's own dialogs, for programs started without a
// terminal (a double-clicked file, a tray menu).
//
// It drives the dialog tools every desktop already has, so the program
// stays pure Go: zenity or kdialog on Linux and BSD desktops, osascript on
// macOS, and PowerShell's Windows Forms dialogs on Windows. Every function
// blocks until the user answers or ctx ends; they are safe for concurrent
// use but meant to be called one at a time. Nothing typed into a dialog is
// ever logged or part of an error.
package dialog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrCanceled is returned when the user closes or cancels the dialog.
var ErrCanceled = errors.New("dialog: canceled by the user")

// ErrUnavailable is returned when this system has no dialog tool.
var ErrUnavailable = errors.New("dialog: no dialog tool on this system (install zenity or kdialog)")

// Available reports whether a dialog tool is there.
func Available() bool {
	_, err := tool()
	return err == nil
}

// Password asks for a secret; the text typed is not shown.
func Password(ctx context.Context, title, prompt string) (string, error) {
	return run(ctx, kindPassword, title, prompt, "")
}

// OpenFile asks for an existing file; filter is a glob such as "*.ipsync"
// ("" for any file). It returns the chosen path.
func OpenFile(ctx context.Context, title, filter string) (string, error) {
	return run(ctx, kindFile, title, "", filter)
}

// Info shows a message with an OK button.
func Info(ctx context.Context, title, text string) error {
	_, err := run(ctx, kindInfo, title, text, "")
	if errors.Is(err, ErrCanceled) {
		return nil
	}
	return err
}

// Error shows an error message with an OK button.
func Error(ctx context.Context, title, text string) error {
	_, err := run(ctx, kindError, title, text, "")
	if errors.Is(err, ErrCanceled) {
		return nil
	}
	return err
}

type kind int

const (
	kindPassword kind = iota
	kindFile
	kindInfo
	kindError
)

// run starts the tool with the arguments for k and returns its output
// without the final newline. A non-zero exit with no output is a cancel.
func run(ctx context.Context, k kind, title, text, filter string) (string, error) {
	t, err := tool()
	if err != nil {
		return "", err
	}
	name, args := t.command(k, title, text, filter)
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if out.Len() == 0 {
			return "", ErrCanceled
		}
		return "", fmt.Errorf("dialog: %s failed: %s", name, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		return "", fmt.Errorf("dialog: run %s: %w", name, err)
	}
	return strings.TrimRight(out.String(), "\r\n"), nil
}

// toolCmd builds the command line of one dialog.
type toolCmd interface {
	command(k kind, title, text, filter string) (string, []string)
}
