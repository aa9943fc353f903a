// Package autostart makes a program start when the user logs in, and tells
// whether it currently does.
//
// Each operating system keeps its own kind of entry:
//   - Linux and other Unix desktops: an XDG autostart file
//     $XDG_CONFIG_HOME/autostart/<name>.desktop (~/.config when unset);
//   - Windows: a value <name> under
//     HKCU\Software\Microsoft\Windows\CurrentVersion\Run, honouring the
//     "disabled" mark that Task Manager's Startup tab writes under
//     ...\Explorer\StartupApproved\Run;
//   - macOS: a LaunchAgent ~/Library/LaunchAgents/<name>.plist.
//
// Enabled always reads the system, so a caller that asks after every toggle
// shows the real state even when the user edits the entry by other means.
package autostart

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// Options describe the entry. Name is required; the other fields have
// defaults.
type Options struct {
	// Name identifies the entry: the .desktop or .plist file name without
	// extension, or the registry value name. Letters, digits, '.', '-' and
	// '_' only, e.g. "ipsync-client".
	Name string
	// DisplayName is the human name shown by desktop settings tools;
	// "" = Name.
	DisplayName string
	// Comment is a one-line description for desktop settings tools;
	// "" = none.
	Comment string
	// Executable is the absolute path of the program to start;
	// "" = the running executable (os.Executable, symlinks resolved).
	Executable string
	// Args are the arguments passed after the executable.
	Args []string
}

// Entry is the login item of one program. Methods read and write the
// system's entry each time; an Entry holds no state and is safe for
// concurrent use (though concurrent SetEnabled calls race on the system).
type Entry struct {
	opts Options
	impl impl
}

// impl is one kind of entry.
type impl interface {
	enabled() (bool, error)
	enable(exe string, args []string, opts Options) error
	disable() error
	location() string
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ErrUnsupported is returned by New on a system with no known kind of entry.
var ErrUnsupported = errors.New("autostart: not supported on this system")

// New returns the entry for opts on this operating system. It does no I/O
// except resolving the executable path when Options.Executable is "", and
// finding the user's configuration or home directory.
func New(opts Options) (*Entry, error) {
	if !validName.MatchString(opts.Name) {
		return nil, fmt.Errorf("autostart: invalid entry name %q: use letters, digits, '.', '-' and '_'", opts.Name)
	}
	if opts.DisplayName == "" {
		opts.DisplayName = opts.Name
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("autostart: find the running executable: %w", err)
		}
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		opts.Executable = exe
	}
	if !filepath.IsAbs(opts.Executable) {
		return nil, fmt.Errorf("autostart: executable path %q is not absolute", opts.Executable)
	}
	im, err := newPlatform(opts.Name)
	if err != nil {
		return nil, err
	}
	return &Entry{opts: opts, impl: im}, nil
}

// Enabled reports whether the program is set to start at login.
func (e *Entry) Enabled() (bool, error) {
	on, err := e.impl.enabled()
	if err != nil {
		return false, fmt.Errorf("autostart: read %s: %w", e.impl.location(), err)
	}
	return on, nil
}

// SetEnabled creates (or rewrites) the entry when on is true, and removes it
// when on is false. Removing an entry that does not exist is not an error.
func (e *Entry) SetEnabled(on bool) error {
	var err error
	if on {
		err = e.impl.enable(e.opts.Executable, e.opts.Args, e.opts)
	} else {
		err = e.impl.disable()
	}
	if err != nil {
		verb := "remove"
		if on {
			verb = "write"
		}
		return fmt.Errorf("autostart: %s %s: %w", verb, e.impl.location(), err)
	}
	return nil
}

// Location names where the entry lives (a file path or registry key), for
// messages.
func (e *Entry) Location() string { return e.impl.location() }
