package node_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node/api"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/testnet"
)

func socketCluster(t *testing.T, n int, opts ...testnet.Option) (*testnet.Cluster, []*api.Client) {
	t.Helper()
	c := startCluster(t, n, append(opts, testnet.WithAPISockets())...)
	ctx := testCtx(t)
	var clients []*api.Client
	for _, nd := range c.Nodes() {
		if err := testnet.WaitFor(ctx, 10*time.Millisecond, func() bool { _, err := os.Stat(nd.Socket()); return err == nil }); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, api.NewClient(nd.Socket()))
	}
	return c, clients
}

func TestAPISocketIsPrivate(t *testing.T) {
	c, _ := socketCluster(t, 1)
	fi, err := os.Stat(c.Node(0).Socket())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestAPIErrors(t *testing.T) {
	_, cl := socketCluster(t, 1)
	ctx := testCtx(t)
	missing := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"stat missing locally", func() error { _, err := cl[0].Stat(ctx, missing, true); return err }, api.ErrNotFound},
		{"stat bad id", func() error { _, err := cl[0].Stat(ctx, "../../etc/passwd", true); return err }, api.ErrBadRequest},
		{"stat uppercase id", func() error { _, err := cl[0].Stat(ctx, strings.ToUpper(missing), true); return err }, api.ErrBadRequest},
		{"delete missing", func() error { return cl[0].Delete(ctx, missing) }, api.ErrNotFound},
		{"download file URL", func() error {
			_, err := cl[0].Download(ctx, api.DownloadRequest{URL: "file:///etc/shadow"})
			return err
		}, api.ErrBadRequest},
		{"download md5 digest", func() error {
			_, err := cl[0].Download(ctx, api.DownloadRequest{URL: "http://127.0.0.1/x", Digest: "md5:d41d8cd98f00b204e9800998ecf8427e"})
			return err
		}, api.ErrBadRequest},
		{"import bad piece length", func() error {
			_, err := cl[0].Import(ctx, strings.NewReader("x"), 1, api.ImportOptions{PieceLength: 1000})
			return err
		}, api.ErrBadRequest},
		{"daemon unreachable", func() error { _, err := api.NewClient("/nonexistent.sock").ID(ctx); return err }, api.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAPIImportExportThroughSockets(t *testing.T) {
	_, cl := socketCluster(t, 2)
	ctx := testCtx(t)
	data := payload(3<<20+7, 9)
	info, err := cl[0].Import(ctx, bytes.NewReader(data), int64(len(data)), api.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != protocol.SHA256(data).Hex() || !info.Complete {
		t.Fatalf("import info %+v", info)
	}
	s, err := cl[1].Export(ctx, info.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	s.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("export: %v (equal=%v)", err, bytes.Equal(got, data))
	}
	if s.FromPeers != int64(len(data)) {
		t.Fatalf("bytes from peers = %d, want %d", s.FromPeers, len(data))
	}
	// Named import: exported by name on the other node.
	named, err := cl[0].Import(ctx, bytes.NewReader(data[:1000]), 1000, api.ImportOptions{Name: "n", Tag: "t"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := protocol.NamedTaskID("n", "t")
	if named.ID != want.String() || named.Kind != "named" {
		t.Fatalf("named import %+v", named)
	}
	s, err = cl[1].Export(ctx, named.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(s)
	s.Close()
	if err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("named export: %v", err)
	}
}

// A stream the daemon cannot finish must not look complete to the client.
func TestAPIStreamCutIsAnError(t *testing.T) {
	c, cl := socketCluster(t, 2, shortFind())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	data := payload(8<<20, 10)
	id := importBytes(t, c.Node(0), data)
	s, err := cl[1].Export(ctx, id.String(), false)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	// The only parent disappears mid-stream.
	if err := c.Node(0).Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, s)
	if err == nil {
		// It may all have arrived before the stop; then it must be whole.
		if s.Size != int64(len(data)) {
			t.Fatal("stream ended without error but short")
		}
		return
	}
	if !errors.Is(err, api.ErrIncomplete) && !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
}

func TestAPIImportPassesTheFile(t *testing.T) {
	_, cl := socketCluster(t, 1)
	ctx := testCtx(t)
	data := payload(1<<20+3, 31)
	path := t.TempDir() + "/f"
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := cl[0].Import(ctx, f, int64(len(data)), api.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != protocol.SHA256(data).Hex() {
		t.Fatalf("imported %s, want the file's digest", info.ID)
	}
	// A reader that is not the whole file goes as a byte stream.
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cl[0].Import(ctx, io.LimitReader(f, 10), 10, api.ImportOptions{}); err != nil {
		t.Fatalf("a plain stream import: %v", err)
	}
}

// A request that claims to carry a descriptor but does not is refused.
func TestAPIImportWithoutDescriptor(t *testing.T) {
	c, _ := socketCluster(t, 1)
	conn, err := net.Dial("unix", c.Node(0).Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\n%s: 1\r\n%s: 10\r\nContent-Length: 0\r\n\r\n", api.HeaderFD, api.HeaderContentLength)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}
