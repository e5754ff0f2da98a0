package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Descriptor passing. `dfcache import` opens the file itself (with the
// caller's permissions) and hands the open descriptor to the daemon over the
// Unix socket (SCM_RIGHTS), so the daemon reads the file directly instead of
// receiving every byte through the socket. The daemon never learns or opens
// a path; it can only read the one file it was handed.

// HeaderFD marks a request that carries a file descriptor.
const HeaderFD = "X-Dragonfly-Fd"

// errNoFD: the request says it carries a descriptor but none arrived.
var errNoFD = errors.New("file descriptor missing")

// fdListener wraps a Unix listener so connections collect passed descriptors.
type fdListener struct{ net.Listener }

func (l fdListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UnixConn); ok {
		return &fdConn{UnixConn: uc}, nil
	}
	return c, nil
}

// fdConn reads with ReadMsgUnix and keeps descriptors that arrive.
type fdConn struct {
	*net.UnixConn
	mu  sync.Mutex
	fds []int
}

// maxQueuedFDs bounds descriptors a connection may hold unclaimed.
const maxQueuedFDs = 4

func (c *fdConn) Read(b []byte) (int, error) {
	oob := make([]byte, syscall.CmsgSpace(4*maxQueuedFDs))
	n, oobn, _, _, err := c.UnixConn.ReadMsgUnix(b, oob)
	if oobn > 0 {
		c.collect(oob[:oobn])
	}
	// ReadMsgUnix reports recvmsg's -1 on errors such as a reset by the
	// peer; io.Reader's contract (and net/http's bufio) needs 0.
	return max(n, 0), err
}

func (c *fdConn) collect(oob []byte) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if len(c.fds) >= maxQueuedFDs {
				syscall.Close(fd)
				continue
			}
			syscall.CloseOnExec(fd)
			c.fds = append(c.fds, fd)
		}
	}
}

// take returns the oldest unclaimed descriptor.
func (c *fdConn) take() (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.fds) == 0 {
		return nil, errNoFD
	}
	fd := c.fds[0]
	c.fds = c.fds[1:]
	return os.NewFile(uintptr(fd), "passed-fd"), nil
}

func (c *fdConn) Close() error {
	c.mu.Lock()
	for _, fd := range c.fds {
		syscall.Close(fd)
	}
	c.fds = nil
	c.mu.Unlock()
	return c.UnixConn.Close()
}

type fdConnKey struct{}

// passedFile returns the descriptor passed with r, checked to be a regular
// file of the declared size.
func passedFile(r *http.Request, size int64) (*os.File, error) {
	c, ok := r.Context().Value(fdConnKey{}).(*fdConn)
	if !ok {
		return nil, fmt.Errorf("%w: %w (not a Unix socket connection)", ErrBadRequest, errNoFD)
	}
	f, err := c.take()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: the passed descriptor is not a regular file", ErrBadRequest)
	}
	if fi.Size() != size {
		f.Close()
		return nil, fmt.Errorf("%w: the passed file has %d bytes, the request says %d", ErrBadRequest, fi.Size(), size)
	}
	return f, nil
}

// importFD sends an import request with f's descriptor on a fresh
// connection and returns the response.
func (c *Client) importFD(ctx context.Context, path string, f *os.File, size int64) (*http.Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	uc := conn.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { uc.Close() })
	defer stop()
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: dfnode\r\n%s: 1\r\n%s: %d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		path, HeaderFD, HeaderContentLength, size)
	rights := syscall.UnixRights(int(f.Fd()))
	if _, _, err := uc.WriteMsgUnix([]byte(req), rights, nil); err != nil {
		uc.Close()
		return nil, fmt.Errorf("%w at %s: %w", ErrUnavailable, c.socket, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(uc), nil)
	if err != nil {
		uc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("read dfnode answer: %w", err)
	}
	resp.Body = struct {
		*bufioBody
	}{&bufioBody{resp.Body, uc}}
	return resp, nil
}

// bufioBody closes the connection with the body.
type bufioBody struct {
	body interface {
		Read([]byte) (int, error)
		Close() error
	}
	conn net.Conn
}

func (b *bufioBody) Read(p []byte) (int, error) { return b.body.Read(p) }
func (b *bufioBody) Close() error {
	b.body.Close()
	return b.conn.Close()
}

func parseSize(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: bad %s", ErrBadRequest, HeaderContentLength)
	}
	return n, nil
}
