//go:build linux

package main

import (
	"encoding/json"
	"os"
	"testing"
)

// childEnv, when set in the environment, makes this test binary run
// realMain with the JSON-encoded argument list it holds instead of the
// tests: tests start the real `ipsync` as a subprocess without building it.
const childEnv = "IPSYNC_TEST_RUN_MAIN"

// detachedLogEnv, when set in a child's environment, makes the child record
// the processes it would start detached (one JSON argument list per line
// in that file) instead of starting them: a test sees what a child started
// without leaving processes behind.
const detachedLogEnv = "IPSYNC_TEST_DETACHED_LOG"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		if log := os.Getenv(detachedLogEnv); log != "" {
			startDetached = func(exe string, args []string) error {
				line, _ := json.Marshal(args)
				f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = f.Write(append(line, '\n'))
				return err
			}
		}
		os.Exit(realMain(argv, os.Stdout, os.Stderr))
	}
	// The locks of cmd_instance.go go to a folder of this run, not the
	// user's (children inherit it).
	cache, err := os.MkdirTemp("", "ipsync-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", cache)
	code := m.Run()
	os.RemoveAll(cache)
	os.Exit(code)
}

// childEnvFor returns the environment entry that runs `ipsync args...`.
func childEnvFor(args ...string) string {
	b, err := json.Marshal(args)
	if err != nil {
		panic(err)
	}
	return childEnv + "=" + string(b)
}
