package discover

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// TestRequestErrorWording: what a failed HTTPS request says to people, and
// that the transport's error stays reachable for logs and errors.As.
func TestRequestErrorWording(t *testing.T) {
	t.Parallel()
	dnsErr := &net.DNSError{Err: "no such host", Name: "api.ipify.org", IsNotFound: true}
	dialErr := &net.OpError{Op: "dial", Net: "tcp4", Err: errors.New("connect: connection refused")}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no DNS", &url.Error{Op: "Get", URL: "https://api.ipify.org/", Err: dnsErr}, "cannot resolve api.ipify.org: no DNS answer (is this machine offline, or its DNS broken?)"},
		{"refused", &url.Error{Op: "Get", URL: "https://api.ipify.org/", Err: dialErr}, "cannot connect to api.ipify.org (connect: connection refused): is this machine offline, or a firewall in the way?"},
		{"other", errors.New("boom"), "request: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := requestError("api.ipify.org", tt.err)
			if got.Error() != tt.want || !errors.Is(got, tt.err) {
				t.Errorf("requestError(%v) = %q (wraps it: %v), want %q", tt.err, got, errors.Is(got, tt.err), tt.want)
			}
		})
	}
}
