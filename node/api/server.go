package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dragonfly-p2p/df/node/download"
	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/storage"
)

// Service is what the API exposes; *node.Node implements it.
type Service interface {
	ID() IDInfo
	Import(ctx context.Context, req ImportRequest, r io.Reader) (TaskInfo, error)
	List(ctx context.Context) ([]TaskInfo, error)
	Stat(ctx context.Context, id protocol.TaskID, localOnly bool) (StatInfo, error)
	Delete(ctx context.Context, id protocol.TaskID) error
	// Export streams a task, downloading it from peers when it is not
	// local. kind is KindContent unless the caller knows it is a named task.
	Export(ctx context.Context, id protocol.TaskID, kind storage.Kind) (Content, error)
	// Download streams a URL through the cluster.
	Download(ctx context.Context, req DownloadRequest) (Content, error)
}

// ImportRequest describes an import; the content is the request body.
type ImportRequest struct {
	Kind        storage.Kind // KindContent or KindNamed
	Name, Tag   string       // KindNamed
	PieceLength uint32
	Size        int64
}

// Content is a download in progress (or done) that can be streamed;
// *download.Job implements it.
type Content interface {
	ID() protocol.TaskID
	Ready() <-chan struct{}
	Err() error
	Layout() protocol.Layout
	WriteTo(ctx context.Context, w io.Writer, off, n int64) (int64, error)
	Wait(ctx context.Context) error
	Stats() download.Stats
	Release()
}

// Server serves the local API.
type Server struct {
	svc     Service
	log     *slog.Logger
	uids    map[uint32]bool
	maxBody int64
	srv     *http.Server
}

// ServerOption configures NewServer.
type ServerOption func(*Server)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.log = l } }

// WithAllowedUIDs lets these users in besides root and the daemon's own
// user (checked with SO_PEERCRED on every connection).
func WithAllowedUIDs(uids ...uint32) ServerOption {
	return func(s *Server) {
		for _, u := range uids {
			s.uids[u] = true
		}
	}
}

// WithMaxImportSize bounds an import body (default: protocol.MaxContentLength).
func WithMaxImportSize(n int64) ServerOption { return func(s *Server) { s.maxBody = n } }

// NewServer returns the API server.
func NewServer(svc Service, opts ...ServerOption) *Server {
	s := &Server{
		svc:     svc,
		log:     slog.New(slog.DiscardHandler),
		uids:    map[uint32]bool{0: true, uint32(os.Getuid()): true},
		maxBody: protocol.MaxContentLength,
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/id", s.handleID)
	mux.HandleFunc("POST /v1/tasks", s.handleImport)
	mux.HandleFunc("GET /v1/tasks", s.handleList)
	mux.HandleFunc("GET /v1/tasks/{id}", s.handleStat)
	mux.HandleFunc("DELETE /v1/tasks/{id}", s.handleDelete)
	mux.HandleFunc("GET /v1/tasks/{id}/content", s.handleExport)
	mux.HandleFunc("POST /v1/downloads", s.handleDownload)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       s.checkPeer,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s
}

// Listen creates the Unix socket at path with mode 0600, replacing a stale
// socket file (but refusing to replace anything else).
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s exists and is not a socket; remove it or choose another --api-socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s is in use: is another dfnode running?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale api socket: %w", err)
		}
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on api socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod api socket: %w", err)
	}
	return ln, nil
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(fdListener{ln}) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		return nil
	}
}

type ctxKey struct{}

// checkPeer refuses connections from users other than root, the daemon's
// own user and the allowed ones (SO_PEERCRED).
func (s *Server) checkPeer(ctx context.Context, c net.Conn) context.Context {
	var uc *net.UnixConn
	switch v := c.(type) {
	case *fdConn:
		uc = v.UnixConn
		ctx = context.WithValue(ctx, fdConnKey{}, v)
	case *net.UnixConn:
		uc = v
	default:
		return context.WithValue(ctx, ctxKey{}, false)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return context.WithValue(ctx, ctxKey{}, false)
	}
	var uid uint32
	var credErr error
	_ = raw.Control(func(fd uintptr) {
		var cred *syscall.Ucred
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		if cred != nil {
			uid = cred.Uid
		}
	})
	return context.WithValue(ctx, ctxKey{}, credErr == nil && s.uids[uid])
}

func (s *Server) allowed(w http.ResponseWriter, r *http.Request) bool {
	if ok, _ := r.Context().Value(ctxKey{}).(bool); ok {
		return true
	}
	writeError(w, http.StatusForbidden, CodeBadRequest, "this user may not use the dfnode API")
	return false
}

func (s *Server) handleID(w http.ResponseWriter, r *http.Request) {
	if s.allowed(w, r) {
		writeJSON(w, http.StatusOK, s.svc.ID())
	}
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	tasks, err := s.svc.List(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (s *Server) handleImport(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	body := io.Reader(http.MaxBytesReader(w, r.Body, max(r.ContentLength, 0)))
	size := r.ContentLength
	if r.Header.Get(HeaderFD) != "" { // the file comes as a descriptor
		n, err := parseSize(r.Header.Get(HeaderContentLength))
		if err != nil {
			s.fail(w, err)
			return
		}
		f, err := passedFile(r, n)
		if err != nil {
			s.fail(w, err)
			return
		}
		defer f.Close()
		body, size = io.NewSectionReader(f, 0, n), n
	}
	if size < 0 {
		writeError(w, http.StatusLengthRequired, CodeBadRequest, "imports need a Content-Length")
		return
	}
	if size > s.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, CodeBadRequest, fmt.Sprintf("import of %d bytes exceeds the limit of %d", size, s.maxBody))
		return
	}
	q := r.URL.Query()
	req := ImportRequest{Kind: storage.KindContent, Name: q.Get("name"), Tag: q.Get("tag"), Size: size}
	switch q.Get("kind") {
	case "", "content":
		if req.Name != "" || req.Tag != "" {
			req.Kind = storage.KindNamed
		}
	case "named":
		req.Kind = storage.KindNamed
	default:
		writeError(w, http.StatusBadRequest, CodeBadRequest, "kind must be content or named")
		return
	}
	if pl := q.Get("piece_length"); pl != "" {
		n, err := strconv.ParseUint(pl, 10, 32)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, "piece_length must be a number")
			return
		}
		req.PieceLength = uint32(n)
	}
	info, err := s.svc.Import(r.Context(), req, body)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) taskID(w http.ResponseWriter, r *http.Request) (protocol.TaskID, bool) {
	id, err := protocol.ParseTaskID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return id, false
	}
	return id, true
}

func (s *Server) handleStat(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	st, err := s.svc.Stat(r.Context(), id, r.URL.Query().Get("local") == "true")
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	if err := s.svc.Delete(r.Context(), id); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	id, ok := s.taskID(w, r)
	if !ok {
		return
	}
	kind := storage.KindContent
	switch r.URL.Query().Get("kind") {
	case "", "content":
	case "named":
		kind = storage.KindNamed
	default:
		writeError(w, http.StatusBadRequest, CodeBadRequest, "kind must be content or named")
		return
	}
	c, err := s.svc.Export(r.Context(), id, kind)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.stream(w, r, c)
}

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	var req DownloadRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 256<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "bad download request: "+err.Error())
		return
	}
	c, err := s.svc.Download(r.Context(), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.stream(w, r, c)
}

// stream sends a task's content as it is verified. Headers go out only
// once the layout is known, so "not found" is a clean 404; after that a
// failure ends with an error trailer and a cut connection.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, c Content) {
	defer c.Release()
	ctx := r.Context()
	select {
	case <-c.Ready():
	case <-ctx.Done():
		return
	}
	if err := c.Err(); err != nil {
		s.fail(w, err)
		return
	}
	layout := c.Layout()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	// Not Content-Length: HTTP/1.1 trailers need a chunked body.
	h.Set(HeaderContentLength, strconv.FormatInt(layout.ContentLength, 10))
	h.Set(HeaderTaskID, c.ID().String())
	h.Set("Trailer", strings.Join([]string{TrailerResult, TrailerFromPeers, TrailerFromSource}, ", "))
	w.WriteHeader(http.StatusOK)
	_, err := c.WriteTo(ctx, w, 0, layout.ContentLength)
	if err == nil {
		err = c.Wait(ctx)
	}
	st := c.Stats()
	h.Set(TrailerFromPeers, strconv.FormatInt(st.BytesFromPeers, 10))
	h.Set(TrailerFromSource, strconv.FormatInt(st.BytesFromSource, 10))
	if err != nil {
		h.Set(TrailerResult, "error: "+oneLine(err.Error()))
		s.log.Info("stream to local client failed", "task", c.ID().Short(), "err", err)
		panic(http.ErrAbortHandler) // the client must not mistake a cut body for a complete one
	}
	h.Set(TrailerResult, "ok")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// fail maps an error to a status and code.
func (s *Server) fail(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, CodeInternal
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, download.ErrNoSource):
		status, code = http.StatusNotFound, CodeNotFound
	case errors.Is(err, protocol.ErrBadTaskID), errors.Is(err, protocol.ErrBadURLTask),
		errors.Is(err, protocol.ErrBadDigest), errors.Is(err, protocol.ErrBadLayout),
		errors.Is(err, storage.ErrSizeChanged), errors.Is(err, ErrBadRequest), errors.As(err, &maxErr):
		status, code = http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, storage.ErrExists):
		status, code = http.StatusConflict, CodeConflict
	case errors.Is(err, storage.ErrNoSpace), errors.Is(err, syscall.ENOSPC):
		status, code = http.StatusInsufficientStorage, CodeNoSpace
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, code = http.StatusServiceUnavailable, CodeUnavailable
	}
	if status == http.StatusInternalServerError {
		s.log.Warn("api request failed", "err", err)
	}
	writeError(w, status, code, err.Error())
}

// ErrBadRequest marks a service error caused by the request's content.
var ErrBadRequest = errors.New("bad request")

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}
