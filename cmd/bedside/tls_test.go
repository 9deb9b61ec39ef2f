package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testCert writes a self-signed certificate for the given names (IP
// addresses or DNS names) and its key into dir, and returns the two files
// and the certificate.
func testCert(t *testing.T, dir string, names ...string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "bedside test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// trusting makes c trust only cert.
func trusting(c *http.Client, cert *x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	return c
}

// startTLSServer runs bedside serve with certificate files until the test
// ends, like startServer, and waits for /healthz over HTTPS.
func startTLSServer(t *testing.T, certFile, keyFile string, cert *x509.Certificate) *testServer {
	t.Helper()
	return launch(t, "https", map[string]string{"BEDSIDE_TLS_CERT": certFile, "BEDSIDE_TLS_KEY": keyFile}, trusting(client(t), cert))
}

func TestServeHTTPSWithCertificateFiles(t *testing.T) {
	certFile, keyFile, cert := testCert(t, t.TempDir(), "127.0.0.1")
	ts := startTLSServer(t, certFile, keyFile, cert)
	if !strings.Contains(ts.out.String(), "Bedside is running at "+ts.URL+"\n") {
		t.Errorf("startup does not give the HTTPS address %s:\n%s", ts.URL, ts.out.String())
	}
	c := trusting(client(t), cert)

	resp, err := c.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("healthz over HTTPS: %d, TLS %v", resp.StatusCode, resp.TLS)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
		t.Errorf("no HSTS over HTTPS: Strict-Transport-Security %q", got)
	}

	// Signing in sets a Secure session cookie, which then works.
	email := "scheduler@demo.bedside.test"
	resp, err = c.PostForm(ts.URL+"/login", url.Values{"email": {email}, "password": {ts.demoPassword(t, email)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Fatalf("sign in over HTTPS: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	for _, ck := range resp.Cookies() {
		if !ck.Secure {
			t.Errorf("cookie %s is not Secure", ck.Name)
		}
	}
	if status, _ := get(t, c, ts.URL+"/schedule"); status != http.StatusOK {
		t.Errorf("schedule after signing in over HTTPS: %d", status)
	}

	// WebSockets upgrade over TLS (HTTP/1.1: browsers fall back to it, as
	// the server offers no extended CONNECT over HTTP/2).
	host := strings.TrimPrefix(ts.URL, "https://")
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial("wss://"+host+"/ws/device", http.Header{"Authorization": {"Bearer " + ts.demoDeviceToken(t)}})
	if err != nil {
		t.Fatalf("device WebSocket over TLS: %v %v", err, resp)
	}
	ws.Close()

	// Plain HTTP to the TLS port gets nothing from the application.
	resp, err = client(t).Get("http://" + host + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP to the TLS port was answered 200")
		}
	}
	// Nor does TLS older than 1.2.
	if conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func TestServeTLSSettingsAreChecked(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testCert(t, dir, "clinic.example.org")
	missing := filepath.Join(dir, "missing-key.pem")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing key file", []string{"--tls-cert", certFile, "--tls-key", missing}, nil, missing},
		{"cert without key", []string{"--tls-cert", certFile}, nil, "--tls-cert and --tls-key go together"},
		{"key without cert", nil, map[string]string{"BEDSIDE_TLS_KEY": keyFile}, "--tls-cert and --tls-key go together"},
		{"files and ACME", []string{"--tls-cert", certFile, "--tls-key", keyFile, "--acme-domain", "clinic.example.org"}, nil, "not both"},
		{"email without domain", []string{"--acme-email", "ops@clinic.example.org"}, nil, "--acme-email needs --acme-domain"},
		{"wildcard ACME domain", []string{"--acme-domain", "*.clinic.example.org"}, nil, "host names"},
		{"http public URL", []string{"--tls-cert", certFile, "--tls-key", keyFile, "--public-url", "http://clinic.example.org"}, nil, "is http://"},
		{"port 0 and no public URL", []string{"--tls-cert", certFile, "--tls-key", keyFile, "--addr", "127.0.0.1:0"}, nil, "set --public-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BEDSIDE_DATA": filepath.Join(dir, "data"), "BEDSIDE_ADDR": freePort(t)}
			for k, v := range tc.env {
				env[k] = v
			}
			err := run(context.Background(), append([]string{"serve"}, tc.args...), func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve %v: %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused configuration touched the data folder: %v", err)
	}
}

func TestPublicURLWithTLS(t *testing.T) {
	dir := t.TempDir()
	dnsCert, dnsKey, _ := testCert(t, filepath.Join(dir), "*.clinic.example.org", "video.clinic.example.org", "10.0.0.1")
	os.Mkdir(filepath.Join(dir, "ip"), 0o700)
	ipCert, ipKey, _ := testCert(t, filepath.Join(dir, "ip"), "::1")
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		addr   string
		public string
	}{
		{"plain", nil, nil, ":8080", ""},
		{"proxy", []string{"--public-url", "https://clinic.example.org"}, nil, ":8080", "https://clinic.example.org"},
		{"files: first non-wildcard name", []string{"--tls-cert", dnsCert, "--tls-key", dnsKey, "--addr", ":443"}, nil, ":443", "https://video.clinic.example.org"},
		{"files: IPv6 and a port", []string{"--tls-cert", ipCert, "--tls-key", ipKey, "--addr", "[::1]:8443"}, nil, "[::1]:8443", "https://[::1]:8443"},
		{"files: given public URL", []string{"--tls-cert", dnsCert, "--tls-key", dnsKey, "--public-url", "https://visits.example.org"}, nil, ":8080", "https://visits.example.org"},
		{"acme: :443 by default", []string{"--acme-domain", "Clinic.Example.org, video.clinic.example.org"}, nil, ":443", "https://clinic.example.org"},
		{"acme: --addr", []string{"--acme-domain", "clinic.example.org", "--addr", ":8443"}, nil, ":8443", "https://clinic.example.org:8443"},
		{"acme: BEDSIDE_ADDR", nil, map[string]string{"BEDSIDE_ACME_DOMAIN": "clinic.example.org", "BEDSIDE_ADDR": ":9443"}, ":9443", "https://clinic.example.org:9443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServe(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.addr != tc.addr || c.publicURL != tc.public {
				t.Errorf("addr %q, public URL %q; want %q, %q", c.addr, c.publicURL, tc.addr, tc.public)
			}
			if want := tc.public != ""; c.secure() != want {
				t.Errorf("secure() = %v, want %v", c.secure(), want)
			}
		})
	}
}

func TestACMEConfiguration(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	c, err := parseServe([]string{"--data", data, "--acme-domain", "clinic.example.org,video.clinic.example.org",
		"--acme-email", "ops@clinic.example.org", "--acme-http-addr", "127.0.0.1:0", "--addr", "127.0.0.1:0", "--public-url", "https://clinic.example.org"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.secure() || c.https.mode() != "acme" || !slices.Equal(c.https.acmeDomains, []string{"clinic.example.org", "video.clinic.example.org"}) {
		t.Fatalf("ACME settings: secure %v, %+v", c.secure(), c.https)
	}
	tl, err := c.listenTLS(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	if fi, err := os.Stat(filepath.Join(data, acmeCacheDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("ACME cache folder: %v, want mode 700", err)
	}
	// The manager's TLS configuration: its certificate hook and the
	// TLS-ALPN-01 protocol, with TLS 1.2 at least.
	if tl.config.GetCertificate == nil || !slices.Contains(tl.config.NextProtos, "acme-tls/1") || tl.config.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config is not autocert's: %+v", tl.config)
	}
	// It asks for no certificate for other names (so no network is needed).
	if _, err := tl.config.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example"}); err == nil || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("certificate for a name not configured: %v", err)
	}

	// Served: a handshake for another name fails; the HTTP port answers
	// challenges only for the configured names and redirects to HTTPS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go tl.serve(srv, ln)
	defer srv.Close()
	if conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "evil.example", InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Fatal("TLS handshake for a name not configured succeeded")
	}
	plain := "http://" + tl.redirectLn.Addr().String()
	nc := client(t)
	for _, tc := range []struct {
		method, path, host string
		status             int
		location           string
	}{
		{"GET", "/schedule?week=2030-01-07", "clinic.example.org", http.StatusMovedPermanently, "https://clinic.example.org/schedule?week=2030-01-07"},
		{"POST", "/login", "clinic.example.org", http.StatusBadRequest, ""},
		{"GET", "/.well-known/acme-challenge/some-token", "evil.example", http.StatusForbidden, ""},
		{"GET", "/.well-known/acme-challenge/some-token", "clinic.example.org", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest(tc.method, plain+tc.path, nil)
		req.Host = tc.host
		resp, err := nc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s (Host %s): %d %q, want %d %q", tc.method, tc.path, tc.host, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
		}
	}
}
