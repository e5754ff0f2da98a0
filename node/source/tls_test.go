package source

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestTLS(t *testing.T) {
	o := startTLSOrigin(t, serveContent(testData, `"v1"`, testMod))
	pool := x509.NewCertPool()
	pool.AddCert(o.Certificate())
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		opts     []Option
		url      string
		wantErr  bool
		wantHits int64
	}{
		{name: "CA given as a pool", opts: []Option{WithRootCAs(pool)}, url: o.URL, wantHits: 1},
		{name: "CA given as a file", opts: []Option{WithCAFiles(caFile)}, url: o.URL, wantHits: 1},
		{name: "unknown CA", url: o.URL, wantErr: true},
		{name: "name not in the certificate", opts: []Option{WithRootCAs(pool)}, url: "https://localhost:" + o.port(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits, accepts := o.hits.Load(), o.accepts.Load()
			_, err := newClient(t, tt.opts...).Stat(t.Context(), Request{URL: tt.url})
			var verr *tls.CertificateVerificationError
			switch {
			case tt.wantErr && !errors.As(err, &verr):
				t.Fatalf("Stat = %v, want a certificate verification error", err)
			case !tt.wantErr && err != nil:
				t.Fatalf("Stat = %v", err)
			}
			if n := o.hits.Load() - hits; n != tt.wantHits {
				t.Errorf("server handled %d requests, want %d", n, tt.wantHits)
			}
			if n := o.accepts.Load() - accepts; n != 1 {
				t.Errorf("server accepted %d connections, want 1 (no retry)", n)
			}
		})
	}
}

func TestNewOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opt  Option
	}{
		{"missing CA file", WithCAFiles(filepath.Join(dir, "missing.pem"))},
		{"CA file without certificates", WithCAFiles(notPEM)},
		{"negative retries", WithRetry(-1, 1, 2)},
		{"zero backoff base", WithRetry(1, 0, 2)},
		{"base above cap", WithRetry(1, 3, 2)},
		{"negative timeout", WithTimeouts(-1, 0, 0)},
		{"invalid allowed network", WithAllowedNetworks(make([]netip.Prefix, 1))},
		{"empty redirect host", WithRedirectHosts("")},
		{"redirect host with a path", WithRedirectHosts("example.com/x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := New(tt.opt); err == nil {
				c.CloseIdleConnections()
				t.Error("New succeeded")
			}
		})
	}
}
