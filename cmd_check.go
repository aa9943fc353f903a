package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"ipsync/config"
	"ipsync/mailconn"
	"ipsync/oauth"
)

const checkSynopsis = `ipsync check [--config F] [--role server|client]

Validates the configuration (every problem on its own line, naming the key),
resolves the secrets, then tries each connection the role uses and each
address source, printing one PASS/FAIL line per item. With mail.auth:
oauth2 a token line says whether the stored sign-in is present and the
provider still refreshes it (else: run ipsync login); the IMAP and SMTP
lines then sign in with the access token. The role is --role, or
the file's role key; with neither, both roles' items are checked.
Exit 0 when everything passes, 2 for configuration problems, 3 when a
connection or source fails.`

// checkLine is one item of `ipsync check`.
type checkLine struct {
	item string
	err  error
	note string
}

func runCheck(ctx context.Context, e *env, args []string) error {
	fs := e.newFlags("check", checkSynopsis, flagConfig)
	roleFlag := fs.String("role", "", "check the `ROLE` server or client (default: the file's role, or the kind of codec.key)")
	if err := e.parseNoArgs(fs, args); err != nil {
		return err
	}
	// Warnings become WARN lines of the report instead of log lines.
	log := slog.New(slog.DiscardHandler)
	cfg, err := e.loadConfig("", log)
	if err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) {
			fmt.Fprintf(e.stdout, "FAIL config: %v\n", err)
			return &exitError{exitUsage, errors.New("check stopped: the config could not be read (see the FAIL line)")}
		}
		for _, p := range ce.Problems {
			fmt.Fprintf(e.stdout, "FAIL config %s: %s\n", ce.Path, p)
		}
		n := fmt.Sprintf("%d configuration problems", len(ce.Problems))
		if len(ce.Problems) == 1 {
			n = "1 configuration problem"
		}
		return &exitError{exitUsage, fmt.Errorf("%s in %s", n, ce.Path)}
	}
	roles := []config.Role{config.RoleServer, config.RoleClient}
	switch r := config.Role(*roleFlag); {
	case r == config.RoleServer || r == config.RoleClient:
		roles = []config.Role{r}
	case r != "":
		return usageErr("--role %q: use server or client", r)
	case cfg.Role != "":
		roles = []config.Role{cfg.Role}
	default:
		if r := roleOfKey(cfg); r != "" {
			roles = []config.Role{r}
			fmt.Fprintf(e.stdout, "NOTE checking the %s role: codec.key holds a %s key (set role: in the file, or --role, to choose)\n", r, r)
		} else {
			fmt.Fprintln(e.stdout, "NOTE checking both roles: the file names no role and codec.key does not tell (set role: in the file, or --role, to choose)")
		}
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stdout, "WARN %s\n", w)
	}
	var lines []checkLine
	configOK := true
	for _, role := range roles {
		if err := cfg.Require(role); err != nil {
			configOK = false
			lines = append(lines, checkLine{item: "config for the " + string(role) + " role", err: err})
		}
	}
	if configOK {
		lines = append(lines, checkLine{item: "config " + cfg.Path, note: "valid"})
		for _, role := range roles {
			lines = append(lines, checkRole(ctx, cfg, role, log)...)
		}
	}
	failed, configFailed := 0, !configOK
	for _, l := range lines {
		l.print(e.stdout)
		if l.err != nil {
			failed++
			if exitCode(l.err) == exitUsage {
				configFailed = true
			}
		}
	}
	switch {
	case configFailed:
		return &exitError{exitUsage, fmt.Errorf("%d of %d checks failed, with a configuration problem (see the FAIL lines)", failed, len(lines))}
	case failed > 0:
		return &exitError{exitNetwork, fmt.Errorf("%d of %d checks failed: a connection or an address source (see the FAIL lines)", failed, len(lines))}
	}
	return nil
}

// checkTimeout bounds each connection attempt of `ipsync check`, so that
// one server that never answers cannot use up the time of the others.
const checkTimeout = 20 * time.Second

// errCheckTimeout is the cause of a check item that ran out of checkTimeout.
var errCheckTimeout = fmt.Errorf("no answer within %s: %w", checkTimeout, mailconn.ErrTimeout)

// print writes l as check shows it: "PASS item[: note]" or "FAIL item: error".
func (l checkLine) print(w io.Writer) {
	switch {
	case l.err != nil:
		fmt.Fprintf(w, "FAIL %s: %v\n", l.item, l.err)
	case l.note != "":
		fmt.Fprintf(w, "PASS %s: %s\n", l.item, l.note)
	default:
		fmt.Fprintf(w, "PASS %s\n", l.item)
	}
}

// checkWritten loads the config init or join just wrote, checks role
// against it, prints each line and says how many failed.
func checkWritten(ctx context.Context, w io.Writer, path string, role config.Role, log *slog.Logger) (failed int, err error) {
	cfg, err := config.Load(path)
	if err != nil {
		return 0, withCode(exitUsage, err)
	}
	for _, l := range checkRole(ctx, cfg, role, log) {
		l.print(w)
		if l.err != nil {
			failed++
		}
	}
	return failed, nil
}

// checkRole resolves the role's secrets and tries its connections, each
// within checkTimeout.
func checkRole(ctx context.Context, cfg *config.Config, role config.Role, log *slog.Logger) []checkLine {
	sec, err := resolveSecrets(cfg, role, log)
	if err != nil {
		return []checkLine{{item: string(role) + " secrets", err: err}}
	}
	note := "mail.password and codec.key resolved"
	if cfg.IsOAuth2() {
		note = "codec.key resolved"
	}
	lines := []checkLine{{item: string(role) + " secrets", note: note}}
	if sec.tokens != nil {
		lines = append(lines, checkToken(ctx, cfg, sec))
	}
	switch role {
	case config.RoleServer:
		lines = append(lines, checkServer(ctx, cfg, sec)...)
	case config.RoleClient:
		lines = append(lines, checkClient(ctx, cfg, sec)...)
	}
	return lines
}

// checkToken proves the stored OAuth2 sign-in: the refresh token is there
// and the provider still refreshes it (a new access token, never shown).
// A missing, revoked or expired token says to run ipsync login; the IMAP
// and SMTP lines then fail with the same message.
func checkToken(ctx context.Context, cfg *config.Config, sec secrets) checkLine {
	item := fmt.Sprintf("oauth2 token for %s (%s)", cfg.Mail.Username, cfg.Mail.OAuth2.Provider)
	ctx, cancel := context.WithTimeoutCause(ctx, checkTimeout, errCheckTimeout)
	defer cancel()
	if err := sec.tokens.Check(ctx); err != nil {
		if errors.Is(err, oauth.ErrSignInNeeded) {
			return checkLine{item: item, err: fmt.Errorf("%w; run ipsync login%s", err, configFlag(cfg))}
		}
		return checkLine{item: item, err: withCode(exitNetwork, err)}
	}
	return checkLine{item: item, note: "present and refreshable"}
}
