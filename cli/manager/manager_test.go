package manager

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/cli/clikit"
	"github.com/dragonfly-p2p/df/manager/store"
)

func TestRunBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("data_dir: x\nbogus: 1\n"), 0o600)
	cases := []struct {
		name string
		args []string
		env  [2]string
	}{
		{"unknown yaml key", []string{"run", "--config", bad}, [2]string{}},
		{"bad env twin", []string{"run", "--data-dir", dir}, [2]string{"MANAGER_BCRYPT_COST", "3"}},
		{"bad addr", []string{"run", "--data-dir", dir, "--addr", "nope"}, [2]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env[0] != "" {
				t.Setenv(tc.env[0], tc.env[1])
			}
			var stderr bytes.Buffer
			if code := clikit.Execute(context.Background(), NewCommand(), tc.args, &stderr); code != clikit.ExitUsage {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
		})
	}
}

func TestRunStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t.Setenv("MANAGER_BCRYPT_COST", "10")
	var stderr bytes.Buffer
	code := clikit.Execute(ctx, NewCommand(), []string{"run", "--data-dir", dir, "--addr", "127.0.0.1:0", "--log-format", "text"}, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	st, err := store.Open(filepath.Join(dir, "manager.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if u, err := st.User("root"); err != nil || u.Role != store.RoleRoot {
		t.Fatalf("root not bootstrapped: %+v %v", u, err)
	}
}

func TestRunMountsConsole(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		env   string // MANAGER_CONSOLE, "" = unset
		login int    // status of GET /login
	}{
		{"on by default", nil, "", http.StatusOK},
		{"flag off", []string{"--console=false"}, "", http.StatusNotFound},
		{"env twin off", nil, "false", http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MANAGER_BCRYPT_COST", "10")
			if tc.env != "" {
				t.Setenv("MANAGER_CONSOLE", tc.env)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			exit := make(chan int, 1)
			var stderr bytes.Buffer
			args := append([]string{"run", "--data-dir", t.TempDir(), "--addr", addr, "--log-format", "text"}, tc.args...)
			go func() { exit <- clikit.Execute(ctx, NewCommand(), args, &stderr) }()
			deadline := time.Now().Add(10 * time.Second)
			var resp *http.Response
			for {
				resp, err = http.Get("http://" + addr + "/login")
				if err == nil {
					resp.Body.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("manager never served: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if resp.StatusCode != tc.login {
				t.Fatalf("GET /login: %d, want %d", resp.StatusCode, tc.login)
			}
			if r, err := http.Get("http://" + addr + "/api/v1/healthz"); err != nil || r.StatusCode != http.StatusOK {
				t.Fatalf("API health: %v", err)
			}
			cancel()
			if code := <-exit; code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
		})
	}
}
