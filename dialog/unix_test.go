//go:build !windows && !darwin

package dialog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTool puts a script called name first on PATH; it records its
// arguments (one per line) in the returned file and runs body.
func fakeTool(t *testing.T, name, body string) string {
	t.Helper()
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + args + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return args
}

func TestZenity(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		call     func() (string, error)
		want     string
		wantErr  error
		wantArgs []string
	}{
		{"password", `printf 'open sesame\n'`, func() (string, error) { return Password(t.Context(), "T", "Passphrase") },
			"open sesame", nil, []string{"--title=T", "--entry", "--hide-text", "--text=Passphrase"}},
		{"password canceled", `exit 1`, func() (string, error) { return Password(t.Context(), "T", "P") },
			"", ErrCanceled, nil},
		{"file", `printf '/home/u/pc3.ipsync\n'`, func() (string, error) { return OpenFile(t.Context(), "Choose", "*.ipsync") },
			"/home/u/pc3.ipsync", nil, []string{"--title=Choose", "--file-selection", "--file-filter=*.ipsync | *.ipsync"}},
		{"tool fails", `echo broken >&2; echo x; exit 5`, func() (string, error) { return Password(t.Context(), "T", "P") },
			"", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := fakeTool(t, "zenity", tt.body)
			got, err := tt.call()
			if tt.name == "tool fails" {
				if err == nil || errors.Is(err, ErrCanceled) || !strings.Contains(err.Error(), "broken") {
					t.Errorf("a failing tool: %q, %v; want an error naming its message", got, err)
				}
				return
			}
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("%s = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.wantErr)
			}
			if tt.wantArgs != nil {
				data, _ := os.ReadFile(args)
				for _, a := range tt.wantArgs {
					if !strings.Contains(string(data), a+"\n") {
						t.Errorf("zenity args %q lack %q", data, a)
					}
				}
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if Available() {
		t.Fatal("Available() = true with an empty PATH")
	}
	if _, err := Password(t.Context(), "T", "P"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Password with no tool = %v, want ErrUnavailable", err)
	}
}
