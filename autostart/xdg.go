//go:build !windows

package autostart

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// xdg is an XDG autostart desktop entry
// (https://specifications.freedesktop.org/autostart-spec/latest/).
type xdg struct {
	path string
}

// xdgDir returns $XDG_CONFIG_HOME/autostart, or ~/.config/autostart when
// XDG_CONFIG_HOME is unset or not absolute (as the base directory spec says).
func xdgDir() (string, error) {
	if dir := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "autostart"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "autostart"), nil
}

func (x xdg) location() string { return x.path }

// enabled is true when the file exists and neither hides it (Hidden=true)
// nor switches it off (X-GNOME-Autostart-enabled=false, which GNOME's
// settings write instead of deleting the file).
func (x xdg) enabled() (bool, error) {
	b, err := os.ReadFile(x.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	inEntry := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			inEntry = line == "[Desktop Entry]"
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !inEntry || !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "Hidden":
			if strings.TrimSpace(value) == "true" {
				return false, nil
			}
		case "X-GNOME-Autostart-enabled":
			if strings.TrimSpace(value) == "false" {
				return false, nil
			}
		}
	}
	return true, sc.Err()
}

func (x xdg) enable(exe string, args []string, opts Options) error {
	var b strings.Builder
	b.WriteString("[Desktop Entry]\nType=Application\n")
	b.WriteString("Name=" + desktopString(opts.DisplayName) + "\n")
	if opts.Comment != "" {
		b.WriteString("Comment=" + desktopString(opts.Comment) + "\n")
	}
	b.WriteString("Exec=" + desktopExec(append([]string{exe}, args...)) + "\n")
	b.WriteString("Terminal=false\nX-GNOME-Autostart-enabled=true\n")
	return writeFileAtomic(x.path, []byte(b.String()))
}

func (x xdg) disable() error { return removeFile(x.path) }

// desktopString escapes a value of type string for a desktop entry.
func desktopString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
	return r.Replace(s)
}

// desktopExec builds an Exec value: each argument that needs it is put in
// double quotes with `"`, '`', '$' and '\' backslash-escaped, '%' is doubled
// (field codes), and the whole value is then escaped as a string, which
// doubles the backslashes again, as the Desktop Entry spec requires.
func desktopExec(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		a = strings.ReplaceAll(a, "%", "%%")
		if a != "" && !strings.ContainsAny(a, " \t\n\"'\\><~|&;$*?#()`") {
			quoted[i] = a
			continue
		}
		r := strings.NewReplacer(`"`, `\"`, "`", "\\`", `$`, `\$`, `\`, `\\`)
		quoted[i] = `"` + r.Replace(a) + `"`
	}
	return desktopString(strings.Join(quoted, " "))
}
