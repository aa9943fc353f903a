package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleClientResources runs a headless `ipsync client` watching a
// loopback mailbox (IMAP IDLE) and reports its resident memory and the CPU
// it uses per idle minute, against the product's targets of RSS ≤ 20 MiB
// and CPU ≤ 50 ms per idle minute. The child is the real binary, built stripped as `make
// build` does. The window is IPSYNC_BENCH_IDLE (default 20s).
func BenchmarkIdleClientResources(b *testing.B) {
	window := 20 * time.Second
	if v := os.Getenv("IPSYNC_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		window = d
	}
	e := newE2E(b)
	if code, _, errOut := runCLI(b, "publish", "--once", "--config", e.serverCfg, "--ip", "8.8.4.4"); code != exitOK {
		b.Fatalf("publish: %d %s", code, errOut)
	}
	bin := filepath.Join(b.TempDir(), "ipsync")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	if fi, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	}
	b.ResetTimer()
	for range b.N {
		rssKiB, cpuPerMin := measureIdleClient(b, bin, e.clientCfg, window)
		b.ReportMetric(float64(rssKiB)/1024, "RSS-MiB")
		b.ReportMetric(float64(cpuPerMin)/float64(time.Millisecond), "CPU-ms/idle-min")
	}
}

func measureIdleClient(b *testing.B, bin, cfg string, window time.Duration) (rssKiB int64, cpuPerMin time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), window+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "client", "--headless", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	// Idle means: the address is shown and IDLE is running.
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		current, idle, signalled := false, false, false
		for sc.Scan() {
			l := sc.Text()
			current = current || strings.Contains(l, "state=current")
			idle = idle || strings.Contains(l, "mode=idle")
			if current && idle && !signalled {
				close(ready)
				signalled = true
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		b.Fatal("the client did not reach the idle state")
	}
	pid := cmd.Process.Pid
	cpu0 := procCPU(b, pid)
	select {
	case <-time.After(window):
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	cpu1 := procCPU(b, pid)
	return procRSS(b, pid), time.Duration(float64(cpu1-cpu0) * float64(time.Minute) / float64(window))
}

// procCPU returns user+system CPU time of pid from /proc.
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

// procRSS returns VmRSS of pid in KiB.
func procRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
