package dovecottest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// OAuth2Config returns dovecot.conf lines, for Options.ExtraConfig, that add
// the SASL mechanisms XOAUTH2 and OAUTHBEARER, validated by Dovecot's oauth2
// passdb through the RFC 7662 introspection endpoint at introspectionURL
// (a POST of token=…, answered {"active": true, "username": …}; see
// internal/oauthtest). Every sign-in is introspected (force_introspection),
// and the token's username must be the user signing in. Password logins
// keep working.
//
// The passdb's settings file goes into a directory of its own, readable by
// Dovecot's auth process, removed when the test ends.
func OAuth2Config(t testing.TB, introspectionURL string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ipsync-dovecot-oauth2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	settings := fmt.Sprintf(`introspection_mode = post
introspection_url = %s
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
`, introspectionURL)
	if err := os.WriteFile(file, []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`auth_mechanisms = plain login xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = %s
}
`, file)
}
