package testnet

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A baseline process that ends before it is ready (opentracker losing its
// port to another process) ends the wait at once, with what it printed,
// instead of holding the run until its deadline (here 20 s: a wait that
// runs into it fails the test with the context's error).
func TestBaselineProcessWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		wait    func(*proc) error
		wantErr string // "" for success
	}{
		{"listening", []string{"-c", "sleep 30"}, func(p *proc) error { return waitListening(ctx, p, ln.Addr().String()) }, ""},
		{"exits before listening", []string{"-c", "echo 'bind: Address already in use' >&2; exit 111"},
			func(p *proc) error { return waitListening(ctx, p, "127.0.0.1:1") }, "Address already in use"},
		{"file written, then exits", []string{"-c", "touch done"}, func(p *proc) error { return waitFile(ctx, p, filepath.Join(dir, "done")) }, ""},
		{"exits without the file", []string{"-c", "exit 3"}, func(p *proc) error { return waitFile(ctx, p, filepath.Join(dir, "never")) }, "exit status 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pctx, stop := context.WithCancel(ctx)
			p, err := startProc(pctx, dir, strings.ReplaceAll(tc.name, " ", "-"), "sh", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { stop(); <-p.done }()
			err = tc.wait(p)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("wait: %v", err)
			case tc.wantErr != "" && (!errors.Is(err, errExited) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("wait: %v, want errExited with %q", err, tc.wantErr)
			}
		})
	}
}
