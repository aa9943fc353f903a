// Package icons holds ipsync's tray and notification icons, one per role and
// state, embedded in the binary.
//
// Names are "<role>-<state>": role is "client" or "server"; state is one of
// "unknown", "current", "stale", "unreachable", "error", "working", and, for
// the server only, "paused". The images are drawn by ./gen (run `go generate`)
// and committed: png/ holds 64×64 PNGs (Linux, macOS, notifications) and ico/
// holds Windows icons with 16, 24, 32 and 48 pixel images.
package icons

//go:generate go run ./gen

import (
	"embed"
	"io/fs"
	"runtime"
	"sort"
	"strings"
)

//go:embed png/*.png ico/*.ico
var files embed.FS

// For returns the tray icon called name in the format the platform's tray
// wants: ICO on Windows, PNG elsewhere. It returns nil for an unknown name.
func For(name string) []byte {
	if runtime.GOOS == "windows" {
		return ICO(name)
	}
	return PNG(name)
}

// PNG returns the 64×64 PNG image called name, or nil if there is none.
func PNG(name string) []byte { return read("png/" + name + ".png") }

// ICO returns the Windows icon called name, or nil if there is none.
func ICO(name string) []byte { return read("ico/" + name + ".ico") }

// Names lists every icon name, sorted.
func Names() []string {
	entries, err := fs.ReadDir(files, "png")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".png"))
	}
	sort.Strings(names)
	return names
}

func read(path string) []byte {
	b, err := files.ReadFile(path)
	if err != nil {
		return nil
	}
	return b
}
