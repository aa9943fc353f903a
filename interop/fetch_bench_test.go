package interop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"ipsync/codec"
	"ipsync/internal/dovecottest"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// dovecotCPU returns the CPU time used so far by the Dovecot instance of
// e (its master process, the children it has reaped, and those still
// running), read from /proc. An IMAP session's process counts once it has
// exited and been reaped, or while it runs.
func (e *env) dovecotCPU() time.Duration {
	e.t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		e.t.Fatalf("read /proc: %v", err)
	}
	type stat struct {
		ppid                         int
		utime, stime, cutime, cstime int64
	}
	stats := map[int]stat{}
	master := 0
	conf := filepath.Join(e.srv.Dir, "dovecot.conf")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 15 {
			continue
		}
		num := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
		// f[0] is the state (field 3); utime is field 14, so f[11].
		stats[pid] = stat{ppid: int(num(1)), utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}
		if cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline")); err == nil && bytes.Contains(cmd, []byte(conf)) && bytes.HasSuffix(bytes.Split(cmd, []byte{0})[0], []byte("dovecot")) {
			master = pid
		}
	}
	m, ok := stats[master]
	if !ok {
		e.t.Fatalf("dovecot master process (config %s) not found in /proc", conf)
	}
	ticks := m.utime + m.stime + m.cutime + m.cstime
	for _, s := range stats {
		if s.ppid == master {
			ticks += s.utime + s.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// BenchmarkDovecotFetchCost measures one FetchOnce on Dovecot mailboxes of
// 10 and 50,000 messages (old heartbeats that arrived when issued, every
// tenth an unrelated mail, the genuine newest on top), by a client without
// state (fresh) and by one whose state file has seen the mailbox (state):
// time per fetch, Dovecot's CPU per fetch (from /proc, warm cache: one
// fetch runs before timing), IMAP commands and bytes.
func BenchmarkDovecotFetchCost(b *testing.B) {
	e := newEnv(b, dovecottest.Options{})
	px := startProxy(b, e.srv.Addr)
	now := time.Now()
	for _, n := range []int{10, 50000} {
		mailbox := fmt.Sprintf("Cost%d", n)
		e.seedMaildir(mailbox, n-1, now)
		e.admin.mustAppend(mailbox, e.sealedMail(payload(uint64(n), v4(200), now)))
		for _, client := range []string{"fresh", "state", "bare", "bare-read1"} {
			b.Run(fmt.Sprintf("messages=%d/client=%s", n, client), func(b *testing.B) {
				o := e.fetcherOptions(px.endpoint(b))
				o.Mailbox = mailbox
				if client == "state" {
					o.StatePath = filepath.Join(b.TempDir(), "state.json")
				}
				fetch := func() {
					if client == "bare" || client == "bare-read1" {
						bareExamine(b, px, e.srv.User, e.srv.Password, mailbox, client == "bare-read1")
						return
					}
					got, err := fetchOnce(b, e.newFetcher(o))
					if err != nil || got.Seq != uint64(n) {
						b.Fatalf("FetchOnce(%d messages) = seq %d, %v", n, got.Seq, err)
					}
				}
				fetch() // warm Dovecot's cache; with state, fill the state file
				px.Reset()
				cpu0 := e.settledCPU()
				b.ResetTimer()
				for range b.N {
					fetch()
				}
				b.StopTimer()
				cpu := e.settledCPU() - cpu0
				st := px.Stats()
				b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "dovecot-cpu-ms/op")
				b.ReportMetric(float64(st.Commands)/float64(b.N), "cmds/op")
				b.ReportMetric(float64(st.BytesUp+st.BytesDown)/float64(b.N), "imap-bytes/op")
			})
		}
	}
}

// bareExamine is the floor of any client: LOGIN, EXAMINE, LOGOUT; with
// read1, the floor of a client that reads the newest message: a UID FETCH
// of its text in between.
func bareExamine(b *testing.B, px *proxy, user, password, mailbox string, read1 bool) {
	ep := px.endpoint(b)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	if err != nil {
		b.Fatal(err)
	}
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		b.Fatal(err)
	}
	data, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		b.Fatal(err)
	}
	if read1 {
		top := imap.UIDSetNum(data.UIDNext - 1)
		if _, err := c.Fetch(top, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		b.Fatal(err)
	}
}

// settledCPU is dovecotCPU once Dovecot has finished the sessions that
// ended (their processes exit and are reaped a little after LOGOUT): it
// waits until two reads 100 ms apart agree, for at most 5 s.
func (e *env) settledCPU() time.Duration {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := e.dovecotCPU()
	for range 50 {
		<-tick.C
		cur := e.dovecotCPU()
		if cur == last {
			return cur
		}
		last = cur
	}
	return last
}

// BenchmarkDovecotFetchOnceUnderJunk runs the real `ipsync fetch --once`
// binary, as a fresh client (no state), against a Dovecot mailbox holding a
// genuine message under 10,000 junk messages with the ipsync subject, half
// of them 100 KiB: wall time per run, bytes downloaded (IMAP, through a
// counting proxy) and the peak RSS of the process (rusage maxrss).
// Targets (issue 9): ≤ 5 s, ≤ 5 MB, ≤ 60 MiB.
func BenchmarkDovecotFetchOnceUnderJunk(b *testing.B) {
	e := newEnv(b, dovecottest.Options{})
	px := startProxy(b, e.srv.Addr)
	bin := buildIpsync(b)
	now := time.Now()
	mailbox := "INBOX"
	dir := filepath.Join(e.srv.Dir, "mail", e.srv.User)
	e.admin.appendAt(mailbox, e.sealedMail(payload(42, v4(42), now.Add(-time.Hour))), now.Add(-time.Hour))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		b.Fatal(err)
	}
	other, _ := codec.GenerateServerKey(nil)
	small := e.junkMail(other, 0, false, now)
	large := e.junkMail(other, 1, true, now)
	e.seedFiles(mailbox, dir, 10000,
		func(i int) []byte {
			if i%2 == 1 {
				return large
			}
			return small
		},
		func(i int) time.Time { return now.Add(-time.Hour + time.Duration(i+1)*time.Second/4) })
	cfgDir := b.TempDir()
	ep := px.endpoint(b)
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(data), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	write("client.key", e.ck.Text()+"\n")
	write("password", e.srv.Password+"\n")
	var peak int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// A fresh client each run: a new state directory.
		write("client.yaml", fmt.Sprintf(`role: client
name: %s
state_dir: state-%d
mail:
  address: %s
  password: file:password
  imap: {host: %s, port: %d, tls: none}
codec:
  key: file:client.key
`, serverName, i, e.srv.User, ep.Host, ep.Port))
		px.Reset()
		cmd := exec.Command(bin, "fetch", "--once", "--config", filepath.Join(cfgDir, "client.yaml"))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		b.StartTimer()
		err := cmd.Run()
		b.StopTimer()
		if err != nil || !strings.HasPrefix(out.String(), "office "+v4(42).String()+" (seq 42,") {
			b.Fatalf("ipsync fetch --once = %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
		}
		peak = max(peak, peakRSSKiB(cmd.ProcessState))
		b.ReportMetric(float64(px.Stats().BytesDown)/1e6, "MB-down/op")
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
}

// buildIpsync builds the ipsync binary into a temporary directory.
func buildIpsync(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "ipsync")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "ipsync")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
