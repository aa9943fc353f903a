package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ipsync/codec"
	"ipsync/config"
)

// startRun runs run in the background and returns the client config path
// from the ready line, and a stop function that cancels run and returns its
// error.
func startRun(t *testing.T, dir string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--dir", dir, "--name", "lab"}, pw, io.Discard)
		pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, pr)
	}()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("run did not return within 10s of cancel")
		}
	}
	select {
	case line := <-lines:
		path, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
		if !ok {
			stop()
			t.Fatalf("first line of run = %q, want \"ready PATH\"", line)
		}
		return path, stop
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("no ready line within 10s")
		return "", nil
	}
}

func TestRunWritesWorkingConfigs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	clientPath, stop := startRun(t, dir)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run after cancel = %v, want nil", err)
		}
	})
	if want := filepath.Join(dir, "client.yaml"); clientPath != want {
		t.Errorf("ready path = %q, want %q", clientPath, want)
	}

	t.Run("configs", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			file string
			role config.Role
		}{
			{"server.yaml", config.RoleServer},
			{"client.yaml", config.RoleClient},
		}
		for _, tt := range tests {
			t.Run(tt.file, func(t *testing.T) {
				t.Parallel()
				cfg, err := config.Load(filepath.Join(dir, tt.file))
				if err != nil {
					t.Fatalf("config.Load(%s) = %v, want nil", tt.file, err)
				}
				if cfg.Role != tt.role || cfg.Name != "lab" {
					t.Errorf("config.Load(%s) role, name = %s, %s; want %s, lab", tt.file, cfg.Role, cfg.Name, tt.role)
				}
				if got, want := cfg.CAFile(), filepath.Join(dir, "ca.pem"); got != want {
					t.Errorf("config.Load(%s).CAFile() = %q, want %q", tt.file, got, want)
				}
				if tt.role == config.RoleClient {
					if cfg.Fetcher.Idle != "off" || cfg.Fetcher.PollEvery.D() != time.Hour {
						t.Errorf("client fetcher idle, poll_every = %s, %s; want off, 1h", cfg.Fetcher.Idle, cfg.Fetcher.PollEvery.D())
					}
				}
			})
		}
	})

	t.Run("keys", func(t *testing.T) {
		t.Parallel()
		serverText, err := os.ReadFile(filepath.Join(dir, "server.key"))
		if err != nil {
			t.Fatal(err)
		}
		clientText, err := os.ReadFile(filepath.Join(dir, "client.key"))
		if err != nil {
			t.Fatal(err)
		}
		sk, err := codec.ParseServerKey(strings.TrimSpace(string(serverText)))
		if err != nil {
			t.Fatalf("ParseServerKey(server.key) = %v, want nil", err)
		}
		if got, want := strings.TrimSpace(string(clientText)), sk.ClientKey().Text(); got != want {
			t.Errorf("client.key does not belong to server.key: got %.20s…, want %.20s…", got, want)
		}
		for _, f := range []string{"password", "server.key", "client.key"} {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("mode of %s = %o, want 600", f, got)
			}
		}
	})

	t.Run("imap greeting over TLS", func(t *testing.T) {
		t.Parallel()
		cfg, err := config.Load(clientPath)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := os.ReadFile(cfg.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatal("ca.pem holds no certificate")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: cfg.Mail.IMAP.Host}}
		addr := net.JoinHostPort(cfg.Mail.IMAP.Host, fmt.Sprint(cfg.Mail.IMAP.Port))
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("TLS dial %s trusting ca.pem = %v, want nil", addr, err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		greeting, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(greeting, "* OK") {
			t.Errorf("IMAP greeting = %q, %v; want \"* OK…\", nil", greeting, err)
		}
	})
}

func TestRunRejectsBadArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no dir", nil},
		{"extra argument", []string{"--dir", t.TempDir(), "extra"}},
		{"unknown flag", []string{"--nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tt.args, io.Discard, io.Discard)
			if err == nil {
				t.Errorf("run(%q) = nil, want an error", tt.args)
			}
		})
	}
}
