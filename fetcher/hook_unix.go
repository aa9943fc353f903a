//go:build unix

package fetcher

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// procGroup runs an on_change command in a process group of its own, so
// that it and everything it starts (unless something leaves the group on
// purpose, with setsid or setpgid) can be killed together.
type procGroup struct {
	cmd *exec.Cmd
}

// newProcGroup prepares cmd (before Start) to lead a new process group, and
// makes the end of its context kill the whole group rather than only cmd.
func newProcGroup(cmd *exec.Cmd) (*procGroup, error) {
	g := &procGroup{cmd: cmd}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = g.kill
	return g, nil
}

// started is called after cmd.Start succeeded. The group exists from the
// child's first instruction, so there is nothing left to do.
func (g *procGroup) started() error { return nil }

// kill sends SIGKILL to every process of the group. The group's id is the
// leader's PID, which the kernel does not hand out again while any member
// of the group lives; a group already gone gives os.ErrProcessDone.
func (g *procGroup) kill() error {
	if g.cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// close kills what is left of the group once the command has ended.
func (g *procGroup) close() { _ = g.kill() }
