package mirror

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/dragonfly-p2p/df/protocol"
)

// serveManifest answers GET|HEAD /v2/<name>/manifests/<reference>. A tag is
// resolved at the registry (never by peers); the manifest itself comes by
// digest through the cluster, verified and checked in full before the
// first byte is sent.
func (m *Mirror) serveManifest(ctx context.Context, w http.ResponseWriter, q *request) error {
	var (
		d            protocol.Digest
		upstreamType string
		body         []byte
		cm           checkedManifest
	)
	if q.rt.byDigest {
		d = q.rt.digest
		if err := m.authorize(ctx, q); err != nil {
			return err
		}
	} else {
		tr, err := m.resolveTag(ctx, q)
		if err != nil {
			return err
		}
		m.confirm(q.reg, q.rt.name, q.cred, tr.digest)
		if q.head && tr.body == nil {
			writeManifestHeaders(w, tr.digest, tr.mediaType, tr.size)
			w.WriteHeader(http.StatusOK)
			return nil
		}
		d, upstreamType, body, cm = tr.digest, tr.mediaType, tr.body, tr.checked
	}
	if body == nil {
		var err error
		if body, cm, err = m.manifestByDigest(ctx, q, d, upstreamType); err != nil {
			return err
		}
	}
	// What a confirmed manifest references is in the same repository.
	m.confirm(q.reg, q.rt.name, q.cred, cm.refs...)
	writeManifestHeaders(w, d, cm.mediaType, int64(len(body)))
	w.WriteHeader(http.StatusOK)
	if !q.head {
		_, _ = w.Write(body) // a failed write is the client's problem
	}
	return nil
}

func writeManifestHeaders(w http.ResponseWriter, d protocol.Digest, mediaType string, size int64) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
}

// tagResult is a tag resolved at the registry.
type tagResult struct {
	digest    protocol.Digest
	mediaType string
	size      int64
	body      []byte          // set when the registry had to be asked with GET
	checked   checkedManifest // of body
}

// resolveTag asks the registry which manifest a tag names: HEAD with the
// caller's credentials, or GET (size-capped, digest computed and checked)
// when the registry's HEAD gives no usable digest.
func (m *Mirror) resolveTag(ctx context.Context, q *request) (tagResult, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.UpstreamTimeout)
	defer cancel()
	c := call{
		method: http.MethodHead, path: "/v2/" + q.rt.name + "/manifests/" + q.rt.tag,
		accept: acceptFor(q.r.Header.Values("Accept")), scope: scope(q.rt.name), cred: q.cred,
		follow: true, op: "resolve_tag",
	}
	maxSize := int64(m.cfg.MaxManifestSize)
	resp, err := m.up.do(ctx, q.reg, c)
	if err != nil {
		return tagResult{}, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength > maxSize {
			return tagResult{}, fmt.Errorf("%w: %s:%s is %d bytes (at most %d)", ErrManifestTooLarge, q.rt.name, q.rt.tag, resp.ContentLength, maxSize)
		}
		ct := cleanMediaType(resp.Header.Get("Content-Type"))
		d, derr := protocol.ParseDigest(resp.Header.Get("Docker-Content-Digest"))
		if _, known := manifestTypes[ct]; known && derr == nil && resp.ContentLength >= 0 {
			return tagResult{digest: d, mediaType: ct, size: resp.ContentLength}, nil
		}
		// No usable digest or type: ask with GET and compute it.
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
	default:
		return tagResult{}, statusError(resp, "HEAD manifest at "+q.reg.cfg.Name)
	}

	c.method, c.op = http.MethodGet, "get_tag"
	resp, err = m.up.do(ctx, q.reg, c)
	if err != nil {
		return tagResult{}, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return tagResult{}, statusError(resp, "GET manifest at "+q.reg.cfg.Name)
	}
	if resp.ContentLength > maxSize {
		return tagResult{}, fmt.Errorf("%w: %d bytes (at most %d)", ErrManifestTooLarge, resp.ContentLength, maxSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSize+1))
	if err != nil {
		return tagResult{}, transportError(ctx, q.reg, err)
	}
	if int64(len(body)) > maxSize {
		return tagResult{}, fmt.Errorf("%w: more than %d bytes", ErrManifestTooLarge, maxSize)
	}
	if resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		return tagResult{}, fmt.Errorf("%w: manifest body of %d bytes, announced %d", ErrUpstream, len(body), resp.ContentLength)
	}
	d := protocol.SHA256(body)
	if hd := resp.Header.Get("Docker-Content-Digest"); hd != "" {
		if want, err := protocol.ParseDigest(hd); err == nil && want != d {
			return tagResult{}, fmt.Errorf("%w: registry announced %s, bytes are %s", ErrDigestMismatch, want, d)
		}
	}
	cm, err := validateManifest(body, resp.Header.Get("Content-Type"), m.cfg.MaxManifestEntries)
	if err != nil {
		return tagResult{}, err
	}
	return tagResult{digest: d, mediaType: cm.mediaType, size: int64(len(body)), body: body, checked: cm}, nil
}

// manifestByDigest downloads manifest d through the cluster, waits for the
// whole-content verification, then checks it (upstreamType: the
// registry's Content-Type for it, when known).
func (m *Mirror) manifestByDigest(ctx context.Context, q *request, d protocol.Digest, upstreamType string) ([]byte, checkedManifest, error) {
	authz, err := m.sourceAuth(ctx, q)
	if err != nil {
		return nil, checkedManifest{}, err
	}
	job, err := m.start(contentRequest(q.reg, q.rt.name, "manifests", d, authz))
	if err != nil {
		return nil, checkedManifest{}, err
	}
	defer job.Release()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ReadyTimeout)
	defer cancel()
	if err := waitReady(ctx, job); err != nil {
		return nil, checkedManifest{}, err
	}
	n := job.Layout().ContentLength
	if n > int64(m.cfg.MaxManifestSize) {
		return nil, checkedManifest{}, fmt.Errorf("%w: %s is %d bytes (at most %d)", ErrManifestTooLarge, d, n, m.cfg.MaxManifestSize)
	}
	if err := waitComplete(ctx, job); err != nil {
		return nil, checkedManifest{}, err
	}
	var buf bytes.Buffer
	buf.Grow(int(n))
	if _, err := job.WriteTo(ctx, &buf, 0, n); err != nil {
		return nil, checkedManifest{}, classifyDownload(err)
	}
	cm, err := validateManifest(buf.Bytes(), upstreamType, m.cfg.MaxManifestEntries)
	if err != nil {
		return nil, checkedManifest{}, err
	}
	return buf.Bytes(), cm, nil
}

// sourceAuth is the back-to-source Authorization for this caller's
// downloads: the caller's own Bearer token, a registry token obtained with
// the caller's credentials (or anonymously), the caller's Basic credentials
// for a Basic registry, or nothing.
func (m *Mirror) sourceAuth(ctx context.Context, q *request) (string, error) {
	m.up.ensureChallenge(ctx, q.reg)
	authz, _, err := m.up.authorization(ctx, q.reg, scope(q.rt.name), q.cred, false)
	return authz, err
}
