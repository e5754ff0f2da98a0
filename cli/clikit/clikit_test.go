package clikit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestLoggerRedactsSecrets(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := NewLogger(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("request", "Authorization", "Bearer abc123", "cluster_secret", "s3cr3t", "path", "/v2/")
		out := buf.String()
		if strings.Contains(out, "abc123") || strings.Contains(out, "s3cr3t") {
			t.Fatalf("%s log leaks a secret: %s", format, out)
		}
		if !strings.Contains(out, "/v2/") {
			t.Fatalf("%s log lost a plain attribute: %s", format, out)
		}
	}
	if _, err := NewLogger(io.Discard, "xml", "info"); err == nil {
		t.Fatal("accepted format xml")
	}
	if _, err := NewLogger(io.Discard, "json", "loud"); err == nil {
		t.Fatal("accepted level loud")
	}
}

func TestOpsServer(t *testing.T) {
	ready := errors.New("not yet")
	s := NewOpsServer("127.0.0.1:0", WithCheck("store", func(context.Context) error { return ready }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- s.Run(ctx) }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/livez"); code != 200 {
		t.Fatalf("livez = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not yet") {
		t.Fatalf("readyz while not ready = %d %s", code, body)
	}
	ready = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics = %d", code)
	}
	if code, _ := get("/debug/pprof/"); code != 200 {
		t.Fatalf("pprof on loopback = %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if NewOpsServer("0.0.0.0:0").loopback() {
		t.Fatal("0.0.0.0 treated as loopback: pprof would be exposed")
	}
}

func TestExecuteExitCodes(t *testing.T) {
	notFound := errors.New("no such task")
	tests := []struct {
		name string
		args []string
		run  error
		code int
		msg  string
	}{
		{name: "ok", code: ExitOK},
		{name: "failure", run: errors.New("boom"), code: ExitFailure, msg: "tool: error: boom"},
		{name: "not found", run: WithCode(ExitNotFound, notFound), code: ExitNotFound},
		{name: "hint", run: WithHint(WithCode(ExitUnavailable, errors.New("no daemon")), "start dfnode"), code: ExitUnavailable, msg: "hint: start dfnode"},
		{name: "unknown flag", args: []string{"--nope"}, code: ExitUsage},
		{name: "too many args", args: []string{"a", "b"}, code: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{Use: "tool", Args: cobra.MaximumNArgs(1), RunE: func(*cobra.Command, []string) error { return tt.run }}
			var stderr bytes.Buffer
			if code := Execute(context.Background(), cmd, tt.args, &stderr); code != tt.code {
				t.Fatalf("code = %d, want %d (%s)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.msg) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tt.msg)
			}
		})
	}
}
