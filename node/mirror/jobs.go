package mirror

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Downloads starts single-flighted content downloads: the part of the
// node's download conductor the mirror uses. FromDownloader adapts a
// *download.Downloader.
type Downloads interface {
	Start(req download.Request) (Job, error)
}

// Job is one download the mirror attached to; *download.Job implements it.
type Job interface {
	// Ready is closed once Layout is known or the job failed.
	Ready() <-chan struct{}
	// Done is closed when the job ended; Err is then its result.
	Done() <-chan struct{}
	Err() error
	Layout() protocol.Layout
	// WriteTo writes bytes [off, off+n) in order, as verified pieces arrive.
	WriteTo(ctx context.Context, w io.Writer, off, n int64) (int64, error)
	// Wait returns nil once the whole content matched its digest.
	Wait(ctx context.Context) error
	Stats() download.Stats
	// Release detaches; the job stops when its last user released it.
	Release()
}

// FromDownloader adapts the node's download conductor.
func FromDownloader(d *download.Downloader) Downloads { return conductor{d} }

type conductor struct{ d *download.Downloader }

func (c conductor) Start(req download.Request) (Job, error) {
	j, err := c.d.Start(req)
	if err != nil {
		return nil, err
	}
	return j, nil
}

var _ Job = (*download.Job)(nil)

// contentRequest is the conductor request for digest d of reg's repo: a
// content task whose origin is the registry URL, with the caller-derived
// Authorization (or none) as its back-to-source header.
func contentRequest(reg *registry, repo, kind string, d protocol.Digest, authz string) download.Request {
	h := http.Header{}
	if authz != "" {
		h.Set("Authorization", authz)
	}
	if kind == "manifests" {
		h.Set("Accept", manifestAccept)
	}
	return download.Request{
		ID:          protocol.ContentTaskID(d),
		Kind:        storage.KindContent,
		Source:      &download.SourceRequest{URL: reg.url(repo, kind, d.String()), Header: h},
		Application: "dfnode-mirror",
		// A runtime waits on every blob: its first bytes come from the
		// registry at once when nobody has it yet.
		Prompt: kind == "blobs",
	}
}

// layoutWaiter is a Job that knows its layout before its task exists in
// the store (*download.Job): headers and a new blob's first bytes need not
// wait for the store.
type layoutWaiter interface {
	LayoutKnown() <-chan struct{}
}

// waitReady waits until the job's layout is known; a job that failed first
// returns its (classified) error.
func waitReady(ctx context.Context, j Job) error {
	ready := j.Ready()
	if lw, ok := j.(layoutWaiter); ok {
		ready = lw.LayoutKnown()
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return classifyDownload(ctx.Err())
	}
	select {
	case <-j.Done():
		if err := j.Err(); err != nil {
			return classifyDownload(err)
		}
	default:
	}
	return nil
}

// waitComplete waits until the whole content is verified.
func waitComplete(ctx context.Context, j Job) error {
	if err := j.Wait(ctx); err != nil {
		return classifyDownload(err)
	}
	return nil
}

// start starts a download, classifying a refusal.
func (m *Mirror) start(req download.Request) (Job, error) {
	j, err := m.dl.Start(req)
	if err != nil {
		return nil, fmt.Errorf("start download: %w", classifyDownload(err))
	}
	return j, nil
}
