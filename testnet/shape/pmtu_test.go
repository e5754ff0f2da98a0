package shape

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// sizes records the largest datagram read through it.
type sizes struct {
	net.PacketConn
	largest atomic.Int64
}

func (s *sizes) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := s.PacketConn.ReadFrom(b)
	if int64(n) > s.largest.Load() {
		s.largest.Store(int64(n))
	}
	return n, addr, err
}

// QUIC over a shaped socket discovers the path MTU as over a plain one:
// without it every packet stays at QUIC's initial 1280 bytes and a shaped
// link carries more header bytes per byte of content than a real one.
func TestQUICDiscoversThePathMTUThroughAShapedSocket(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true") // the recorder is no *net.UDPConn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	link := NewLink(Spec{})
	client, err := link.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw := loopbackUDP(t)
	server := &sizes{PacketConn: raw}
	ln, err := quic.Listen(server, selfSigned(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const total = 8 << 20
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			got <- result{err: err}
			return
		}
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			got <- result{err: err}
			return
		}
		n, err := io.Copy(io.Discard, st)
		got <- result{n, err}
	}()
	conn, err := quic.Dial(ctx, client, raw.LocalAddr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"test"}}, nil) //nolint:gosec // a throwaway test certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for range total / len(chunk) {
		if _, err := st.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if r := <-got; r.err != nil || r.n != total {
		t.Fatalf("the server read %d bytes (%v), want %d", r.n, r.err, total)
	}
	if l := server.largest.Load(); l <= 1280 {
		t.Fatalf("the largest packet sent through the shaped socket was %d bytes: no path MTU discovery", l)
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shape-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"test"}}
}
