package clikit

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestLoggerRedactsSecrets(t *testing.T) {
	u, err := url.Parse("https://bob:hunter2@origin.example/v2/blob?token=tok-in-query&digest=sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{"Authorization": {"Bearer hdr-bearer"}, "Cookie": {"sid=hdr-cookie"}, "Accept": {"application/json"}}
	secrets := []string{"abc123", "s3cr3t", "pa55", "tok-attr", "cookie-val", "key-val", "grp-val",
		"with-val", "hunter2", "tok-in-query", "hdr-bearer", "hdr-cookie"}
	plain := []string{"/v2/", "/etc/dragonfly/secret", "origin.example", "digest=sha256", "application/json", "bob"}

	for _, format := range []string{FormatJSON, FormatText} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, format, "debug")
			if err != nil {
				t.Fatal(err)
			}
			log.With("session_token", "with-val").Info("request",
				"Authorization", "Bearer abc123",
				"cluster_secret", "s3cr3t",
				"Password", "pa55",
				"access-token", "tok-attr",
				"set-cookie", "cookie-val",
				"X-Api-Key", "key-val",
				slog.Group("credentials", "user", "grp-val"),
				"url", u,
				"headers", header,
				"path", "/v2/",
				"cluster_secret_file", "/etc/dragonfly/secret",
			)
			out := buf.String()
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("log leaks %q:\n%s", s, out)
				}
			}
			for _, s := range plain {
				if !strings.Contains(out, s) {
					t.Errorf("log lost %q:\n%s", s, out)
				}
			}
			if !strings.Contains(out, Redacted) {
				t.Errorf("log does not say %s:\n%s", Redacted, out)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name, format, level string
		wantErr             bool
		debugShown          bool
		isJSON              bool
	}{
		{name: "json info", format: "json", level: "info", isJSON: true},
		{name: "text debug", format: "text", level: "debug", debugShown: true},
		{name: "defaults are text at info", format: "", level: ""},
		{name: "case insensitive", format: "JSON", level: "DEBUG", debugShown: true, isJSON: true},
		{name: "unknown format", format: "xml", level: "info", wantErr: true},
		{name: "unknown level", format: "json", level: "loud", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.format, tt.level)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			log.Debug("dbg")
			log.Info("inf")
			out := buf.String()
			if got := strings.Contains(out, "dbg"); got != tt.debugShown {
				t.Errorf("debug shown = %v, want %v:\n%s", got, tt.debugShown, out)
			}
			line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
			if got := json.Valid([]byte(line)); got != tt.isJSON {
				t.Errorf("JSON = %v, want %v: %s", got, tt.isJSON, line)
			}
		})
	}
}

func TestIsSecretKey(t *testing.T) {
	tests := map[string]bool{
		"authorization": true, "Proxy-Authorization": true, "password": true, "db.passwd": true,
		"token": true, "refreshToken": true, "secret": true, "Cookie": true, "credentials": true,
		"api_key": true, "privateKey": true,
		"secret_file": false, "token-path": false, "path": false, "task_id": false, "peer": false,
	}
	for key, want := range tests {
		if got := isSecretKey(key); got != want {
			t.Errorf("isSecretKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestAddLogFlags(t *testing.T) {
	var format, level string
	fs := newFlagSet()
	AddLogFlags(fs, &format, &level, FormatJSON)
	if err := fs.Parse([]string{"--log-level=warn"}); err != nil {
		t.Fatal(err)
	}
	if format != FormatJSON || level != "warn" {
		t.Fatalf("format, level = %q, %q", format, level)
	}
	if _, err := NewLogger(io.Discard, format, level); err != nil {
		t.Fatal(err)
	}
}
