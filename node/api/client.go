package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Client errors, for errors.Is.
var (
	// ErrNotFound: the task does not exist (locally, or in the cluster).
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the daemon cannot be reached on its socket.
	ErrUnavailable = errors.New("dfnode is not reachable")
	// ErrIncomplete: a stream ended without the daemon vouching for it.
	ErrIncomplete = errors.New("transfer incomplete or unverified")
)

// Error is an error answer from the daemon.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is maps codes to the client's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrBadRequest:
		return e.Code == CodeBadRequest
	}
	return false
}

// Client talks to a dfnode over its Unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:       4,
		DisableCompression: true,
	}
	return &Client{socket: path, hc: &http.Client{Transport: tr}}
}

// Socket returns the socket path.
func (c *Client) Socket() string { return c.socket }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, size int64, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://dfnode"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	var b ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &b) != nil || b.Error.Code == "" {
		return &Error{Status: resp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("dfnode answered %s", resp.Status)}
	}
	return &Error{Status: resp.StatusCode, Code: b.Error.Code, Message: b.Error.Message}
}

func (c *Client) getJSON(ctx context.Context, method, path string, body io.Reader, size int64, ctype string, out any) error {
	resp, err := c.do(ctx, method, path, body, size, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode dfnode answer: %w", err)
	}
	return nil
}

// ID returns the daemon's identity.
func (c *Client) ID(ctx context.Context) (IDInfo, error) {
	var v IDInfo
	return v, c.getJSON(ctx, http.MethodGet, "/v1/id", nil, 0, "", &v)
}

// ImportOptions name an import.
type ImportOptions struct {
	Name, Tag   string
	PieceLength uint32
}

// Import stores size bytes read from r as a task. When r is a regular
// *os.File, its descriptor is passed to the daemon, which reads the file
// itself (no copy through the socket).
func (c *Client) Import(ctx context.Context, r io.Reader, size int64, o ImportOptions) (TaskInfo, error) {
	q := url.Values{}
	if o.Name != "" || o.Tag != "" {
		q.Set("kind", "named")
		q.Set("name", o.Name)
		q.Set("tag", o.Tag)
	}
	if o.PieceLength != 0 {
		q.Set("piece_length", strconv.FormatUint(uint64(o.PieceLength), 10))
	}
	path := "/v1/tasks"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var v TaskInfo
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
			resp, err := c.importFD(ctx, path, f, size)
			if err != nil {
				return v, err
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 300 {
				return v, decodeError(resp)
			}
			return v, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v)
		}
	}
	return v, c.getJSON(ctx, http.MethodPost, path, r, size, "application/octet-stream", &v)
}

// List returns the daemon's local tasks.
func (c *Client) List(ctx context.Context) ([]TaskInfo, error) {
	var v []TaskInfo
	return v, c.getJSON(ctx, http.MethodGet, "/v1/tasks", nil, 0, "", &v)
}

// Stat describes a task (local only when local is true).
func (c *Client) Stat(ctx context.Context, id string, local bool) (StatInfo, error) {
	path := "/v1/tasks/" + url.PathEscape(id)
	if local {
		path += "?local=true"
	}
	var v StatInfo
	return v, c.getJSON(ctx, http.MethodGet, path, nil, 0, "", &v)
}

// Delete removes the local copy and withdraws it from the cluster.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.getJSON(ctx, http.MethodDelete, "/v1/tasks/"+url.PathEscape(id), nil, 0, "", nil)
}

// Export streams a task from the cluster; named is true for tasks imported
// with a name or tag.
func (c *Client) Export(ctx context.Context, id string, named bool) (*Stream, error) {
	path := "/v1/tasks/" + url.PathEscape(id) + "/content"
	if named {
		path += "?kind=named"
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, 0, "")
	if err != nil {
		return nil, err
	}
	return newStream(resp), nil
}

// Download streams a URL through the cluster.
func (c *Client) Download(ctx context.Context, req DownloadRequest) (*Stream, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/downloads", strings.NewReader(string(b)), int64(len(b)), "application/json")
	if err != nil {
		return nil, err
	}
	return newStream(resp), nil
}

// Stream is task content arriving from the daemon. Read returns io.EOF only
// once the daemon confirmed every byte verified; a cut or unverified stream
// yields an error wrapping ErrIncomplete.
type Stream struct {
	TaskID string
	Size   int64
	resp   *http.Response
	n      int64
	done   bool
	// Filled at EOF.
	FromPeers, FromSource int64
}

func newStream(resp *http.Response) *Stream {
	size, err := strconv.ParseInt(resp.Header.Get(HeaderContentLength), 10, 64)
	if err != nil || size < 0 {
		size = -1
	}
	return &Stream{TaskID: resp.Header.Get(HeaderTaskID), Size: size, resp: resp}
}

// Read implements io.Reader.
func (s *Stream) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n, err := s.resp.Body.Read(p)
	s.n += int64(n)
	if errors.Is(err, io.EOF) {
		result := s.resp.Trailer.Get(TrailerResult)
		s.FromPeers, _ = strconv.ParseInt(s.resp.Trailer.Get(TrailerFromPeers), 10, 64)
		s.FromSource, _ = strconv.ParseInt(s.resp.Trailer.Get(TrailerFromSource), 10, 64)
		if result != "ok" || s.n != s.Size {
			if result == "" {
				result = "stream cut"
			}
			return n, fmt.Errorf("%w: %s after %d of %d bytes", ErrIncomplete, result, s.n, s.Size)
		}
		s.done = true
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	return n, nil
}

// Close releases the stream.
func (s *Stream) Close() error { return s.resp.Body.Close() }
