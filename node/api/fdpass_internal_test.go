package api

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
)

// A unix socket whose peer closes with unread data makes recvmsg fail with
// ECONNRESET, and ReadMsgUnix then reports -1 bytes; fdConn must report 0,
// or the HTTP server's bufio panics ("reader returned negative count").
func TestFDConnReadAfterResetIsNotNegative(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	server, client := &fdConn{UnixConn: conn(fds[0])}, conn(fds[1])
	defer server.Close()
	if _, err := server.Write([]byte("unread by the client")); err != nil {
		t.Fatal(err)
	}
	client.Close() // with data unread: the server's next read is a reset

	n, err := server.Read(make([]byte, 16))
	if n < 0 {
		t.Fatalf("Read = %d, %v: a negative count", n, err)
	}
	if err == nil {
		t.Fatal("Read after the peer reset returned no error")
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Logf("err = %v (not ECONNRESET; the count is what matters)", err)
	}
}
