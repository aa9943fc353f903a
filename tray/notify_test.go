package tray

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"ipsync/health"
)

func TestTrackerNext(t *testing.T) {
	t.Parallel()
	type step struct {
		at   time.Duration // after now
		s    health.Status
		want []string // "kind: title | body" of each notice, in order
	}
	tests := []struct {
		name  string
		role  Role
		quiet bool
		steps []step
	}{
		{"first address is no news", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Current, IPv4: addrA}, nil},
		}},
		{"change announced once", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Current, IPv4: addrB}, []string{"change: office has a new address | 203.0.113.9 → 198.51.100.7"}},
			{2 * time.Minute, health.Status{State: health.Current, IPv4: addrB}, nil},
			{3 * time.Minute, health.Status{State: health.Working, IPv4: addrB}, nil},
			{4 * time.Minute, health.Status{State: health.Current, IPv4: addrB}, nil},
		}},
		{"change across an empty working status", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Working}, nil},
			{2 * time.Minute, health.Status{State: health.Current, IPv4: addrB}, []string{"change: office has a new address | 203.0.113.9 → 198.51.100.7"}},
		}},
		{"dual stack change names both sets", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA, IPv6: addr6}, nil},
			{time.Minute, health.Status{State: health.Current, IPv4: addrB, IPv6: addr6, Name: "lab"}, []string{"change: lab has a new address | 203.0.113.9 / 2001:db8::1 → 198.51.100.7 / 2001:db8::1"}},
		}},
		{"server change", RoleServer, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Working, IPv4: addrB}, []string{"change: office: public address changed | 203.0.113.9 → 198.51.100.7"}},
			{2 * time.Minute, health.Status{State: health.Current, IPv4: addrB}, nil},
		}},
		{"stale once then recovered once", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA, IssuedAt: now}, nil},
			{3 * time.Hour, health.Status{State: health.Stale, IPv4: addrA, IssuedAt: now}, []string{"stale: office may be offline | No update since 3 h ago; last known address 203.0.113.9."}},
			{3*time.Hour + time.Minute, health.Status{State: health.Working, IPv4: addrA, IssuedAt: now}, nil},
			{3*time.Hour + 2*time.Minute, health.Status{State: health.Stale, IPv4: addrA, IssuedAt: now}, nil},
			{4 * time.Hour, health.Status{State: health.Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
			{5 * time.Hour, health.Status{State: health.Current, IPv4: addrA}, nil},
		}},
		{"recovery with a new address is one change", RoleClient, false, []step{
			{0, health.Status{State: health.Stale, IPv4: addrA}, []string{"stale: office may be offline | No update; last known address 203.0.113.9."}},
			{time.Hour, health.Status{State: health.Current, IPv4: addrB}, []string{"change: office has a new address | 203.0.113.9 → 198.51.100.7"}},
		}},
		{"unreachable once then recovered", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Unreachable, IPv4: addrA, Err: "port 22 closed"}, []string{"unreachable: office is unreachable | 203.0.113.9 does not answer. port 22 closed"}},
			{2 * time.Minute, health.Status{State: health.Unreachable, IPv4: addrA}, nil},
			{3 * time.Minute, health.Status{State: health.Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
		}},
		{"errors at most once per kind per hour", RoleClient, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, []string{"error: office: cannot check for updates | mail login failed"}},
			{2 * time.Minute, health.Status{State: health.Error, IPv4: addrA, Err: "mail login failed (retry 2)", ErrKind: "login"}, nil},
			{3 * time.Minute, health.Status{State: health.Error, IPv4: addrA, Err: "cannot connect to imap.example.com:993", ErrKind: "connect"}, []string{"error: office: cannot check for updates | cannot connect to imap.example.com:993"}},
			{60 * time.Minute, health.Status{State: health.Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, nil},
			{61 * time.Minute, health.Status{State: health.Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, []string{"error: office: cannot check for updates | mail login failed"}},
			{62 * time.Minute, health.Status{State: health.Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
			{63 * time.Minute, health.Status{State: health.Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, nil},
			{64 * time.Minute, health.Status{State: health.Current, IPv4: addrA}, nil},
		}},
		{"error kind defaults to the message", RoleServer, false, []step{
			{0, health.Status{State: health.Error, Err: "SMTP login failed"}, []string{"error: office: cannot publish | SMTP login failed"}},
			{time.Minute, health.Status{State: health.Error, Err: "SMTP login failed"}, nil},
			{2 * time.Minute, health.Status{State: health.Error, Err: "SMTP timeout"}, []string{"error: office: cannot publish | SMTP timeout"}},
		}},
		{"server stale and recovered", RoleServer, false, []step{
			{0, health.Status{State: health.Current, IPv4: addrA, LastSent: now}, nil},
			{2 * time.Hour, health.Status{State: health.Stale, IPv4: addrA, LastSent: now}, []string{"stale: office: address not delivered | 203.0.113.9 has not been published yet; last message sent 2 h ago."}},
			{3 * time.Hour, health.Status{State: health.Current, IPv4: addrA}, []string{"recovered: office: publishing again | 203.0.113.9 is published."}},
		}},
		{"server unreachable", RoleServer, false, []step{
			{0, health.Status{State: health.Unreachable, Err: "sources disagree"}, []string{"unreachable: office: public address unknown | sources disagree"}},
		}},
		{"disabled", RoleClient, true, []step{
			{0, health.Status{State: health.Current, IPv4: addrA}, nil},
			{time.Minute, health.Status{State: health.Current, IPv4: addrB}, nil},
			{2 * time.Minute, health.Status{State: health.Stale, IPv4: addrB}, nil},
			{3 * time.Minute, health.Status{State: health.Error, Err: "mail login failed"}, nil},
			{4 * time.Minute, health.Status{State: health.Current, IPv4: addrB}, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tr tracker
			for i, st := range tt.steps {
				var got []string
				for _, n := range tr.next(tt.role, "office", st.s, now.Add(st.at), tt.quiet) {
					got = append(got, fmt.Sprintf("%s: %s | %s", n.kind, n.title, n.body))
					if n.icon == "" || !strings.HasPrefix(n.icon, tt.role.String()+"-") {
						t.Errorf("step %d: notice icon = %q, want a %v icon", i, n.icon, tt.role)
					}
				}
				if strings.Join(got, "\n") != strings.Join(st.want, "\n") {
					t.Errorf("step %d: next(%v, %+v) =\n  %q\nwant\n  %q", i, st.s.State, st.s, got, st.want)
				}
			}
		})
	}
}

func TestAnnouncementWrite(t *testing.T) {
	t.Parallel()
	hourAgo := now.Add(-time.Hour)
	tests := []struct {
		role Role
		f    facts
		want string // "kind icon: title | body"
	}{
		{RoleClient, facts{name: "office", shown: "203.0.113.9", s: health.Status{State: health.Stale, IssuedAt: hourAgo}, now: now},
			"stale client-stale: office may be offline | No update since 1 h ago; last known address 203.0.113.9."},
		{RoleClient, facts{name: "office", s: health.Status{State: health.Stale}, now: now},
			"stale client-stale: office may be offline | No update."},
		{RoleServer, facts{name: "office", shown: "203.0.113.9", s: health.Status{State: health.Stale, LastSent: hourAgo}, now: now},
			"stale server-stale: office: address not delivered | 203.0.113.9 has not been published yet; last message sent 1 h ago."},
		{RoleServer, facts{name: "office", s: health.Status{State: health.Stale}, now: now},
			"stale server-stale: office: address not delivered | The address has not been published yet."},
		{RoleClient, facts{name: "office", shown: "203.0.113.9", s: health.Status{State: health.Unreachable, Err: "port 22 closed"}},
			"unreachable client-unreachable: office is unreachable | 203.0.113.9 does not answer. port 22 closed"},
		{RoleClient, facts{name: "office", s: health.Status{State: health.Unreachable}},
			"unreachable client-unreachable: office is unreachable | The server does not answer."},
		{RoleServer, facts{name: "office", s: health.Status{State: health.Unreachable, Err: "sources disagree"}},
			"unreachable server-unreachable: office: public address unknown | sources disagree"},
		{RoleServer, facts{name: "office", s: health.Status{State: health.Unreachable}},
			"unreachable server-unreachable: office: public address unknown | The address sources do not answer."},
		{RoleClient, facts{name: "office", shown: "203.0.113.9", s: health.Status{State: health.Current}},
			"recovered client-current: office is back | 203.0.113.9 is current again."},
		{RoleServer, facts{name: "lab", s: health.Status{State: health.Current}},
			"recovered server-current: lab: publishing again | The address is published."},
		{RoleClient, facts{name: "office", s: health.Status{State: health.Error, Err: "mail login failed"}},
			"error client-error: office: cannot check for updates | mail login failed"},
		{RoleClient, facts{name: "office", s: health.Status{State: health.AuthRefused, Err: "mail.password: refused"}},
			"password-refused client-error: office: mail login refused | mail.password: refused"},
		{RoleServer, facts{name: "office", s: health.Status{State: health.AuthRefused}},
			"password-refused server-error: office: mail login refused | The mail server refused the login: check mail.password (or, with mail.auth: oauth2, run ipsync login)."},
		{RoleServer, facts{name: "office", s: health.Status{State: health.Error}},
			"error server-error: office: cannot publish | See the log for details."},
	}
	for _, tt := range tests {
		t.Run(tt.role.String()+" "+tt.f.s.State.String(), func(t *testing.T) {
			t.Parallel()
			a, ok := announcements[tt.f.s.State]
			if !ok {
				t.Fatalf("announcements[%v] missing", tt.f.s.State)
			}
			n := a.write(tt.role, tt.f)
			if got := fmt.Sprintf("%s %s: %s | %s", n.kind, n.icon, n.title, n.body); got != tt.want {
				t.Errorf("announcements[%v].write(%v, %+v) =\n  %q\nwant\n  %q", tt.f.s.State, tt.role, tt.f, got, tt.want)
			}
		})
	}
	for _, s := range []health.State{health.Unknown, health.Working} {
		if _, ok := announcements[s]; ok {
			t.Errorf("announcements[%v] exists; %v is never announced", s, s)
		}
	}
}

func TestTrackerDue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		tr          tracker
		s           health.Status
		prev        health.State
		changed     bool
		want        bool
		errNotified bool // the tracker's flag afterwards
	}{
		{"stale after current", tracker{}, health.Status{State: health.Stale}, health.Current, false, true, false},
		{"stale again", tracker{}, health.Status{State: health.Stale}, health.Stale, false, false, false},
		{"unreachable after stale", tracker{}, health.Status{State: health.Unreachable}, health.Stale, false, true, false},
		{"unreachable again", tracker{}, health.Status{State: health.Unreachable}, health.Unreachable, false, false, false},
		{"current after current", tracker{}, health.Status{State: health.Current}, health.Current, false, false, false},
		{"current after unknown", tracker{}, health.Status{State: health.Current}, health.Unknown, false, false, false},
		{"recovered from stale", tracker{}, health.Status{State: health.Current}, health.Stale, false, true, false},
		{"recovered from unreachable", tracker{}, health.Status{State: health.Current}, health.Unreachable, false, true, false},
		{"recovered with a change", tracker{}, health.Status{State: health.Current}, health.Stale, true, false, false},
		{"recovered from an announced error", tracker{errNotified: true}, health.Status{State: health.Current}, health.Error, false, true, false},
		{"recovered from a silent error", tracker{}, health.Status{State: health.Current}, health.Error, false, false, false},
		{"first error", tracker{}, health.Status{State: health.Error, ErrKind: "mail"}, health.Current, false, true, true},
		{"same kind within the hour", tracker{errAt: map[string]time.Time{"mail": now.Add(-59 * time.Minute)}}, health.Status{State: health.Error, ErrKind: "mail"}, health.Error, false, false, false},
		{"same kind after the hour", tracker{errAt: map[string]time.Time{"mail": now.Add(-time.Hour)}}, health.Status{State: health.Error, ErrKind: "mail"}, health.Error, false, true, true},
		{"other kind within the hour", tracker{errAt: map[string]time.Time{"mail": now}}, health.Status{State: health.Error, ErrKind: "probe"}, health.Error, false, true, true},
		{"kind defaults to the message", tracker{errAt: map[string]time.Time{"boom": now}}, health.Status{State: health.Error, Err: "boom"}, health.Error, false, false, false},
		{"unknown", tracker{errNotified: true}, health.Status{State: health.Unknown}, health.Error, false, false, true},
		{"password refused", tracker{}, health.Status{State: health.AuthRefused}, health.Current, false, true, false},
		{"password refused again, hours later", tracker{}, health.Status{State: health.AuthRefused}, health.AuthRefused, false, false, false},
		{"recovered from password refused", tracker{}, health.Status{State: health.Current}, health.AuthRefused, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := tt.tr
			if got := tr.due(tt.s, tt.prev, tt.changed, now); got != tt.want || tr.errNotified != tt.errNotified {
				t.Errorf("due(%v after %v, changed %v) = %v, errNotified %v; want %v, %v", tt.s.State, tt.prev, tt.changed, got, tr.errNotified, tt.want, tt.errNotified)
			}
		})
	}
}

func TestChangeNotice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		role Role
		want string
	}{
		{RoleClient, "change client-current: office has a new address | 203.0.113.9 → 198.51.100.7"},
		{RoleServer, "change server-current: office: public address changed | 203.0.113.9 → 198.51.100.7"},
	}
	for _, tt := range tests {
		n := changeNotice(tt.role, "office", "203.0.113.9", "198.51.100.7")
		if got := fmt.Sprintf("%s %s: %s | %s", n.kind, n.icon, n.title, n.body); got != tt.want {
			t.Errorf("changeNotice(%v) = %q, want %q", tt.role, got, tt.want)
		}
	}
}

func TestLongErrorCut(t *testing.T) {
	t.Parallel()
	var tr tracker
	long := strings.Repeat("é", 300)
	got := tr.next(RoleClient, "office", health.Status{State: health.Error, Err: long}, now, false)
	if len(got) != 1 || got[0].body != strings.Repeat("é", maxErr-1)+"…" {
		t.Errorf("next(error of 300 runes) = %q, want one notice cut to %d runes", got, maxErr)
	}
}

// TestTrackerSignIn: a sign-in-needed status is announced once, with the
// command, instead of the error notices, until a status no longer needs it.
func TestTrackerSignIn(t *testing.T) {
	t.Parallel()
	const cmd = "ipsync login --config /etc/ipsync/config.yaml"
	client := "signin: office: sign-in needed | The mail provider no longer accepts ipsync's sign-in, so updates stop. Choose Sign in… in the ipsync menu, or run: " + cmd
	server := "signin: office: sign-in needed | The mail provider no longer accepts ipsync's sign-in, so publishing stops. Choose Sign in… in the ipsync menu, or run: " + cmd
	signIn := func(err string) health.Status {
		return health.Status{State: health.Error, IPv4: addrA, Err: err, ErrKind: "login", SignInNeeded: true}
	}
	type step struct {
		s    health.Status
		want []string
	}
	tests := []struct {
		name  string
		role  Role
		quiet bool
		steps []step
	}{
		{"client", RoleClient, false, []step{
			{health.Status{State: health.Current, IPv4: addrA}, nil},
			{signIn("sign-in needed: the provider refused the refresh token"), []string{client}},
			{signIn("sign-in needed: still"), nil},
			{health.Status{State: health.Working, IPv4: addrA, SignInNeeded: true}, nil},
			{signIn("sign-in needed: the provider refused the refresh token"), nil},
			{health.Status{State: health.Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
			{signIn("revoked again"), []string{client}},
		}},
		{"server", RoleServer, false, []step{
			{signIn(""), []string{server}},
			{signIn(""), nil},
			{health.Status{State: health.Error, IPv4: addrA, Err: "smtp timeout"}, []string{"error: office: cannot publish | smtp timeout"}},
			{signIn(""), []string{server}},
		}},
		{"quiet", RoleClient, true, []step{
			{signIn("x"), nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := tracker{loginCmd: cmd}
			for i, st := range tt.steps {
				var got []string
				for _, n := range tr.next(tt.role, "office", st.s, now.Add(time.Duration(i)*time.Minute), tt.quiet) {
					got = append(got, fmt.Sprintf("%s: %s | %s", n.kind, n.title, n.body))
					if n.icon != tt.role.String()+"-error" && n.kind == "signin" {
						t.Errorf("step %d: sign-in notice icon = %q", i, n.icon)
					}
				}
				if strings.Join(got, "\n") != strings.Join(st.want, "\n") {
					t.Errorf("step %d: next(%+v) =\n  %q\nwant\n  %q", i, st.s, got, st.want)
				}
			}
		})
	}
}

func TestLoginCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ goos, path, want string }{
		{"linux", "", "ipsync login"},
		{"linux", "/etc/ipsync/config.yaml", "ipsync login --config /etc/ipsync/config.yaml"},
		{"linux", "/home/ann/my ipsync/it's.yaml", `ipsync login --config '/home/ann/my ipsync/it'\''s.yaml'`},
		{"windows", `C:\Users\Ann Lee\AppData\Roaming\ipsync\config.yaml`, `ipsync login --config "C:\Users\Ann Lee\AppData\Roaming\ipsync\config.yaml"`},
		{"windows", `C:\ipsync\config.yaml`, `ipsync login --config C:\ipsync\config.yaml`},
	} {
		if got := loginCommandFor(tt.goos, tt.path); got != tt.want {
			t.Errorf("loginCommandFor(%s, %q) = %q, want %q", tt.goos, tt.path, got, tt.want)
		}
	}
	if n := signInNotice(RoleClient, "office", ""); !strings.HasSuffix(n.body, "run: ipsync login") {
		t.Errorf("signInNotice without a command = %q, want it to name ipsync login", n.body)
	}
}
