package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"ipsync/codec"
	"ipsync/fetcher"
	"ipsync/ipecho"
	"ipsync/loopmail"
	"ipsync/mailconn"
	"ipsync/publisher"
	"ipsync/publisher/discover"
	"ipsync/tray"
)

const demoSynopsis = `ipsync demo [--headless] [--for DURATION] [--change-every DURATION]

Runs the whole product on this machine with no mail account: a built-in
SMTP+IMAP server on 127.0.0.1 (TLS with a throw-away certificate), a stand-in
"public IP" service (HTTPS and DNS, on loopback) whose address changes every
--change-every, and both roles — the server publishing sealed messages and
the client watching the mailbox with IMAP IDLE. With a desktop the client's
tray icon shows the address. Stop with Ctrl-C, or give --for.`

// demoAddr returns the n-th address the demo's line "gets": 203.0.113.10,
// .11, … (a documentation range, so never anyone's real address).
func demoAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + n%240)})
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("demo", demoSynopsis, flagHeadless)
	runFor := fs.Duration("for", 0, "stop after `DURATION` (0: run until Ctrl-C)")
	changeEvery := fs.Duration("change-every", 10*time.Second, "change the stand-in public address every `DURATION`")
	if err := e.parseNoArgs(fs, args); err != nil {
		return err
	}
	if *changeEvery < time.Second {
		return usageErr("--change-every %s is too short; use at least 1s", *changeEvery)
	}
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	log := e.logger(true)
	d, err := startDemo(ctx, log)
	if err != nil {
		return err
	}
	defer d.close()

	fmt.Fprintf(e.stdout, `ipsync demo — everything runs on this machine, no account needed.
  mail server  smtp %s, imap %s (TLS, user %s)
  public IP    stand-in service %s and %s, changing every %s
  keys         a fresh server key (id %s)
The server role checks the address every %s and publishes sealed messages;
the client role watches the mailbox with IMAP IDLE. Lines below marked
"internet" and "client" tell the story; the rest is the log.
Press Ctrl-C to stop.

`, d.mail.SMTPAddr(), d.mail.IMAPAddr(), demoUser, d.echo.HTTPSURL(), d.echo.DNSURL(), *changeEvery, d.key.ID(), demoCheckEvery)

	u := startUI(ctx, e, log, tray.Options{
		Role:    tray.RoleClient,
		Name:    demoName,
		Actions: tray.Actions{FetchNow: d.fetcher.FetchNow},
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := d.publisher.Run(loopCtx); err != nil {
			log.Error("demo publisher stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		d.changeAddresses(loopCtx, *changeEvery, e)
	}()
	consumer := clientConsumer(u, log.With("role", "client"), demoPollEvery)
	defer fmt.Fprintln(e.stdout, "demo stopped")
	return u.run(ctx, func(ctx context.Context) error {
		return d.fetcher.Run(ctx, fetcher.ConsumerFunc(func(up fetcher.Update) {
			consumer.Update(up)
			if up.Changed {
				d.arrived(e, up.Payload.IPv4)
			}
		}))
	})
}

const (
	demoName       = "demo"
	demoUser       = "demo@ipsync.test"
	demoCheckEvery = 2 * time.Second
	demoPollEvery  = 30 * time.Second
)

// demo is the demo's running pieces.
type demo struct {
	mail      *loopmail.Server
	echo      *ipecho.Server
	key       codec.ServerKey
	publisher *publisher.Publisher
	fetcher   *fetcher.Fetcher
	dir       string

	mu      sync.Mutex
	n       int
	changed map[netip.Addr]time.Time
}

func startDemo(ctx context.Context, log *slog.Logger) (_ *demo, err error) {
	d := &demo{changed: map[netip.Addr]time.Time{}}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	cert, certPEM, err := loopmail.SelfSignedCert(time.Now())
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	pwBytes := make([]byte, 16)
	if _, err := rand.Read(pwBytes); err != nil {
		return nil, fmt.Errorf("make demo password: %w", err)
	}
	password := hex.EncodeToString(pwBytes)
	quiet := log.With("part", "demo-mail-server")
	d.mail, err = loopmail.Start(ctx, loopmail.Options{
		Users:     map[string]string{demoUser: password},
		SMTPTLS:   loopmail.TLSImplicit,
		IMAPTLS:   loopmail.TLSImplicit,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Logger:    quiet,
	})
	if err != nil {
		return nil, withCode(exitNetwork, fmt.Errorf("start the demo mail server: %w", err))
	}
	d.echo, err = ipecho.Start(ctx, ipecho.Options{Cert: cert, IPv4: demoAddr(0), Logger: quiet})
	if err != nil {
		return nil, withCode(exitNetwork, fmt.Errorf("start the demo address service: %w", err))
	}
	d.changed[demoAddr(0)] = time.Now()
	d.key, err = codec.GenerateServerKey(nil)
	if err != nil {
		return nil, err
	}
	d.dir, err = os.MkdirTemp("", "ipsync-demo-")
	if err != nil {
		return nil, fmt.Errorf("make demo state directory: %w", err)
	}
	disc, err := discover.New(discover.Options{
		Sources: []string{d.echo.HTTPSURL(), d.echo.DNSURL()},
		Agree:   2,
		IPv4:    discover.Mode("on"),
		IPv6:    discover.Mode("off"),
		HTTPClient: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		},
		// The stand-in service answers with documentation-range
		// addresses, which production validation rightly rejects.
		Allow:     discover.DocumentationRanges,
		UserAgent: discover.UserAgent(version),
		Logger:    log.With("part", "discover"),
	})
	if err != nil {
		return nil, err
	}
	imapEP := endpointOf(d.mail.IMAPAddr(), roots)
	d.publisher, err = d.newPublisher(endpointOf(d.mail.SMTPAddr(), roots), imapEP, password, disc, log.With("role", "server"))
	if err != nil {
		return nil, err
	}
	d.fetcher, err = fetcher.New(fetcher.Options{
		IMAP:      imapEP,
		Auth:      demoAuth(password),
		Name:      demoName,
		Keys:      []codec.ClientKey{d.key.ClientKey()},
		PollEvery: demoPollEvery,
		StatePath: filepath.Join(d.dir, "client.json"),
		Logger:    log.With("role", "client"),
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// newPublisher builds the demo's server role: it sends through smtp and
// keeps the newest 10 messages on imap, both as demoUser with password.
func (d *demo) newPublisher(smtp, imap mailconn.Endpoint, password string, disc *discover.Discoverer, log *slog.Logger) (*publisher.Publisher, error) {
	mailer, err := publisher.NewSMTPMailer(publisher.SMTPOptions{
		Endpoint: smtp,
		Auth:     demoAuth(password),
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	pruner, err := publisher.NewIMAPPruner(publisher.RetentionOptions{
		IMAP:         imap,
		Auth:         demoAuth(password),
		KeepMessages: 10,
		Open:         func(body string) (codec.Payload, error) { return codec.Open(body, d.key.ClientKey()) },
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	return publisher.New(publisher.Options{
		Name:           demoName,
		From:           demoUser,
		Mailer:         mailer,
		Encode:         func(p codec.Payload) (string, error) { return codec.Seal(p, d.key, nil) },
		Finder:         discoverAdapter{disc},
		CheckEvery:     demoCheckEvery,
		HeartbeatEvery: time.Minute,
		SeqFloor:       publisher.UnixSeq,
		RetryMin:       time.Second,
		RetryMax:       5 * time.Second,
		Store:          publisher.FileStore{Path: filepath.Join(d.dir, "server.json")},
		Pruner:         pruner,
		Logger:         log,
	})
}

func endpointOf(addr string, roots *x509.CertPool) mailconn.Endpoint {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return mailconn.Endpoint{Host: host, Port: p, TLS: mailconn.TLSImplicit, RootCAs: roots}
}

// changeAddresses moves the stand-in public address every interval.
func (d *demo) changeAddresses(ctx context.Context, every time.Duration, e *env) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		d.n++
		a := demoAddr(d.n)
		d.changed[a] = time.Now()
		d.mu.Unlock()
		d.echo.Set(a, netip.Addr{})
		fmt.Fprintf(e.stdout, "internet  the office line's public address is now %s\n", a)
	}
}

// arrived prints how long a new address took from the line to the client.
func (d *demo) arrived(e *env, a netip.Addr) {
	d.mu.Lock()
	at, ok := d.changed[a]
	d.mu.Unlock()
	if ok {
		fmt.Fprintf(e.stdout, "client    shows %s, %s after the address changed (the server checks every %s)\n", a, time.Since(at).Round(time.Millisecond), demoCheckEvery)
	}
}

func (d *demo) close() {
	if d.echo != nil {
		d.echo.Close()
	}
	if d.mail != nil {
		d.mail.Close()
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// demoAuth signs in as demoUser with password.
func demoAuth(password string) mailconn.Auth {
	return mailconn.PasswordAuth(demoUser, func(context.Context) (string, error) { return password, nil })
}
