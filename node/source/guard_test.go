package source

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestBlockedAtDial goes through the real dialer: the refusal happens before
// connect(2), so the server never sees a connection, and is not retried.
func TestBlockedAtDial(t *testing.T) {
	o := startOrigin(t, serveContent(testData, "", testMod))
	tests := []struct {
		name string
		url  string
	}{
		{"loopback IP", o.URL},
		{"host name resolving to loopback", "http://localhost:" + o.port()},
		{"IPv6 loopback", "http://[::1]:" + o.port()},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:" + o.port()},
		{"unspecified", "http://0.0.0.0:" + o.port()},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/"},
		{"private network", "http://10.0.0.1/"},
		{"unique local", "http://[fd00::1]/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			c, err := New(WithLogger(logs.logger()), WithRetry(3, time.Millisecond, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			_, err = c.Stat(t.Context(), Request{URL: tt.url})
			if !errors.Is(err, ErrBlockedAddress) {
				t.Fatalf("Stat(%s) = %v, want ErrBlockedAddress", tt.url, err)
			}
			if n := logs.count("retrying"); n != 0 {
				t.Errorf("a blocked address was retried %d times", n)
			}
		})
	}
	if n := o.accepts.Load(); n != 0 {
		t.Fatalf("server accepted %d connections from blocked dials", n)
	}
	// The same server is reachable once loopback is allowed: the count above
	// would have seen the connections.
	if _, err := newClient(t).Stat(t.Context(), Request{URL: o.URL}); err != nil {
		t.Fatalf("Stat with loopback allowed: %v", err)
	}
	if n := o.accepts.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1", n)
	}
}

func TestAllowedNetworks(t *testing.T) {
	o := startOrigin(t, serveContent(testData, `"v1"`, testMod))
	c, err := New(WithAllowedNetworks([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	for _, u := range []string{o.URL, "http://localhost:" + o.port()} {
		m, err := c.Stat(t.Context(), Request{URL: u})
		if err != nil || m.ContentLength != int64(len(testData)) {
			t.Errorf("Stat(%s) = %+v, %v", u, m, err)
		}
	}
}

// countingConn counts the bytes read through a wrapped connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// TestConnWrapper: every connection the policy allowed goes through the
// wrapper (testnet shapes origin traffic so); a refused dial never reaches it.
func TestConnWrapper(t *testing.T) {
	o := startOrigin(t, serveContent(testData, `"v1"`, testMod))
	for _, tc := range []struct {
		name    string
		allowed []netip.Prefix
		wantErr bool
	}{
		{"allowed: the body comes through the wrapper", loopback, false},
		{"blocked: nothing is wrapped", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var read, wrapped atomic.Int64
			c, err := New(WithAllowedNetworks(tc.allowed), WithRetry(0, time.Millisecond, time.Millisecond),
				WithConnWrapper(func(conn net.Conn) net.Conn {
					wrapped.Add(1)
					return countingConn{Conn: conn, n: &read}
				}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			body, _, err := c.Open(t.Context(), Request{URL: o.URL + "/f"})
			if tc.wantErr {
				if err == nil {
					body.Close()
					t.Fatal("a blocked origin was fetched")
				}
				if wrapped.Load() != 0 {
					t.Fatalf("%d refused connections were wrapped", wrapped.Load())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(body)
			body.Close()
			if err != nil || len(got) != len(testData) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
			if wrapped.Load() != 1 || read.Load() < int64(len(testData)) {
				t.Fatalf("%d connections wrapped, %d bytes read through them; want 1 and ≥ %d", wrapped.Load(), read.Load(), len(testData))
			}
		})
	}
}
