// Package dovecottest starts a real Dovecot IMAP server on 127.0.0.1 for
// ipsync's interop tests.
//
// Tests call Start, which runs Dovecot whenever it is installed. Where it is
// not, the test is skipped with a line on standard error as well as in the
// test log, and with the environment variable CI set (as .ci/run does) the
// skip is a failure instead. The server runs from a temporary directory with
// its own configuration, ports, runtime and state directories — plaintext
// LOGIN on 127.0.0.1 only, maildir storage, one passwd-file user — so a
// system Dovecot on the same machine (ports 143/993, /run/dovecot) neither
// disturbs it nor is touched by it. t.Cleanup stops exactly the process
// Start started, by its PID.
package dovecottest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running Dovecot.
type Server struct {
	// Addr is the IMAP listener, "127.0.0.1:port".
	Addr string
	// User and Password log in; the mailbox is INBOX.
	User, Password string
	// Dir holds the configuration, logs and mail.
	Dir string
}

// Options tune the server; the zero value is Dovecot's defaults.
type Options struct {
	// MaxUserIPConnections sets mail_max_userip_connections (Dovecot's
	// default is 10); 0 keeps the default.
	MaxUserIPConnections int
	// ExtraConfig is appended to dovecot.conf; a setting given again there
	// replaces the default above it (see OAuth2Config).
	ExtraConfig string
}

// Start runs Dovecot for the test, or skips the test (see the package doc).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		const why = "Dovecot is not installed (apt-get install dovecot-imapd)"
		if ci := os.Getenv("CI"); ci != "" {
			t.Fatalf("%s: %s, and CI=%q makes that a failure", t.Name(), why, ci)
		}
		// Visible without -v too (go test shows a package's output
		// when it runs in the current directory or fails).
		fmt.Fprintf(os.Stderr, "SKIP %s: %s\n", t.Name(), why)
		t.Skip(why + "; skipping the real Dovecot test. Set CI=true to make this a failure.")
	}
	dir, err := os.MkdirTemp("", "ipsync-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), User: "ipsync@example.test", Password: "dovecot-test-password", Dir: dir}

	uid, gid, owner := os.Getuid(), os.Getgid(), ""
	if uid == 0 {
		// Dovecot will not store mail as root: use nobody.
		uid, gid = 65534, 65534
	} else if u, err := user.Current(); err == nil {
		owner = u.Username
	}
	mail := filepath.Join(dir, "mail")
	if err := os.MkdirAll(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, uid, gid); err != nil && os.Getuid() == 0 {
		t.Fatal(err)
	}
	passwd := fmt.Sprintf("%s:{PLAIN}%s::::::\n", s.User, s.Password)
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	var extra strings.Builder
	if owner != "" {
		fmt.Fprintf(&extra, "default_login_user = %s\ndefault_internal_user = %s\n", owner, owner)
	}
	if opts.MaxUserIPConnections > 0 {
		fmt.Fprintf(&extra, "mail_max_userip_connections = %d\n", opts.MaxUserIPConnections)
	}
	extra.WriteString(opts.ExtraConfig)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[2]d gid=%[3]d home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[4]d
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
%[5]s`, dir, uid, gid, port, extra.String())
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := waitListening(ctx, s.Addr, exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		so, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
		t.Fatalf("dovecot did not start: %v\n%s%s", err, so, log)
	}
	return s
}

// Binary returns the path of the dovecot program, or "" if it is not
// installed. It looks in PATH and then in /usr/sbin (not in every user's
// PATH).
func Binary() string {
	if bin, err := exec.LookPath("dovecot"); err == nil {
		return bin
	}
	if fi, err := os.Stat("/usr/sbin/dovecot"); err == nil && !fi.IsDir() {
		return "/usr/sbin/dovecot"
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening dials addr until it answers, the process exits or ctx ends.
func waitListening(ctx context.Context, addr string, exited <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("dovecot exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("nothing listens on %s: %w", addr, ctx.Err())
		case <-tick.C:
		}
	}
}
