package mirror_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/testnet"
)

// TestColdBlobStartsBeforeItsFirstPiece: a blob nobody has yet reaches the
// client from its first bytes on while the registry still holds back the
// rest of the first piece — whether a provider lookup (DHT only) or a
// scheduler found that nobody has it — and bytes the registry got wrong
// at the start fail the pull and are not kept.
func TestColdBlobStartsBeforeItsFirstPiece(t *testing.T) {
	for _, tc := range []struct {
		name       string
		schedulers int
		lie        bool // the registry's first bytes differ from the blob
	}{
		{"dht", 0, false},
		{"scheduler", 1, false},
		{"scheduler, wrong first bytes", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newUpstreamRegistry(t)
			img := testImage(t, reg, "library/cold:v1", 4<<20, 1)
			layers, _ := img.Layers()
			blob, digest := blobOf(t, layers[0])
			early := fmt.Sprintf("bytes=0-%d", download.EarlyBytes-1)

			// Every blob GET but the early range waits for release: the
			// first piece cannot be complete before the client's first
			// bytes must have arrived.
			release := make(chan struct{})
			reg.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
					return false
				}
				if r.Header.Get("Range") == early {
					if !tc.lie {
						return false
					}
					w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", download.EarlyBytes-1, len(blob)))
					w.Header().Set("Content-Length", fmt.Sprint(download.EarlyBytes))
					w.WriteHeader(http.StatusPartialContent)
					_, _ = w.Write(make([]byte, download.EarlyBytes))
					return true
				}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return false
			})
			var opts []testnet.Option
			if tc.schedulers > 0 {
				opts = append(opts, testnet.WithSchedulers(tc.schedulers))
			}
			c := startNodes(t, 2, opts...)
			ms := startMirror(t, c.Node(0).Downloader(), testConfig(reg))
			url := ms.URL + "/v2/library/cold/blobs/" + digest

			// The status line too waits for the first body bytes (net/http
			// sends headers with them).
			var resp *http.Response
			head := make([]byte, download.EarlyBytes)
			got := make(chan error, 1)
			go func() {
				var err error
				if resp, err = http.Get(url); err != nil {
					got <- err
					return
				}
				if resp.StatusCode != http.StatusOK {
					got <- fmt.Errorf("GET: %s", resp.Status)
					return
				}
				_, err = io.ReadFull(resp.Body, head)
				got <- err
			}()
			select {
			case err := <-got:
				if resp != nil {
					defer resp.Body.Close()
				}
				if err != nil {
					t.Fatalf("first bytes: %v", err)
				}
			case <-time.After(20 * time.Second):
				close(release)
				if err := <-got; err == nil {
					resp.Body.Close()
				}
				t.Fatal("no first bytes while the registry held back the first piece")
			}
			want := blob[:download.EarlyBytes]
			if tc.lie {
				want = make([]byte, download.EarlyBytes)
			}
			if !bytes.Equal(head, want) {
				t.Fatal("the first bytes are not the registry's")
			}
			close(release)
			rest, err := io.ReadAll(resp.Body)
			if tc.lie {
				if err == nil {
					t.Fatalf("the pull of a blob whose first bytes were wrong ended cleanly (%d more bytes)", len(rest))
				}
				// Nothing wrong was kept: the next pull, from a truthful
				// registry, gets the blob.
				reg.setHook(nil)
				_, body := do(t, http.MethodGet, url, nil)
				if !bytes.Equal(body, blob) {
					t.Fatalf("after the failed pull: %d bytes, not the blob", len(body))
				}
				return
			}
			if err != nil {
				t.Fatalf("rest of the blob: %v", err)
			}
			if !bytes.Equal(append(head, rest...), blob) {
				t.Fatalf("got %d bytes, not the blob (%d bytes)", len(head)+len(rest), len(blob))
			}
		})
	}
}
