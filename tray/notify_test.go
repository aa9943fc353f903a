package tray

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTrackerNext(t *testing.T) {
	t.Parallel()
	type step struct {
		at   time.Duration // after now
		s    Status
		want []string // "kind: title | body" of each notice, in order
	}
	tests := []struct {
		name  string
		role  Role
		quiet bool
		steps []step
	}{
		{"first address is no news", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Current, IPv4: addrA}, nil},
		}},
		{"change announced once", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Current, IPv4: addrB}, []string{"change: office has a new address | 203.0.113.9 → 198.51.100.7"}},
			{2 * time.Minute, Status{State: Current, IPv4: addrB}, nil},
			{3 * time.Minute, Status{State: Working, IPv4: addrB}, nil},
			{4 * time.Minute, Status{State: Current, IPv4: addrB}, nil},
		}},
		{"change across an empty working status", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Working}, nil},
			{2 * time.Minute, Status{State: Current, IPv4: addrB}, []string{"change: office has a new address | 203.0.113.9 → 198.51.100.7"}},
		}},
		{"dual stack change names both sets", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA, IPv6: addr6}, nil},
			{time.Minute, Status{State: Current, IPv4: addrB, IPv6: addr6, Name: "lab"}, []string{"change: lab has a new address | 203.0.113.9 / 2001:db8::1 → 198.51.100.7 / 2001:db8::1"}},
		}},
		{"server change", RoleServer, false, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Working, IPv4: addrB}, []string{"change: office: public address changed | 203.0.113.9 → 198.51.100.7"}},
			{2 * time.Minute, Status{State: Current, IPv4: addrB}, nil},
		}},
		{"stale once then recovered once", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA, IssuedAt: now}, nil},
			{3 * time.Hour, Status{State: Stale, IPv4: addrA, IssuedAt: now}, []string{"stale: office may be offline | No update since 3 h ago; last known address 203.0.113.9."}},
			{3*time.Hour + time.Minute, Status{State: Working, IPv4: addrA, IssuedAt: now}, nil},
			{3*time.Hour + 2*time.Minute, Status{State: Stale, IPv4: addrA, IssuedAt: now}, nil},
			{4 * time.Hour, Status{State: Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
			{5 * time.Hour, Status{State: Current, IPv4: addrA}, nil},
		}},
		{"recovery with a new address is one change", RoleClient, false, []step{
			{0, Status{State: Stale, IPv4: addrA}, []string{"stale: office may be offline | No update; last known address 203.0.113.9."}},
			{time.Hour, Status{State: Current, IPv4: addrB}, []string{"change: office has a new address | 203.0.113.9 → 198.51.100.7"}},
		}},
		{"unreachable once then recovered", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Unreachable, IPv4: addrA, Err: "port 22 closed"}, []string{"unreachable: office is unreachable | 203.0.113.9 does not answer. port 22 closed"}},
			{2 * time.Minute, Status{State: Unreachable, IPv4: addrA}, nil},
			{3 * time.Minute, Status{State: Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
		}},
		{"errors at most once per kind per hour", RoleClient, false, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, []string{"error: office: cannot check for updates | mail login failed"}},
			{2 * time.Minute, Status{State: Error, IPv4: addrA, Err: "mail login failed (retry 2)", ErrKind: "login"}, nil},
			{3 * time.Minute, Status{State: Error, IPv4: addrA, Err: "cannot connect to imap.example.com:993", ErrKind: "connect"}, []string{"error: office: cannot check for updates | cannot connect to imap.example.com:993"}},
			{60 * time.Minute, Status{State: Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, nil},
			{61 * time.Minute, Status{State: Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, []string{"error: office: cannot check for updates | mail login failed"}},
			{62 * time.Minute, Status{State: Current, IPv4: addrA}, []string{"recovered: office is back | 203.0.113.9 is current again."}},
			{63 * time.Minute, Status{State: Error, IPv4: addrA, Err: "mail login failed", ErrKind: "login"}, nil},
			{64 * time.Minute, Status{State: Current, IPv4: addrA}, nil},
		}},
		{"error kind defaults to the message", RoleServer, false, []step{
			{0, Status{State: Error, Err: "SMTP login failed"}, []string{"error: office: cannot publish | SMTP login failed"}},
			{time.Minute, Status{State: Error, Err: "SMTP login failed"}, nil},
			{2 * time.Minute, Status{State: Error, Err: "SMTP timeout"}, []string{"error: office: cannot publish | SMTP timeout"}},
		}},
		{"server stale and recovered", RoleServer, false, []step{
			{0, Status{State: Current, IPv4: addrA, LastSent: now}, nil},
			{2 * time.Hour, Status{State: Stale, IPv4: addrA, LastSent: now}, []string{"stale: office: address not delivered | 203.0.113.9 has not been published yet; last message sent 2 h ago."}},
			{3 * time.Hour, Status{State: Current, IPv4: addrA}, []string{"recovered: office: publishing again | 203.0.113.9 is published."}},
		}},
		{"server unreachable", RoleServer, false, []step{
			{0, Status{State: Unreachable, Err: "sources disagree"}, []string{"unreachable: office: public address unknown | sources disagree"}},
		}},
		{"disabled", RoleClient, true, []step{
			{0, Status{State: Current, IPv4: addrA}, nil},
			{time.Minute, Status{State: Current, IPv4: addrB}, nil},
			{2 * time.Minute, Status{State: Stale, IPv4: addrB}, nil},
			{3 * time.Minute, Status{State: Error, Err: "mail login failed"}, nil},
			{4 * time.Minute, Status{State: Current, IPv4: addrB}, nil},
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
