package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"ipsync/codec"
)

const keygenSynopsis = `ipsync keygen [--server-key FILE] [--out DIR]

Makes a new server key and prints it with its client key. The server key
(ipsync-server-1:…) stays on the server: it seals and signs messages. The
client key (ipsync-client-1:…) goes to every staff PC: it opens messages and
checks they came from the server, but cannot forge one.

With --server-key FILE, prints the client key of an existing server key
instead. With --out DIR, writes server.key and client.key (mode 0600) into
DIR instead of printing the keys.`

func runKeygen(_ context.Context, e *env, args []string) error {
	fs := e.newFlags("keygen", keygenSynopsis, 0)
	from := fs.String("server-key", "", "print the client key of the server key in `FILE`")
	out := fs.String("out", "", "write server.key and client.key into `DIR`")
	if err := e.parseNoArgs(fs, args); err != nil {
		return err
	}
	var sk codec.ServerKey
	if *from != "" {
		data, err := os.ReadFile(*from)
		if err != nil {
			return usageErr("read --server-key: %v", err)
		}
		sk, err = codec.ParseServerKey(string(data))
		if err != nil {
			return usageErr("--server-key %s: %v", *from, err)
		}
		fmt.Fprintf(e.stdout, "# client key for %s (key id %s)\n%s\n", *from, sk.ID(), sk.ClientKey().Text())
		return nil
	}
	sk, err := codec.GenerateServerKey(e.rand)
	if err != nil {
		// The system's random source failed: nothing the user can fix in
		// the command line, and no mail is involved.
		return &exitError{exitInternal, err}
	}
	ck := sk.ClientKey()
	if *out != "" {
		if err := os.MkdirAll(*out, 0o700); err != nil {
			return usageErr("--out: %v", err)
		}
		if err := writeKeyPair(*out, sk, ck); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s/server.key (keep on the server) and %s/client.key (copy to each client); key id %s\n", *out, *out, sk.ID())
		return nil
	}
	fmt.Fprintf(e.stdout, `# ipsync keys, key id %s
# Server key: keep it on the server only (codec.key on the server).
%s
# Client key: give it to every staff PC (codec.key on the clients).
%s
`, sk.ID(), sk.Text(), ck.Text())
	return nil
}

const legacySynopsis = `ipsync legacy encode --factor F --alphabet A --padding P IPV4
       ipsync legacy decode --factor F --alphabet A [--padding P] -- TEXT

The original tool's format, for migrating old deployments. It is obfuscation,
not encryption: anyone can read or forge it. Prefer the sealed format.
Put -- before TEXT when it starts with '-' (negative factors).`

func runLegacy(_ context.Context, e *env, args []string) error {
	fs := e.newFlags("legacy", legacySynopsis, 0)
	factor := fs.String("factor", "", "the shared `FACTOR`, a number in [-10, 10] other than 0")
	alphabet := fs.String("alphabet", "", "the 10-letter `ALPHABET` of key digits")
	padding := fs.String("padding", "", "the `LETTERS` drawn as padding (decode: optional)")
	if len(args) == 0 {
		return usageErr("legacy needs encode or decode; see `ipsync legacy --help`")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		return e.parse(fs, args)
	}
	sub := args[0]
	if sub != "encode" && sub != "decode" {
		return usageErr("legacy %q: use encode or decode", sub)
	}
	pos, err := e.parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("legacy %s takes exactly one %s argument, got %d: %q", sub, map[string]string{"encode": "IPv4 address", "decode": "TEXT"}[sub], len(pos), pos)
	}
	f, err := strconv.ParseFloat(*factor, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return usageErr("--factor %q is not a number; copy the factor of the old deployment, e.g. --factor -9.616013867352109", *factor)
	}
	l := codec.Legacy{Factor: f, Alphabet: *alphabet, Padding: *padding}
	if sub == "encode" && *padding == "" {
		return usageErr("legacy encode needs --padding (the letters drawn after each group)")
	}
	if err := l.Validate(); err != nil {
		return usageErr("%v", err)
	}
	arg := pos[0]
	if sub == "encode" {
		ip, err := netip.ParseAddr(arg)
		if err != nil || !ip.Is4() {
			return usageErr("%q is not an IPv4 address; the legacy format carries IPv4 only", arg)
		}
		text, err := l.Encode(ip)
		if err != nil {
			return usageErr("%v", err)
		}
		fmt.Fprintln(e.stdout, text)
		return nil
	}
	ip, err := l.Decode(strings.TrimSpace(arg))
	if err != nil {
		return withCode(exitNoResult, err)
	}
	fmt.Fprintln(e.stdout, ip)
	return nil
}

// writeKeyPair writes DIR/server.key and DIR/client.key (mode 0600). It
// never overwrites a file, checks both names are free before writing
// either, and removes what it wrote if the second write fails, so it never
// leaves a client key without its server key.
func writeKeyPair(dir string, sk codec.ServerKey, ck codec.ClientKey) error {
	files := []struct{ path, text string }{
		{filepath.Join(dir, "server.key"), sk.Text()},
		{filepath.Join(dir, "client.key"), ck.Text()},
	}
	for _, f := range files {
		if _, err := os.Lstat(f.path); err == nil {
			return usageErr("--out: %s exists (ipsync never overwrites a key file)", f.path)
		}
	}
	var written []string
	for _, f := range files {
		if err := writeNewFile(f.path, f.text+"\n"); err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			return keyWriteError(err)
		}
		written = append(written, f.path)
	}
	return nil
}

// keyWriteError classifies a failure to write a key file: a name taken
// meanwhile or a folder the user may not write to is theirs to fix (exit
// 2); anything else, such as a full disk, is this computer's (exit 4).
func keyWriteError(err error) error {
	switch {
	case errors.Is(err, fs.ErrExist):
		return usageErr("--out: %v (ipsync never overwrites a key file)", err)
	case errors.Is(err, fs.ErrPermission):
		return usageErr("--out: %v: choose a folder you can write to", err)
	}
	return &exitError{exitInternal, fmt.Errorf("--out: write the key files: %w (nothing was kept)", err)}
}

// writeNewFile creates path (which must not exist) with mode 0600.
func writeNewFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(text)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
	}
	return werr
}
