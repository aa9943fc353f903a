package fetcher

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ipsync/codec"
)

// maxHookOutput bounds how much of an on_change command's output is logged.
const maxHookOutput = 4 << 10

// runHook starts the on_change command for a change from prev to p, in the
// background: one command at a time, and a change superseded by a newer one
// before its turn is skipped. The command gets its argv as configured (no
// shell) and the addresses only through its environment.
func (f *Fetcher) runHook(ctx context.Context, prev, p codec.Payload) {
	if len(f.o.OnChange) == 0 {
		return
	}
	f.mu.Lock()
	f.hookGen++
	gen := f.hookGen
	f.mu.Unlock()
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		f.hookMu.Lock()
		defer f.hookMu.Unlock()
		f.mu.Lock()
		latest := f.hookGen
		f.mu.Unlock()
		if gen != latest {
			return
		}
		f.execHook(ctx, prev, p)
	}()
}

func addrEnv(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (f *Fetcher) execHook(ctx context.Context, prev, p codec.Payload) {
	ctx, cancel := context.WithTimeout(ctx, f.o.HookTimeout)
	defer cancel()
	argv := f.o.OnChange
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(hookEnv(os.Environ(), f.o.HookEnvExclude, runtime.GOOS == "windows"),
		"IPSYNC_NAME="+p.Name,
		"IPSYNC_IPV4="+addrEnv(p.IPv4),
		"IPSYNC_IPV6="+addrEnv(p.IPv6),
		"IPSYNC_PREVIOUS_IPV4="+addrEnv(prev.IPv4),
		"IPSYNC_PREVIOUS_IPV6="+addrEnv(prev.IPv6),
	)
	out := &boundedBuffer{max: maxHookOutput}
	start := time.Now()
	err := runGroup(cmd, out)
	attrs := []any{"command", argv[0], "duration", time.Since(start).Round(time.Millisecond), "output", out.String()}
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		f.log.Warn("on_change command failed", append(attrs, "err", err)...)
		return
	}
	f.log.Info("on_change command ran", attrs...)
}

// hookOutputWait bounds how long output is still read after the command and
// its process group have ended (only a process that left the group can keep
// the pipe open that long).
const hookOutputWait = 2 * time.Second

// runGroup runs cmd in a process group of its own (a job object on
// Windows), its output and errors into out. When cmd exits, or its context
// ends (timeout, or ipsync stopping), every process left in the group is
// killed: an on_change command cannot leave anything running behind it.
// The output goes through a pipe of our own rather than one of os/exec, so
// a leftover process holding it does not delay Wait.
func runGroup(cmd *exec.Cmd, out io.Writer) error {
	g, err := newProcGroup(cmd)
	if err != nil {
		return err
	}
	defer g.close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("output pipe: %w", err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, pr)
	}()
	if err := g.started(); err != nil {
		// Not in the group (on Windows: suspended outside the job).
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	err = cmd.Wait()
	g.close()
	wait := time.NewTimer(hookOutputWait)
	defer wait.Stop()
	select {
	case <-copied:
	case <-wait.C:
	}
	return err
}

// hookEnv returns environ ("NAME=value" entries) without the variables
// named in exclude; foldCase matches names without regard to case (as
// Windows does).
func hookEnv(environ, exclude []string, foldCase bool) []string {
	if len(exclude) == 0 {
		return environ
	}
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name == "" && strings.HasPrefix(kv, "=") {
			// Windows keeps per-drive directories as "=C:=C:\dir".
			name, _, _ = strings.Cut(kv[1:], "=")
			name = "=" + name
		}
		if !slices.ContainsFunc(exclude, func(x string) bool {
			return x == name || foldCase && strings.EqualFold(x, name)
		}) {
			out = append(out, kv)
		}
	}
	return out
}

// boundedBuffer keeps the first max bytes written to it and counts the rest.
type boundedBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(p), b.max-len(b.buf))
	b.buf = append(b.buf, p[:n]...)
	b.dropped += len(p) - n
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := string(b.buf)
	if b.dropped > 0 {
		s += "…(" + strconv.Itoa(b.dropped) + " more bytes)"
	}
	return s
}
