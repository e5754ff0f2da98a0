package clikit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startOps runs s on a real listener until the test ends, and checks that
// Run then returns nil.
func startOps(t *testing.T, s *OpsServer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after shutdown, want nil", err)
		}
	})
}

// get fetches path from the server at hostport, without keeping the
// connection (so no goroutine outlives the test).
func get(t *testing.T, hostport, path string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + hostport + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestOpsServerEndpoints(t *testing.T) {
	reg := NewRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "dragonfly_test_requests_total", Help: "test"})
	reg.MustRegister(requests)
	requests.Add(3)
	s := NewOpsServer("127.0.0.1:0", WithGatherer(reg))
	startOps(t, s)

	tests := []struct {
		path     string
		wantCode int
		want     []string
	}{
		{path: "/livez", wantCode: 200, want: []string{"ok"}},
		{path: "/readyz", wantCode: 200, want: []string{"ok"}},
		{path: "/metrics", wantCode: 200, want: []string{"dragonfly_test_requests_total 3", "go_goroutines", "process_cpu_seconds_total"}},
		{path: "/debug/pprof/", wantCode: 200, want: []string{"goroutine"}},
		{path: "/debug/pprof/cmdline", wantCode: 200},
		{path: "/nope", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(t, s.Addr(), tt.path)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%.500s", w, body)
				}
			}
		})
	}
}

// pprof is mounted only on a loopback listener: a wildcard address is
// reachable from the network.
func TestOpsServerPprofOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want int
	}{
		{addr: "127.0.0.1:0", want: 200},
		{addr: "localhost:0", want: 200},
		{addr: "0.0.0.0:0", want: 404},
		{addr: ":0", want: 404},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			s := NewOpsServer(tt.addr)
			startOps(t, s)
			_, port, err := net.SplitHostPort(s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			host := "127.0.0.1"
			if strings.HasPrefix(s.Addr(), "[::1]") {
				host = "[::1]"
			}
			if code, _ := get(t, host+":"+port, "/debug/pprof/"); code != tt.want {
				t.Fatalf("pprof on %s (bound %s) = %d, want %d", tt.addr, s.Addr(), code, tt.want)
			}
			if code, _ := get(t, host+":"+port, "/livez"); code != 200 {
				t.Fatalf("livez = %d", code)
			}
		})
	}
}

func TestOpsServerReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	fail := func(msg string) Check { return func(context.Context) error { return errors.New(msg) } }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name     string
		checks   map[string]Check
		query    string
		wantCode int
		want     []string
		notWant  []string
	}{
		{name: "no checks", wantCode: 200, want: []string{"ok\n"}},
		{name: "all pass", checks: map[string]Check{"store": ok, "dht": ok}, wantCode: 200, want: []string{"ok\n"}, notWant: []string{"[+]"}},
		{name: "all pass verbose", checks: map[string]Check{"store": ok, "dht": ok}, query: "?verbose", wantCode: 200,
			want: []string{"[+]dht ok\n[+]store ok\nok\n"}},
		{name: "one fails", checks: map[string]Check{"store": ok, "dht": fail("no peers")}, wantCode: 503,
			want: []string{"[-]dht failed: no peers", "not ready"}, notWant: []string{"[+]store"}},
		{name: "one fails verbose", checks: map[string]Check{"store": ok, "dht": fail("no peers")}, query: "?verbose=1", wantCode: 503,
			want: []string{"[-]dht failed: no peers\n[+]store ok\nnot ready\n"}},
		{name: "multi-line error stays on its line", checks: map[string]Check{"a": fail("x\ny")}, wantCode: 503,
			want: []string{"[-]a failed: x; y\n"}},
		{name: "hung check times out", checks: map[string]Check{"slow": hang, "store": ok}, wantCode: 503,
			want: []string{"[-]slow failed: "}},
		{name: "panicking check fails", checks: map[string]Check{"bad": func(context.Context) error { panic("boom") }}, wantCode: 503,
			want: []string{"[-]bad failed: panic: boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []OpsOption{WithCheckTimeout(50 * time.Millisecond)}
			for name, c := range tt.checks {
				opts = append(opts, WithCheck(name, c))
			}
			s := NewOpsServer("127.0.0.1:0", opts...)
			startOps(t, s)
			code, body := get(t, s.Addr(), "/readyz"+tt.query)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d:\n%s", code, tt.wantCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(body, w) {
					t.Errorf("body has %q:\n%s", w, body)
				}
			}
		})
	}
}

// Readiness follows the component: a check added while running, and a
// check that turns from failing to passing.
func TestOpsServerReadyzFollowsState(t *testing.T) {
	var up atomic.Bool
	s := NewOpsServer("127.0.0.1:0")
	startOps(t, s)
	s.AddCheck("node", func(context.Context) error {
		if !up.Load() {
			return errors.New("joining")
		}
		return nil
	})
	if code, body := get(t, s.Addr(), "/readyz"); code != 503 || !strings.Contains(body, "joining") {
		t.Fatalf("before: %d %s", code, body)
	}
	up.Store(true)
	if code, body := get(t, s.Addr(), "/readyz"); code != 200 {
		t.Fatalf("after: %d %s", code, body)
	}
}

func TestOpsServerAddCheckRejectsMistakes(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name  string
		add   string
		check Check
	}{
		{name: "duplicate", add: "store", check: ok},
		{name: "empty name", add: "", check: ok},
		{name: "nil check", add: "other", check: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewOpsServer("127.0.0.1:0", WithCheck("store", ok))
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			s.AddCheck(tt.add, tt.check)
		})
	}
}

func TestOpsServerListenError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = NewOpsServer(taken.Addr().String()).Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ops listener") {
		t.Fatalf("Run on a taken port = %v", err)
	}
}

// A readiness check that ignores its context does not hold up shutdown:
// the request's context ends with Run's, and the check is abandoned.
func TestOpsServerShutdownWithHungCheck(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	stuck := func(context.Context) error {
		close(entered)
		<-release // ignores its context on purpose
		return nil
	}
	s := NewOpsServer("127.0.0.1:0", WithCheck("stuck", stuck), WithCheckTimeout(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	got := make(chan int, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + s.Addr() + "/readyz")
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-entered
	cancel()
	waitRun(t, done, 10*time.Second)
	if code := <-got; code != http.StatusServiceUnavailable {
		t.Fatalf("readyz during shutdown = %d, want 503", code)
	}
}

// A client that never finishes its request would hold a graceful shutdown
// until ReadHeaderTimeout (5s); the shutdown timeout cuts it short and
// closes the connection.
func TestOpsServerShutdownBounded(t *testing.T) {
	s := NewOpsServer("127.0.0.1:0", WithShutdownTimeout(20*time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	if err := s.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /livez HTTP/1.1\r\nHost: x\r\n")); err != nil { // no blank line
		t.Fatal(err)
	}
	cancel()
	waitRun(t, done, 3*time.Second)
	// The server closed the connection rather than leaving it behind.
	if err := conn.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Read(make([]byte, 1))
	if ne := net.Error(nil); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read after shutdown = %v, want EOF or reset", err)
	}
}

// waitRun waits for Run's result, failing if it is an error or takes
// longer than limit.
func waitRun(t *testing.T, done <-chan error, limit time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(limit):
		t.Fatalf("Run did not return within %v of cancellation", limit)
	}
}
