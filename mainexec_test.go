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

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		os.Exit(realMain(argv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// childEnvFor returns the environment entry that runs `ipsync args...`.
func childEnvFor(args ...string) string {
	b, err := json.Marshal(args)
	if err != nil {
		panic(err)
	}
	return childEnv + "=" + string(b)
}
