//go:build darwin

package dialog

import (
	"os/exec"
	"strings"
)

// tool returns osascript.
func tool() (toolCmd, error) {
	p, err := exec.LookPath("osascript")
	if err != nil {
		return nil, ErrUnavailable
	}
	return osascript{p}, nil
}

type osascript struct{ path string }

// asQuote makes s an AppleScript string.
func asQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (o osascript) command(k kind, title, text, filter string) (string, []string) {
	var script string
	switch k {
	case kindPassword:
		script = `text returned of (display dialog ` + asQuote(text) + ` with title ` + asQuote(title) + ` default answer "" with hidden answer)`
	case kindFile:
		script = `POSIX path of (choose file with prompt ` + asQuote(title) + `)`
	case kindInfo:
		script = `display dialog ` + asQuote(text) + ` with title ` + asQuote(title) + ` buttons {"OK"} default button "OK"`
	case kindError:
		script = `display dialog ` + asQuote(text) + ` with title ` + asQuote(title) + ` buttons {"OK"} default button "OK" with icon stop`
	}
	return o.path, []string{"-e", script}
}
