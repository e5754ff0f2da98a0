// Package admission implements cluster admission (the member protocol): a
// node proves it holds the cluster secret with an HMAC over a fresh nonce
// bound to both peer IDs, and verifies every peer it connects to the same
// way. Until a peer is admitted, only the member protocol is served to it:
// GatedHost wraps a libp2p host so that every other stream handler, and
// every outbound stream, waits for admission first. A peer that fails is
// disconnected and blocked at the connection gater.
package admission

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pproto "github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/protocol"
	"github.com/dragonfly-p2p/df/protocol/pb"
)

// MinSecretLength is the shortest cluster secret accepted.
const MinSecretLength = 16

// Errors.
var (
	// ErrWeakSecret: the cluster secret is empty or shorter than
	// MinSecretLength. An open cluster is never the default.
	ErrWeakSecret = errors.New("cluster secret missing or shorter than 16 bytes")
	// ErrNotMember: the peer failed admission (wrong secret, no member
	// protocol) or is not connected.
	ErrNotMember = errors.New("peer is not an admitted cluster member")
)

// Blocker is where failed peers are reported; *p2p.Gater implements it.
type Blocker interface {
	Block(p peer.ID, d time.Duration)
}

// Admission verifies peers and answers their challenges.
type Admission struct {
	h        host.Host
	secret   []byte
	blocker  Blocker
	log      *slog.Logger
	timeout  time.Duration
	blockFor time.Duration
	admitted prometheus.Counter
	rejected prometheus.Counter

	mu      sync.Mutex
	peers   map[peer.ID]*peerState
	onAdmit []func(peer.ID)
	closed  bool
}

type peerState struct {
	done   chan struct{} // closed when verification ended
	member bool
	err    error
}

// Option configures New.
type Option func(*Admission)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(a *Admission) { a.log = l } }

// WithTimeout bounds one verification (default 10 s).
func WithTimeout(d time.Duration) Option { return func(a *Admission) { a.timeout = d } }

// WithBlockDuration sets how long a peer that proved the wrong secret is
// refused at the gater (default 10 min).
func WithBlockDuration(d time.Duration) Option { return func(a *Admission) { a.blockFor = d } }

// WithRegisterer exports admitted/rejected counters.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(a *Admission) {
		reg.MustRegister(a.admitted, a.rejected)
	}
}

// New sets up admission on h. It registers the member protocol handler and
// starts verifying every peer that connects. secret must be at least
// MinSecretLength bytes.
func New(h host.Host, secret []byte, blocker Blocker, opts ...Option) (*Admission, error) {
	if len(secret) < MinSecretLength {
		return nil, ErrWeakSecret
	}
	a := &Admission{
		h:        h,
		secret:   append([]byte(nil), secret...),
		blocker:  blocker,
		log:      slog.New(slog.DiscardHandler),
		timeout:  10 * time.Second,
		blockFor: 10 * time.Minute,
		peers:    make(map[peer.ID]*peerState),
		admitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dragonfly_admission_admitted_total", Help: "Peers that proved cluster membership."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dragonfly_admission_rejected_total", Help: "Peers that failed cluster admission."}),
	}
	for _, o := range opts {
		o(a)
	}
	h.SetStreamHandler(protocol.MemberID, a.handleChallenge)
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { go a.ensure(c.RemotePeer()) },
		DisconnectedF: func(n network.Network, c network.Conn) { a.disconnected(n, c.RemotePeer()) },
	})
	for _, p := range h.Network().Peers() { // connections made before New
		go a.ensure(p)
	}
	return a, nil
}

// OnAdmit registers f to run (in its own goroutine) whenever a peer is
// admitted.
func (a *Admission) OnAdmit(f func(peer.ID)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onAdmit = append(a.onAdmit, f)
}

// IsMember reports whether p is connected and admitted.
func (a *Admission) IsMember(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.peers[p]
	return st != nil && st.member
}

// Allowed reports whether p is admitted or its verification is under way:
// the DHT's routing-table filter uses it, and the DHT's own liveness check
// (a query through the gated host) then waits for the verdict.
func (a *Admission) Allowed(p peer.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.peers[p]
	return ok
}

// Members returns the admitted peers.
func (a *Admission) Members() []peer.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]peer.ID, 0, len(a.peers))
	for p, st := range a.peers {
		if st.member {
			out = append(out, p)
		}
	}
	return out
}

// Wait blocks until p's admission is decided: nil when p is a member,
// ErrNotMember when it failed or p is not connected, or ctx's error.
func (a *Admission) Wait(ctx context.Context, p peer.ID) error {
	if p == a.h.ID() {
		return nil
	}
	st := a.ensure(p)
	if st == nil {
		return fmt.Errorf("%w: %s is not connected", ErrNotMember, p)
	}
	select {
	case <-st.done:
		if st.member {
			return nil
		}
		return fmt.Errorf("%w: %s: %w", ErrNotMember, p, st.err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops verifying new peers.
func (a *Admission) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	a.h.RemoveStreamHandler(protocol.MemberID)
}

// ensure starts verifying p unless that is under way or done, and returns
// p's state (nil if p is not connected).
func (a *Admission) ensure(p peer.ID) *peerState {
	a.mu.Lock()
	if st, ok := a.peers[p]; ok {
		a.mu.Unlock()
		return st
	}
	if a.closed || a.h.Network().Connectedness(p) != network.Connected {
		a.mu.Unlock()
		return nil
	}
	st := &peerState{done: make(chan struct{})}
	a.peers[p] = st
	a.mu.Unlock()

	go a.verify(p, st)
	return st
}

func (a *Admission) disconnected(n network.Network, p peer.ID) {
	if n.Connectedness(p) == network.Connected {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.peers[p]; ok {
		select {
		case <-st.done:
			delete(a.peers, p) // re-verify on the next connection
		default: // verification in flight: it will fail and clean up
		}
	}
}

// errWrongProof marks a peer that answered but with a wrong MAC.
var errWrongProof = errors.New("wrong membership proof")

func (a *Admission) verify(p peer.ID, st *peerState) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	err := a.challenge(ctx, p)

	a.mu.Lock()
	st.member, st.err = err == nil, err
	hooks := append([]func(peer.ID){}, a.onAdmit...)
	if err != nil {
		delete(a.peers, p) // a later connection starts over (unless blocked)
	}
	close(st.done)
	a.mu.Unlock()

	if err == nil {
		a.admitted.Inc()
		a.log.Debug("peer admitted", "peer", p)
		for _, f := range hooks {
			go f(p)
		}
		return
	}
	a.rejected.Inc()
	if errors.Is(err, errWrongProof) || errors.Is(err, protocol.ErrBadMessage) || errors.Is(err, errNoMemberProtocol) {
		a.log.Warn("peer failed cluster admission; blocking it", "peer", p, "for", a.blockFor, "err", err)
		if a.blocker != nil {
			a.blocker.Block(p, a.blockFor)
		}
	} else {
		a.log.Info("peer admission did not complete; disconnecting", "peer", p, "err", err)
	}
	_ = a.h.Network().ClosePeer(p)
}

// errNoMemberProtocol marks a peer that does not speak the member protocol.
var errNoMemberProtocol = errors.New("peer does not speak the member protocol")

// challenge is the verifier side: send a nonce, check the proof.
func (a *Admission) challenge(ctx context.Context, p peer.ID) error {
	s, err := a.h.NewStream(network.WithAllowLimitedConn(ctx, "member"), p, protocol.MemberID)
	if err != nil {
		if errors.Is(err, msmux.ErrNotSupported[libp2pproto.ID]{}) {
			return fmt.Errorf("%w: %w", errNoMemberProtocol, err)
		}
		return fmt.Errorf("open member stream: %w", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	nonce := make([]byte, protocol.MemberNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		s.Reset()
		return fmt.Errorf("nonce: %w", err)
	}
	if err := protocol.WriteMsg(s, &pb.MemberChallenge{Nonce: nonce}); err != nil {
		s.Reset()
		return fmt.Errorf("send challenge: %w", err)
	}
	var proof pb.MemberProof
	if err := protocol.ReadMsg(bufio.NewReaderSize(s, 64), &proof, protocol.MaxMemberMessageSize); err != nil {
		s.Reset()
		if errors.Is(err, protocol.ErrBadFrame) || errors.Is(err, protocol.ErrFrameTooLarge) {
			return fmt.Errorf("%w: %w", errWrongProof, err)
		}
		return fmt.Errorf("read proof: %w", err)
	}
	mac, err := protocol.ParseMemberProof(&proof)
	if err != nil {
		return err
	}
	if !hmac.Equal(mac, a.mac(p, a.h.ID(), nonce)) {
		return errWrongProof
	}
	return nil
}

// handleChallenge is the prover side.
func (a *Admission) handleChallenge(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(a.timeout))
	var ch pb.MemberChallenge
	if err := protocol.ReadMsg(bufio.NewReaderSize(s, 64), &ch, protocol.MaxMemberMessageSize); err != nil {
		s.Reset()
		return
	}
	nonce, err := protocol.ParseMemberChallenge(&ch)
	if err != nil {
		s.Reset()
		return
	}
	if err := protocol.WriteMsg(s, &pb.MemberProof{Mac: a.mac(a.h.ID(), s.Conn().RemotePeer(), nonce)}); err != nil {
		s.Reset()
	}
}

// mac is HMAC-SHA256(secret, "dragonfly/member/v1" || lp(prover) ||
// lp(verifier) || nonce), lp = uvarint length prefix.
func (a *Admission) mac(prover, verifier peer.ID, nonce []byte) []byte {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte("dragonfly/member/v1"))
	var n [binary.MaxVarintLen64]byte
	for _, id := range []peer.ID{prover, verifier} {
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(id)))])
		m.Write([]byte(id))
	}
	m.Write(nonce)
	return m.Sum(nil)
}

// ReadSecretFile reads a cluster secret file: it must not be readable by
// group or others, and trailing whitespace is ignored.
func ReadSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster secret %s has mode %v: run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	secret := []byte(strings.TrimRight(string(raw), " \t\r\n"))
	if len(secret) < MinSecretLength {
		return nil, fmt.Errorf("cluster secret %s: %w", path, ErrWeakSecret)
	}
	return secret, nil
}
