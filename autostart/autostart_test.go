package autostart

import (
	"path/filepath"
	"testing"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
	}{
		{"empty name", Options{Executable: "/x/ipsync"}},
		{"slash in name", Options{Name: "../evil", Executable: "/x/ipsync"}},
		{"relative executable", Options{Name: "ipsync-client", Executable: "ipsync"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.opts); err == nil {
				t.Errorf("New(%+v) error = nil, want an error", tt.opts)
			}
		})
	}
}

func TestNewDefaultExecutable(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	e, err := New(Options{Name: "ipsync-client"})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	if !filepath.IsAbs(e.opts.Executable) {
		t.Errorf("default Executable = %q, want an absolute path", e.opts.Executable)
	}
}
