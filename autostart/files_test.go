//go:build !windows

package autostart

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestXDG runs the real Linux entry in a temporary XDG_CONFIG_HOME.
func TestXDG(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("XDG autostart is the Linux entry")
	}
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	e, err := New(Options{
		Name:        "ipsync-client",
		DisplayName: "ipsync client",
		Comment:     "Shows the current address of office",
		Executable:  "/opt/ip sync/ipsync",
		Args:        []string{"client", "--config", "/home/u/My Config/ipsync.yaml"},
	})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	path := filepath.Join(cfg, "autostart", "ipsync-client.desktop")
	if got := e.Location(); got != path {
		t.Errorf("Location() = %q, want %q", got, path)
	}
	checkEnabled(t, e, false)

	if err := e.SetEnabled(true); err != nil {
		t.Fatalf("SetEnabled(true) error = %v", err)
	}
	checkEnabled(t, e, true)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "[Desktop Entry]\nType=Application\nName=ipsync client\n" +
		"Comment=Shows the current address of office\n" +
		`Exec="/opt/ip sync/ipsync" client --config "/home/u/My Config/ipsync.yaml"` + "\n" +
		"Terminal=false\nX-GNOME-Autostart-enabled=true\n"
	if got := string(b); got != want {
		t.Errorf("desktop file = %q, want %q", got, want)
	}
	if err := e.SetEnabled(true); err != nil {
		t.Fatalf("second SetEnabled(true) error = %v", err)
	}
	checkEnabled(t, e, true)

	// Desktop settings may switch the entry off without deleting it.
	if err := os.WriteFile(path, append(b, []byte("Hidden=true\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	checkEnabled(t, e, false)
	if err := e.SetEnabled(true); err != nil {
		t.Fatalf("SetEnabled(true) over a hidden entry error = %v", err)
	}
	checkEnabled(t, e, true)

	if err := e.SetEnabled(false); err != nil {
		t.Fatalf("SetEnabled(false) error = %v", err)
	}
	checkEnabled(t, e, false)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after SetEnabled(false), Stat(%q) error = %v, want not exist", path, err)
	}
	if err := e.SetEnabled(false); err != nil {
		t.Errorf("SetEnabled(false) without an entry error = %v, want nil", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("autostart dir holds %d files after removal, want 0 (no temp files left)", len(entries))
	}
}

func TestXDGDefaultDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"", "relative/dir"} {
		t.Setenv("XDG_CONFIG_HOME", v)
		got, err := xdgDir()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(home, ".config", "autostart"); got != want {
			t.Errorf("xdgDir() with XDG_CONFIG_HOME=%q = %q, want %q", v, got, want)
		}
	}
}

func TestDesktopExec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"plain", []string{"/usr/bin/ipsync", "client"}, `/usr/bin/ipsync client`},
		{"space", []string{"/opt/my apps/ipsync", "server"}, `"/opt/my apps/ipsync" server`},
		{"percent", []string{"/x/ipsync", "--config", "/c/100%.yaml"}, `/x/ipsync --config /c/100%%.yaml`},
		{"dollar and quote", []string{"/x/ip$ync", `a"b`}, `"/x/ip\\$ync" "a\\"b"`},
		{"backslash", []string{`/x/a\b`}, `"/x/a\\\\b"`},
		{"empty", []string{"/x/ipsync", ""}, `/x/ipsync ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := desktopExec(tt.argv); got != tt.want {
				t.Errorf("desktopExec(%q) = %s, want %s", tt.argv, got, tt.want)
			}
		})
	}
}

func TestLaunchAgent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "LaunchAgents", "ipsync-server.plist")
	e := &Entry{
		opts: Options{Name: "ipsync-server", Executable: "/Applications/ipsync & co/ipsync", Args: []string{"server", "--config", "/Users/u/<cfg>.yaml"}},
		impl: launchAgent{label: "ipsync-server", path: path},
	}
	checkEnabled(t, e, false)
	if err := e.SetEnabled(true); err != nil {
		t.Fatalf("SetEnabled(true) error = %v", err)
	}
	checkEnabled(t, e, true)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var plist struct {
		Dict struct {
			Keys    []string `xml:"key"`
			Strings []string `xml:"string"`
			Array   struct {
				Strings []string `xml:"string"`
			} `xml:"array"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(b, &plist); err != nil {
		t.Fatalf("xml.Unmarshal(plist) error = %v\n%s", err, b)
	}
	if got, want := plist.Dict.Array.Strings, []string{"/Applications/ipsync & co/ipsync", "server", "--config", "/Users/u/<cfg>.yaml"}; !slices.Equal(got, want) {
		t.Errorf("ProgramArguments = %q, want %q", got, want)
	}
	if got, want := plist.Dict.Keys, []string{"Label", "ProgramArguments", "RunAtLoad", "LimitLoadToSessionType", "ProcessType"}; !slices.Equal(got, want) {
		t.Errorf("keys = %q, want %q", got, want)
	}
	if len(plist.Dict.Strings) == 0 || plist.Dict.Strings[0] != "ipsync-server" {
		t.Errorf("Label = %q, want ipsync-server", plist.Dict.Strings)
	}
	if !strings.Contains(string(b), "<key>RunAtLoad</key>\n\t<true/>") {
		t.Errorf("plist lacks RunAtLoad true:\n%s", b)
	}
	if err := e.SetEnabled(false); err != nil {
		t.Fatalf("SetEnabled(false) error = %v", err)
	}
	checkEnabled(t, e, false)
}

func checkEnabled(t *testing.T, e *Entry, want bool) {
	t.Helper()
	got, err := e.Enabled()
	if err != nil {
		t.Fatalf("Enabled() error = %v", err)
	}
	if got != want {
		t.Errorf("Enabled() = %v, want %v", got, want)
	}
}
