package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileRefusesExisting(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")
	if err := WriteFile(path, []byte("a: 1\n"), false); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("b: 2\n"), false); !errors.Is(err, ErrExists) {
		t.Errorf("WriteFile over an existing file = %v, want ErrExists", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "a: 1\n" {
		t.Errorf("after a refused write the file holds %q", data)
	}
	if err := WriteFile(path, []byte("b: 2\n"), true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "b: 2\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("overwritten file = %q mode %o, want %q 0600", data, fi.Mode().Perm(), "b: 2\n")
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %o, want 0700", di.Mode().Perm())
	}
}

func TestAddRecipientKeepsComments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, wantTo string
		changed          bool
	}{
		{"no publisher section", "# the office server\nrole: server\nname: office # short\nmail:\n  address: a@x.test\n  password: env:P\n  smtp: {host: smtp.x.test}\n  imap: {host: imap.x.test}\n",
			"to:\n    - a@x.test\n    - pc3@x.test", true},
		{"existing list", "role: server\nname: office\nmail:\n  address: a@x.test\n  password: env:P\n  smtp: {host: smtp.x.test}\n  imap: {host: imap.x.test}\npublisher:\n  # one mailbox per PC\n  to: [pc1@x.test]\n",
			"to: [pc1@x.test, pc3@x.test]", true},
		{"already there", "role: server\nname: office\nmail:\n  address: a@x.test\n  password: env:P\n  smtp: {host: smtp.x.test}\n  imap: {host: imap.x.test}\npublisher:\n  to:\n    - PC3@x.test\n",
			"- PC3@x.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "server.yaml")
			if err := os.WriteFile(path, []byte(tt.in), 0o640); err != nil {
				t.Fatal(err)
			}
			changed, err := AddRecipient(path, "pc3@x.test")
			if err != nil || changed != tt.changed {
				t.Fatalf("AddRecipient = %v, %v; want %v, nil", changed, err, tt.changed)
			}
			data, _ := os.ReadFile(path)
			out := string(data)
			if !strings.Contains(out, tt.wantTo) {
				t.Errorf("file after AddRecipient:\n%s\nwant it to contain %q", out, tt.wantTo)
			}
			for _, line := range strings.Split(tt.in, "\n") {
				if _, c, ok := strings.Cut(line, "#"); ok && !strings.Contains(out, "#"+c) {
					t.Errorf("comment %q lost:\n%s", c, out)
				}
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(cfg.Publisher.To, ","), "pc3@x.test") && tt.changed {
				t.Errorf("publisher.to = %v", cfg.Publisher.To)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode changed to %o", fi.Mode().Perm())
			}
		})
	}
}
