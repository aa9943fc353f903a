//go:build !windows && !darwin

package dialog

import "os/exec"

// tool returns zenity or kdialog, whichever is on PATH.
func tool() (toolCmd, error) {
	for _, name := range []string{"zenity", "kdialog"} {
		if p, err := exec.LookPath(name); err == nil {
			if name == "zenity" {
				return zenity{p}, nil
			}
			return kdialog{p}, nil
		}
	}
	return nil, ErrUnavailable
}

type zenity struct{ path string }

func (z zenity) command(k kind, title, text, filter string) (string, []string) {
	args := []string{"--title=" + title}
	switch k {
	case kindPassword:
		// --entry --hide-text shows the prompt, unlike --password.
		args = append(args, "--entry", "--hide-text", "--text="+text)
	case kindFile:
		args = append(args, "--file-selection")
		if filter != "" {
			args = append(args, "--file-filter="+filter+" | "+filter, "--file-filter=All files | *")
		}
	case kindInfo:
		args = append(args, "--info", "--no-markup", "--text="+text)
	case kindError:
		args = append(args, "--error", "--no-markup", "--text="+text)
	}
	return z.path, args
}

type kdialog struct{ path string }

func (d kdialog) command(k kind, title, text, filter string) (string, []string) {
	args := []string{"--title", title}
	switch k {
	case kindPassword:
		args = append(args, "--password", text)
	case kindFile:
		if filter == "" {
			filter = "*"
		}
		args = append(args, "--getopenfilename", ".", filter)
	case kindInfo:
		args = append(args, "--msgbox", text)
	case kindError:
		args = append(args, "--error", text)
	}
	return d.path, args
}
