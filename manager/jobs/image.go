package jobs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// checkImageRef parses ref and guards its registry host.
func checkImageRef(ctx context.Context, g *Guard, ref string) error {
	if len(ref) > 1024 {
		return fmt.Errorf("%w: image reference too long", ErrInvalidArgs)
	}
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("%w: image %q: %v", ErrInvalidArgs, ref, err)
	}
	return g.CheckURL(ctx, "https://"+r.Context().RegistryStr()+"/v2/")
}

// ImageResolver resolves image references with go-containerregistry over a
// guarded transport: an index is expanded to the manifests of the wanted
// platforms (all when none are given), each manifest to its config and
// layer blobs. Blob URLs carry the registry's /v2/<repo>/blobs/<digest>.
type ImageResolver struct {
	transport http.RoundTripper
	insecure  bool
}

// NewImageResolver returns a resolver over g's transport. insecure allows
// plain-HTTP registries (tests, air-gapped labs).
func NewImageResolver(g *Guard, insecure bool) *ImageResolver {
	return &ImageResolver{transport: g.Transport(), insecure: insecure}
}

// Resolve implements Resolver.
func (r *ImageResolver) Resolve(ctx context.Context, a PreheatArgs) ([]Blob, error) {
	var opts []name.Option
	if r.insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(a.Image, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	var au authn.Authenticator = authn.Anonymous
	if a.Username != "" {
		au = &authn.Basic{Username: a.Username, Password: a.Password}
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(r.transport), remote.WithAuth(au)}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	scheme := repo.Scheme()
	blobURL := func(d v1.Hash) string {
		return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", scheme, repo.RegistryStr(), repo.RepositoryStr(), d)
	}
	var manifests []v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, m := range im.Manifests {
			if !m.MediaType.IsImage() || !wantPlatform(a.Platforms, m.Platform) {
				continue
			}
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, err
			}
			manifests = append(manifests, img)
		}
		if len(manifests) == 0 {
			return nil, fmt.Errorf("%w: no manifest for platforms %v", ErrInvalidArgs, a.Platforms)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		manifests = append(manifests, img)
	}
	seen := map[v1.Hash]bool{}
	var out []Blob
	add := func(d v1.Hash, size int64) {
		if !seen[d] {
			seen[d] = true
			out = append(out, Blob{URL: blobURL(d), Digest: d.String(), Size: size})
		}
	}
	for _, img := range manifests {
		m, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		add(m.Config.Digest, m.Config.Size)
		for _, l := range m.Layers {
			add(l.Digest, l.Size)
		}
	}
	return out, nil
}

func wantPlatform(want []string, p *v1.Platform) bool {
	if len(want) == 0 {
		return true
	}
	if p == nil {
		return false
	}
	have := p.OS + "/" + p.Architecture
	for _, w := range want {
		if w == have || (p.Variant != "" && w == have+"/"+p.Variant) || strings.EqualFold(w, p.String()) {
			return true
		}
	}
	return false
}

// Authorization returns the Authorization header value the registry of
// a.Image accepts for pulling its repository with the job's credentials
// (anonymous when none): "Basic …" for basic-auth registries, "Bearer …"
// after the token exchange, "" for registries without auth. Seed peers
// send it with their blob requests to that registry only (the source
// client drops it on a redirect to another host), so images of private
// repositories, and registries that want a token even for public ones,
// can be preheated. It is fetched again for every blob: tokens are short-lived.
func (r *ImageResolver) Authorization(ctx context.Context, a PreheatArgs) (string, error) {
	var opts []name.Option
	if r.insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(a.Image, opts...)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	var au authn.Authenticator = authn.Anonymous
	if a.Username != "" {
		au = &authn.Basic{Username: a.Username, Password: a.Password}
	}
	repo := ref.Context()
	capture := &authCapture{next: r.transport, host: repo.RegistryStr()}
	tr, err := transport.NewWithContext(ctx, repo.Registry, au, capture, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return "", err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), ref.Identifier())
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("registry answered %s for %s", resp.Status, a.Image)
	}
	return capture.value(), nil
}

// authCapture remembers the Authorization header of the last request sent
// to host's repository paths.
type authCapture struct {
	next http.RoundTripper
	host string
	mu   sync.Mutex
	auth string
}

func (c *authCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == c.host && strings.HasPrefix(req.URL.Path, "/v2/") && req.URL.Path != "/v2/" {
		c.mu.Lock()
		c.auth = req.Header.Get("Authorization")
		c.mu.Unlock()
	}
	return c.next.RoundTrip(req)
}

func (c *authCapture) value() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.auth
}
