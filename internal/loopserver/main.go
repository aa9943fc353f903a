// loopserver runs loopmail and writes a matching ipsync client config, for the Wine and screenshot scripts.
//
// Usage:
//
//	go run ./internal/loopserver --dir DIR [--name NAME]
//
// It starts loopmail's SMTP and IMAP servers on 127.0.0.1 (implicit TLS with
// a throw-away certificate), makes a fresh server key and writes into DIR:
//
//	ca.pem         the server certificate, which clients trust via mail.ca_file
//	password       the mailbox password (mode 0600)
//	server.key     the server key (mode 0600)
//	client.key     its client key (mode 0600)
//	server.yaml    a server config: `ipsync publish --once --config DIR/server.yaml --ip ADDR`
//	client.yaml    a client config that only polls once an hour (idle: off), so
//	               that after the first read only "Fetch now" brings new mail
//
// Every path inside the configs is relative to DIR, so the same client.yaml
// works for a Windows build under Wine (read through Z:\). When everything is
// ready it prints "ready <DIR>/client.yaml" on stdout and serves until it
// receives SIGINT or SIGTERM. It never listens beyond 127.0.0.1.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"ipsync/codec"
	"ipsync/loopmail"
)

// user is the one mailbox of the server.
const user = "ipsync@loop.test"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopserver:", err)
		os.Exit(1)
	}
}

// run parses args, starts the server, writes the files, prints the ready
// line to stdout and blocks until ctx ends. Logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loopserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the certificate, keys and configs (required; created if missing)")
	name := fs.String("name", "office", "the server name written into both configs")
	verbose := fs.Bool("verbose", false, "log every SMTP and IMAP exchange to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return errors.New("usage: loopserver --dir DIR [--name NAME] [--verbose] (--dir is required; no arguments)")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("resolve --dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create --dir: %w", err)
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return fmt.Errorf("make password: %w", err)
	}
	password := hex.EncodeToString(pw)
	srv, err := loopmail.Start(ctx, loopmail.Options{
		Users:   map[string]string{user: password},
		SMTPTLS: loopmail.TLSImplicit,
		IMAPTLS: loopmail.TLSImplicit,
		Logger:  log,
	})
	if err != nil {
		return fmt.Errorf("start mail server: %w", err)
	}
	defer srv.Close()

	key, err := codec.GenerateServerKey(nil)
	if err != nil {
		return fmt.Errorf("generate server key: %w", err)
	}
	smtpPort, err := port(srv.SMTPAddr())
	if err != nil {
		return err
	}
	imapPort, err := port(srv.IMAPAddr())
	if err != nil {
		return err
	}
	mail := fmt.Sprintf(`mail:
  address: %s
  password: file:password
  ca_file: ca.pem
  smtp: {host: 127.0.0.1, port: %s, tls: implicit}
  imap: {host: 127.0.0.1, port: %s, tls: implicit}
`, user, smtpPort, imapPort)
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"ca.pem", string(srv.CertPEM()), 0o644},
		{"password", password + "\n", 0o600},
		{"server.key", key.Text() + "\n", 0o600},
		{"client.key", key.ClientKey().Text() + "\n", 0o600},
		{"server.yaml", fmt.Sprintf("# Written by internal/loopserver.\nrole: server\nname: %s\nstate_dir: server-state\n%scodec:\n  key: file:server.key\npublisher:\n  keep_messages: 0\nnotify:\n  enabled: false\n", *name, mail), 0o644},
		{"client.yaml", fmt.Sprintf("# Written by internal/loopserver.\nrole: client\nname: %s\nstate_dir: client-state\n%scodec:\n  key: file:client.key\nfetcher:\n  idle: off\n  poll_every: 1h\nnotify:\n  enabled: false\n", *name, mail), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(abs, f.name), []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	fmt.Fprintf(stdout, "ready %s\n", filepath.Join(abs, "client.yaml"))
	log.Info("serving", "smtp", srv.SMTPAddr(), "imap", srv.IMAPAddr(), "dir", abs)
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		return fmt.Errorf("stop mail server: %w", err)
	}
	return nil
}

// port returns the port of a "host:port" address.
func port(addr string) (string, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("read listener address %q: %w", addr, err)
	}
	return p, nil
}
