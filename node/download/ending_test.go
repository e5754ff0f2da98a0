package download

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"

	"github.com/dragonfly-p2p/df/node/source"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
	"github.com/dragonfly-p2p/df/storage/disk"
)

// quietAnnouncer is the Announcer of a node nobody else can find: the
// downloads below go to their origin alone.
type quietAnnouncer struct{}

func (quietAnnouncer) Provide(protocol.TaskID)                             {}
func (quietAnnouncer) WaitProvided(context.Context, protocol.TaskID) error { return nil }
func (quietAnnouncer) Withdraw(...protocol.TaskID)                         {}

// lyingOrigin serves content under a name; while lie is set, it serves
// other bytes of the same length.
type lyingOrigin struct {
	content []byte
	lie     atomic.Bool
	*httptest.Server
}

func newLyingOrigin(t *testing.T, size int) *lyingOrigin {
	t.Helper()
	o := &lyingOrigin{content: make([]byte, size)}
	for i := range o.content {
		o.content[i] = byte(i * 7)
	}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := o.content
		if o.lie.Load() {
			body = bytes.Repeat([]byte{'x'}, size)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(o.Close)
	return o
}

// newTestDownloader is a downloader on a real store and libp2p host whose
// only source is the origin.
func newTestDownloader(t *testing.T) *Downloader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := disk.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	src, err := source.New(source.WithAllowedNetworks([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	if err != nil {
		t.Fatal(err)
	}
	d := New(h, st, nil, quietAnnouncer{}, WithOrigin(src), WithConfig(Config{GatherWindow: time.Millisecond}))
	ran := make(chan struct{})
	go func() { defer close(ran); _ = d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ran
		_ = st.Close()
		_ = h.Close()
	})
	return d
}

// pieceLength is larger than io.Copy's buffer: a reader reads a piece in
// several steps, and the pieces can be discarded between two of them.
const pieceLength = 4 * protocol.MinPieceLength

func contentRequest(o *lyingOrigin) Request {
	return Request{
		ID:          protocol.ContentTaskID(protocol.SHA256(o.content)),
		Kind:        storage.KindContent,
		PieceLength: pieceLength,
		Source:      &SourceRequest{URL: o.URL + "/blob"},
	}
}

// TestFailingJob: once an origin's bytes failed the content digest, a
// reader reports that failure (not that its piece vanished), and a request
// made after the failure gets a new download instead of the old failure.
func TestFailingJob(t *testing.T) {
	const size = 4 * pieceLength
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, d *Downloader, o *lyingOrigin)
	}{
		{"a reader behind the digest check gets the job's error", func(t *testing.T, d *Downloader, o *lyingOrigin) {
			j, err := d.Start(contentRequest(o))
			if err != nil {
				t.Fatal(err)
			}
			defer j.Release()
			// The reader holds its first write until the job ended: by then
			// every piece was discarded, the rest of the first one included.
			w := writerFunc(func(p []byte) (int, error) {
				<-j.Done()
				return len(p), nil
			})
			_, err = j.WriteTo(testContext(t), w, 0, size)
			if !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("reader's error %v, want the job's digest mismatch (job: %v)", err, j.Err())
			}
		}},
		{"a request after the failure starts afresh", func(t *testing.T, d *Downloader, o *lyingOrigin) {
			next := make(chan *Job, 1)
			waits := make(chan struct{})
			var once sync.Once
			testHookStartWaits = func() { close(waits) }
			testHookFailing = func() {
				once.Do(func() {
					// The failure is decided and the job not yet ended: the
					// origin turns honest and a new request comes. It must
					// wait for the job to end (which cannot happen while this
					// hook runs), not return the failing job.
					o.lie.Store(false)
					go func() {
						j, err := d.Start(contentRequest(o))
						if err != nil {
							t.Error(err)
						}
						next <- j
					}()
					select {
					case <-waits:
					case j := <-next:
						next <- j // joined the failing job: checked below
					}
				})
			}
			t.Cleanup(func() { testHookFailing, testHookStartWaits = nil, nil })
			j, err := d.Start(contentRequest(o))
			if err != nil {
				t.Fatal(err)
			}
			defer j.Release()
			if err := j.Wait(testContext(t)); !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("first download: %v, want a digest mismatch", err)
			}
			again := <-next
			if again == nil {
				t.FailNow()
			}
			defer again.Release()
			if again == j {
				t.Fatal("the new request joined the failed download")
			}
			if err := again.Wait(testContext(t)); err != nil {
				t.Fatalf("second download: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newLyingOrigin(t, size)
			o.lie.Store(true)
			tc.run(t, newTestDownloader(t), o)
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
