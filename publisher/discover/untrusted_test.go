package discover

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An HTTPS source whose certificate does not verify (TLS interception on
// the server's network, or missing CA certificates) is refused with a
// message that says so, not with the TLS library's wording; the detail
// stays reachable through errors.As.
func TestHTTPSourceUntrustedCertificate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("9.9.9.9\n"))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := strings.Cut(srv.Listener.Addr().String(), "127.0.0.1:")
	ss, err := ParseSource("https://echo.test:"+port+"/", V4, SourceOptions{Dial: loopbackDial})
	if err != nil || len(ss) != 1 {
		t.Fatalf("ParseSource = %v, %v", ss, err)
	}
	_, err = ss[0].Lookup(t.Context())
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("Lookup error = %v, want a *tls.CertificateVerificationError inside", err)
	}
	for _, want := range []string{"certificate of echo.test is not trusted", "intercepting HTTPS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup error = %q, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "x509:") {
		t.Errorf("Lookup error = %q: the TLS library's wording belongs in logs only", err)
	}
}
