//go:build !windows

package autostart

import (
	"fmt"
	"runtime"
)

func newPlatform(name string) (impl, error) {
	switch runtime.GOOS {
	case "darwin":
		path, err := launchAgentPath(name)
		if err != nil {
			return nil, fmt.Errorf("autostart: find the LaunchAgents folder: %w", err)
		}
		return launchAgent{label: name, path: path}, nil
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly", "illumos", "solaris":
		dir, err := xdgDir()
		if err != nil {
			return nil, fmt.Errorf("autostart: find the autostart folder: %w", err)
		}
		return xdg{path: dir + "/" + name + ".desktop"}, nil
	}
	return nil, ErrUnsupported
}
