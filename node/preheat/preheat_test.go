package preheat_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dragonfly-p2p/df/node/preheat"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/p2p"
	"github.com/dragonfly-p2p/df/protocol/pb"
	"github.com/dragonfly-p2p/df/protocol/preheatclient"
)

// job is a download the test drives by hand.
type job struct {
	done     chan struct{}
	err      error
	bytes    atomic.Int64
	total    int64
	released atomic.Bool
}

func (j *job) Done() <-chan struct{}         { return j.done }
func (j *job) Err() error                    { return j.err }
func (j *job) Progress() (done, total int64) { return j.bytes.Load(), j.total }
func (j *job) Release()                      { j.released.Store(true) }
func (j *job) finish(err error)              { j.err = err; close(j.done) }
func newJob(total int64) *job                { return &job{done: make(chan struct{}), total: total} }
func (t *tasks) Delete(context.Context, protocol.PreheatRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.delErr
}

type tasks struct {
	mu     sync.Mutex
	jobs   []*job
	reqs   []protocol.PreheatRequest
	next   func() *job
	delErr error
}

func (t *tasks) Preheat(req protocol.PreheatRequest) (preheat.Job, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j := t.next()
	t.jobs = append(t.jobs, j)
	t.reqs = append(t.reqs, req)
	return j, nil
}

func (t *tasks) Where(context.Context, protocol.PreheatRequest) (preheat.Where, error) {
	return preheat.Where{Local: true, CompletePeers: 2, Peers: []string{"a", "b"}}, nil
}

func (t *tasks) job(i int) *job {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < len(t.jobs) {
		return t.jobs[i]
	}
	return nil
}

func setup(t *testing.T, tk *tasks, opts ...preheat.Option) (host.Host, peer.ID) {
	t.Helper()
	newHost := func() host.Host {
		h, err := p2p.NewHost(t.TempDir(), p2p.NewGater(), p2p.WithListen("/ip4/127.0.0.1/udp/0/quic-v1"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	srv, cli := newHost(), newHost()
	preheat.New(tk, append([]preheat.Option{preheat.WithInterval(20 * time.Millisecond)}, opts...)...).Register(srv) // raw host: admission is the node's
	if err := cli.Connect(context.Background(), peer.AddrInfo{ID: srv.ID(), Addrs: srv.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return cli, srv.ID()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const url = "https://registry.example.com/v2/app/blobs/x"

func req() *pb.PreheatRequest {
	return &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: url,
		Headers: []*pb.PreheatHeader{{Name: "Authorization", Value: "Bearer secret"}}}
}

func TestPreheatStreamsProgressThenSucceeds(t *testing.T) {
	tk := &tasks{next: func() *job { return newJob(100) }}
	cli, srv := setup(t, tk)
	var frames atomic.Int32
	var last atomic.Int64
	go func() {
		waitFor(t, "job", func() bool { return tk.job(0) != nil })
		j := tk.job(0)
		j.bytes.Store(40)
		waitFor(t, "a progress frame", func() bool { return last.Load() == 40 })
		j.bytes.Store(100)
		j.finish(nil)
	}()
	final, err := preheatclient.Do(ctxT(t), cli, srv, req(), func(p protocol.PreheatProgress) {
		frames.Add(1)
		last.Store(p.BytesDone)
		if p.State != pb.PreheatState_PREHEAT_STATE_RUNNING || p.Total != 100 {
			t.Errorf("frame %+v", p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if final.State != pb.PreheatState_PREHEAT_STATE_SUCCEEDED || final.BytesDone != 100 || final.Total != 100 {
		t.Fatalf("final %+v", final)
	}
	if frames.Load() == 0 {
		t.Fatal("no progress frame before the end")
	}
	r := tk.reqs[0]
	if r.Header.Get("Authorization") != "Bearer secret" || r.URL != url {
		t.Fatalf("request reached the node as %+v", r)
	}
	waitFor(t, "release", tk.job(0).released.Load)
}

func TestPreheatReportsFailure(t *testing.T) {
	tk := &tasks{next: func() *job { j := newJob(0); j.finish(errors.New("origin answered 404 Not Found")); return j }}
	cli, srv := setup(t, tk)
	final, err := preheatclient.Do(ctxT(t), cli, srv, req(), nil)
	if !errors.Is(err, preheatclient.ErrFailed) || !strings.Contains(final.Error, "404") {
		t.Fatalf("err %v, final %+v", err, final)
	}
}

func TestPreheatBadRequests(t *testing.T) {
	tk := &tasks{next: func() *job { return newJob(1) }}
	cli, srv := setup(t, tk)
	for name, m := range map[string]*pb.PreheatRequest{
		"file url":    {Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: "file:///etc/shadow"},
		"md5 digest":  {Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: url, Digest: "md5:00"},
		"unknown op":  {Op: 77, Url: url},
		"host header": {Op: pb.PreheatOp_PREHEAT_OP_PREHEAT, Url: url, Headers: []*pb.PreheatHeader{{Name: "Host", Value: "x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			// Send it raw: the client refuses to send bad requests.
			s, err := cli.NewStream(ctxT(t), srv, protocol.PreheatID)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := protocol.WriteMsg(s, m); err != nil {
				t.Fatal(err)
			}
			var out pb.PreheatProgress
			if err := protocol.ReadMsg(bufioReader(s), &out, protocol.MaxPreheatProgressSize); err != nil {
				t.Fatal(err)
			}
			if out.GetState() != pb.PreheatState_PREHEAT_STATE_FAILED || out.GetError() == "" {
				t.Fatalf("answer %v", &out)
			}
		})
	}
	if len(tk.reqs) != 0 {
		t.Fatalf("bad requests started %d downloads", len(tk.reqs))
	}
}

func TestPreheatOversizeFrameResets(t *testing.T) {
	tk := &tasks{next: func() *job { return newJob(1) }}
	cli, srv := setup(t, tk)
	s, err := cli.NewStream(ctxT(t), srv, protocol.PreheatID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _ = s.Write([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}) // a 4 GiB length prefix
	var out pb.PreheatProgress
	if err := protocol.ReadMsg(bufioReader(s), &out, protocol.MaxPreheatProgressSize); err == nil {
		t.Fatalf("got an answer %v, want a reset", &out)
	}
}

func TestPreheatBusyAndQueued(t *testing.T) {
	tk := &tasks{next: func() *job { return newJob(10) }}
	cli, srv := setup(t, tk, preheat.WithConcurrency(1, 1))
	ctx := ctxT(t)
	first := make(chan error, 1)
	go func() { _, err := preheatclient.Do(ctx, cli, srv, req(), nil); first <- err }()
	waitFor(t, "first job", func() bool { return tk.job(0) != nil })
	queued := make(chan error, 1)
	var sawQueued atomic.Bool
	go func() {
		_, err := preheatclient.Do(ctx, cli, srv, req(), func(p protocol.PreheatProgress) {
			if p.State == pb.PreheatState_PREHEAT_STATE_QUEUED {
				sawQueued.Store(true)
			}
		})
		queued <- err
	}()
	waitFor(t, "the second request to queue", sawQueued.Load)
	_, err := preheatclient.Do(ctx, cli, srv, req(), nil)
	if !errors.Is(err, preheatclient.ErrFailed) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("third request: %v, want busy", err)
	}
	tk.job(0).finish(nil)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "queued job to start", func() bool { return tk.job(1) != nil })
	tk.job(1).finish(nil)
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
}

func TestPreheatRequesterGoneReleasesJob(t *testing.T) {
	tk := &tasks{next: func() *job { return newJob(10) }}
	cli, srv := setup(t, tk)
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() { _, err := preheatclient.Do(ctx, cli, srv, req(), nil); errc <- err }()
	waitFor(t, "job", func() bool { return tk.job(0) != nil })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	waitFor(t, "the abandoned job to be released", tk.job(0).released.Load)
}

func TestStatAndDelete(t *testing.T) {
	tk := &tasks{next: func() *job { return newJob(1) }}
	cli, srv := setup(t, tk)
	d := protocol.SHA256([]byte("x")).String()
	got, err := preheatclient.Do(ctxT(t), cli, srv, &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_STAT, Digest: d}, nil)
	if err != nil || !got.Local || got.CompletePeers != 2 || len(got.Peers) != 2 {
		t.Fatalf("stat %+v %v", got, err)
	}
	if _, err := preheatclient.Do(ctxT(t), cli, srv, &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_DELETE, Digest: d}, nil); err != nil {
		t.Fatal(err)
	}
	tk.mu.Lock() // the handler reads it in another goroutine (the race detector cannot see the stream ordering)
	tk.delErr = errors.New("scheduler unreachable")
	tk.mu.Unlock()
	if _, err := preheatclient.Do(ctxT(t), cli, srv, &pb.PreheatRequest{Op: pb.PreheatOp_PREHEAT_OP_DELETE, Digest: d}, nil); !errors.Is(err, preheatclient.ErrFailed) {
		t.Fatalf("delete error not reported: %v", err)
	}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
