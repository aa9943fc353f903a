//go:build !unix && !windows

package fetcher

import "os/exec"

// procGroup: this platform has neither process groups nor job objects
// here; the command alone is killed on timeout.
type procGroup struct{}

func newProcGroup(*exec.Cmd) (*procGroup, error) { return &procGroup{}, nil }
func (*procGroup) started() error                { return nil }
func (*procGroup) close()                        {}
