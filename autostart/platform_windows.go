//go:build windows

package autostart

import (
	"errors"
	"strings"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

const (
	runKey      = `Software\Microsoft\Windows\CurrentVersion\Run`
	approvedKey = `Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run`
)

func newPlatform(name string) (impl, error) { return runValue{name: name}, nil }

// runValue is a value under HKCU\...\Run. Task Manager's Startup tab
// disables such an entry by writing a binary value of the same name under
// StartupApproved\Run whose first byte is odd.
type runValue struct {
	name string
}

func (r runValue) location() string { return `HKCU\` + runKey + `\` + r.name }

func (r runValue) enabled() (bool, error) {
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer k.Close()
	if _, _, err := k.GetStringValue(r.name); errors.Is(err, registry.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	a, err := registry.OpenKey(registry.CURRENT_USER, approvedKey, registry.QUERY_VALUE)
	if err != nil {
		return true, nil // no approval data: enabled
	}
	defer a.Close()
	b, _, err := a.GetBinaryValue(r.name)
	if err != nil || len(b) == 0 {
		return true, nil
	}
	return b[0]&1 == 0, nil
}

func (r runValue) enable(exe string, args []string, _ Options) error {
	k, _, err := registry.CreateKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if err != nil {
		return err
	}
	defer k.Close()
	parts := make([]string, 0, len(args)+1)
	parts = append(parts, `"`+exe+`"`)
	for _, a := range args {
		parts = append(parts, windows.EscapeArg(a))
	}
	if err := k.SetStringValue(r.name, strings.Join(parts, " ")); err != nil {
		return err
	}
	return r.clearApproval()
}

func (r runValue) disable() error {
	k, err := registry.OpenKey(registry.CURRENT_USER, runKey, registry.SET_VALUE)
	if err == nil {
		err = k.DeleteValue(r.name)
		k.Close()
	}
	if err != nil && !errors.Is(err, registry.ErrNotExist) {
		return err
	}
	return r.clearApproval()
}

// clearApproval removes a Task Manager "disabled" mark so a fresh entry
// runs.
func (r runValue) clearApproval() error {
	a, err := registry.OpenKey(registry.CURRENT_USER, approvedKey, registry.SET_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.DeleteValue(r.name); err != nil && !errors.Is(err, registry.ErrNotExist) {
		return err
	}
	return nil
}
