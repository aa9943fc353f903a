// Package dialog asks the desktop user for a passphrase or a file and shows
// messages, in the system's own dialogs, for programs started without a
// terminal (a double-clicked file, a tray menu).
//
// It is a thin layer over github.com/ncruces/zenity, which draws the
// dialogs with the Win32 API on Windows (pure Go, nothing to install),
// with osascript on macOS, and on Linux and BSD desktops with a program:
// qarma (zenity's Qt twin) when installed, else zenity, else matedialog,
// looked up once per process. Every function
// blocks until the user answers or ctx ends (ending ctx closes the dialog);
// they are safe for concurrent use but meant to be called one at a time.
// Nothing typed into a dialog is ever logged or part of an error.
package dialog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ncruces/zenity"
)

// ErrCanceled is returned when the user closes or cancels the dialog.
var ErrCanceled = errors.New("dialog: canceled by the user")

// ErrUnavailable is returned when this system has no dialog tool (only on
// Linux and BSD desktops: Windows and macOS always have one).
var ErrUnavailable = errors.New("dialog: no dialog tool on this system (install zenity)")

// Available reports whether dialogs can be shown. On Linux and BSD the
// answer is fixed when first asked: a dialog program installed later is
// seen by the next process (join from the tray runs one).
func Available() bool { return zenity.IsAvailable() }

// Password asks for a secret; the text typed is not shown.
func Password(ctx context.Context, title, prompt string) (string, error) {
	if !Available() {
		return "", ErrUnavailable
	}
	s, err := zenity.Entry(prompt, zenity.Title(title), zenity.HideText(), zenity.Context(ctx))
	return s, wrap(ctx, "ask for a password", err)
}

// OpenFile asks for an existing file; pattern is a glob such as "*.ipsync"
// ("" for any file), offered first with "All files" beside it, and the
// chooser starts in the folder dir ("" for the system's choice). It
// returns the chosen path.
func OpenFile(ctx context.Context, title, pattern, dir string) (string, error) {
	if !Available() {
		return "", ErrUnavailable
	}
	opts := []zenity.Option{zenity.Title(title), zenity.Context(ctx)}
	if dir != "" {
		// A trailing separator makes it a folder to start in, not a file.
		opts = append(opts, zenity.Filename(strings.TrimRight(dir, `/\`)+string(filepath.Separator)))
	}
	if pattern != "" {
		opts = append(opts, zenity.FileFilters{
			{Name: pattern, Patterns: []string{pattern}, CaseFold: true},
			{Name: "All files", Patterns: []string{"*"}},
		})
	}
	p, err := zenity.SelectFile(opts...)
	return p, wrap(ctx, "show a file chooser", err)
}

// Info shows a message with an OK button.
func Info(ctx context.Context, title, text string) error {
	return message(ctx, zenity.Info, title, text)
}

// Error shows an error message with an OK button.
func Error(ctx context.Context, title, text string) error {
	return message(ctx, zenity.Error, title, text)
}

func message(ctx context.Context, show func(string, ...zenity.Option) error, title, text string) error {
	if !Available() {
		return ErrUnavailable
	}
	err := wrap(ctx, "show a message", show(text, zenity.Title(title), zenity.Context(ctx)))
	if errors.Is(err, ErrCanceled) {
		return nil // closing a message is reading it
	}
	return err
}

// wrap turns zenity's errors into this package's: a cancel is ErrCanceled,
// an ended ctx its own error, anything else names what failed.
func wrap(ctx context.Context, what string, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, zenity.ErrCanceled):
		return ErrCanceled
	}
	return fmt.Errorf("dialog: %s: %w", what, err)
}
