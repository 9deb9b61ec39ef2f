package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

// acmeCacheDir is the folder, inside the data folder, where the ACME
// account key and the certificates it obtains are kept (owner-only).
const acmeCacheDir = "acme"

// httpsSettings is how serve speaks HTTPS itself: with a certificate and key
// from files, or with certificates it obtains from an ACME authority (Let's
// Encrypt) for the listed domains. Both empty means plain HTTP (maybe behind
// a TLS-terminating proxy).
type httpsSettings struct {
	certFile, keyFile string
	cert              *tls.Certificate // loaded from certFile and keyFile
	acmeDomains       []string
	acmeEmail         string
	acmeHTTPAddr      string // ACME HTTP-01 challenges, and redirects to HTTPS
}

// on reports whether serve terminates TLS itself.
func (h httpsSettings) on() bool { return h.certFile != "" || len(h.acmeDomains) > 0 }

// mode names how TLS is served, for the log.
func (h httpsSettings) mode() string {
	switch {
	case len(h.acmeDomains) > 0:
		return "acme"
	case h.certFile != "":
		return "files"
	}
	return "off"
}

// secure reports whether browsers reach the server over HTTPS: it serves
// TLS itself, or its public URL (a TLS-terminating proxy's) says https.
// Then cookies are marked Secure and HSTS is sent (web.Deps.Secure).
func (c config) secure() bool {
	return c.https.on() || strings.HasPrefix(strings.ToLower(c.publicURL), "https://")
}

// tlsFlags defines serve's TLS flags on fs. The function it returns, called
// after fs.Parse, checks them, loads the certificate files, and fills in the
// defaults TLS changes: with ACME the server listens on :443 unless --addr
// or BEDSIDE_ADDR says otherwise, and the public URL becomes https:// and the
// first domain (or the certificate's first name).
func tlsFlags(fs *flag.FlagSet, getenv func(string) string, c *config) (finish func() error) {
	var domains string
	fs.StringVar(&c.https.certFile, "tls-cert", getenv("BEDSIDE_TLS_CERT"), "serve HTTPS with this PEM certificate (chain) file (BEDSIDE_TLS_CERT); needs --tls-key")
	fs.StringVar(&c.https.keyFile, "tls-key", getenv("BEDSIDE_TLS_KEY"), "the PEM private key of --tls-cert (BEDSIDE_TLS_KEY)")
	fs.StringVar(&domains, "acme-domain", getenv("BEDSIDE_ACME_DOMAIN"), "serve HTTPS with certificates obtained by ACME (Let's Encrypt) for these comma-separated domains, accepting the authority's terms (BEDSIDE_ACME_DOMAIN); listens on :443 by default")
	fs.StringVar(&c.https.acmeEmail, "acme-email", getenv("BEDSIDE_ACME_EMAIL"), "contact address given to the ACME authority for expiry notices (BEDSIDE_ACME_EMAIL)")
	fs.StringVar(&c.https.acmeHTTPAddr, "acme-http-addr", envOr(getenv, "BEDSIDE_ACME_HTTP_ADDR", ":80"), "with --acme-domain: plain HTTP address that answers ACME HTTP-01 challenges and redirects to HTTPS (BEDSIDE_ACME_HTTP_ADDR)")
	return func() error {
		h := &c.https
		for _, d := range strings.Split(domains, ",") {
			if d = strings.TrimSpace(strings.ToLower(d)); d != "" {
				h.acmeDomains = append(h.acmeDomains, d)
			}
		}
		switch {
		case (h.certFile == "") != (h.keyFile == ""):
			return errors.New("serve: --tls-cert and --tls-key go together (BEDSIDE_TLS_CERT, BEDSIDE_TLS_KEY)")
		case h.certFile != "" && len(h.acmeDomains) > 0:
			return errors.New("serve: choose certificate files (--tls-cert) or ACME (--acme-domain), not both")
		case h.acmeEmail != "" && len(h.acmeDomains) == 0:
			return errors.New("serve: --acme-email needs --acme-domain")
		case !h.on():
			return nil
		}
		if strings.HasPrefix(strings.ToLower(c.publicURL), "http://") {
			return fmt.Errorf("serve: --public-url %q is http://, but the server serves HTTPS", c.publicURL)
		}
		addrSet := getenv("BEDSIDE_ADDR") != ""
		fs.Visit(func(f *flag.Flag) { addrSet = addrSet || f.Name == "addr" })
		var host string
		if len(h.acmeDomains) > 0 {
			for _, d := range h.acmeDomains {
				if strings.ContainsAny(d, "*:/ ") {
					return fmt.Errorf("serve: --acme-domain %q: want host names such as clinic.example.org", d)
				}
			}
			if !addrSet {
				c.addr = ":443"
			}
			host = h.acmeDomains[0]
		} else {
			cert, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
			if err != nil {
				return fmt.Errorf("serve: TLS certificate %s and key %s: %w", h.certFile, h.keyFile, err)
			}
			h.cert = &cert
			host = certHost(cert)
		}
		if c.publicURL == "" {
			c.publicURL = httpsURL(host, c.addr)
			if c.publicURL == "" {
				return fmt.Errorf("serve: cannot tell the server's public name from its certificate or address %s: set --public-url https://…", c.addr)
			}
		}
		return nil
	}
}

// certHost is the first name the certificate is for that can be a link's
// host: a DNS name that is not a wildcard, else an IP address; "" if none.
func certHost(cert tls.Certificate) string {
	if cert.Leaf == nil {
		return ""
	}
	for _, n := range cert.Leaf.DNSNames {
		if !strings.Contains(n, "*") {
			return n
		}
	}
	if len(cert.Leaf.IPAddresses) > 0 {
		return cert.Leaf.IPAddresses[0].String()
	}
	return ""
}

// httpsURL is https://host, with the port of the listen address addr unless
// it is 443; "" when host is empty or the port is not known until listening.
func httpsURL(host, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if host == "" || err != nil || port == "" || port == "0" {
		return ""
	}
	if port == "443" {
		if strings.Contains(host, ":") {
			return "https://[" + host + "]"
		}
		return "https://" + host
	}
	return "https://" + net.JoinHostPort(host, port)
}

// acmeManager is the ACME client for the configured domains, with its cache
// in the data folder (created 0700). It accepts the authority's terms of
// service and asks only for the configured names.
func (c config) acmeManager() (*autocert.Manager, error) {
	dir := filepath.Join(c.data, acmeCacheDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache folder: %w", err)
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(dir),
		HostPolicy: autocert.HostWhitelist(c.https.acmeDomains...),
		Email:      c.https.acmeEmail,
	}, nil
}

// tlsServer is serve's HTTPS side; a nil *tlsServer serves plain HTTP.
type tlsServer struct {
	config     *tls.Config
	redirect   *http.Server // ACME: HTTP-01 challenges and redirects to HTTPS
	redirectLn net.Listener
}

// listenTLS prepares the TLS configuration c asks for; with ACME it also
// takes the HTTP-01 address (so call it before touching the data, like the
// main listener). It returns nil when TLS is off.
func (c config) listenTLS(log *slog.Logger) (*tlsServer, error) {
	switch {
	case len(c.https.acmeDomains) > 0:
		m, err := c.acmeManager()
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", c.https.acmeHTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s for ACME HTTP-01 challenges (--acme-http-addr): %w", c.https.acmeHTTPAddr, err)
		}
		cfg := m.TLSConfig()
		cfg.MinVersion = tls.VersionTLS12
		log.Info("certificates from ACME", "domains", strings.Join(c.https.acmeDomains, ","), "challenges", ln.Addr().String())
		return &tlsServer{config: cfg, redirectLn: ln, redirect: &http.Server{
			Handler:           m.HTTPHandler(redirectToHTTPS(c.publicURL)),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       30 * time.Second,
		}}, nil
	case c.https.cert != nil:
		return &tlsServer{config: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*c.https.cert},
		}}, nil
	}
	return nil, nil
}

// serve serves srv on ln until it fails or is shut down: over TLS when t is
// not nil, and then also the ACME challenge and redirect server.
func (t *tlsServer) serve(srv *http.Server, ln net.Listener) error {
	if t == nil {
		return srv.Serve(ln)
	}
	srv.TLSConfig = t.config
	if t.redirect != nil {
		go t.redirect.Serve(t.redirectLn)
	}
	return srv.ServeTLS(ln, "", "")
}

// close stops the ACME challenge and redirect server, if any.
func (t *tlsServer) close() {
	if t != nil && t.redirect != nil {
		t.redirect.Close()
		t.redirectLn.Close()
	}
}

// redirectToHTTPS sends GET and HEAD requests to the same path under the
// public HTTPS URL, and refuses others (their bodies would be sent in clear).
func redirectToHTTPS(publicURL string) http.Handler {
	base := strings.TrimRight(publicURL, "/")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "Use HTTPS: "+base, http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, base+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}
