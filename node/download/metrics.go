package download

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/node/ratelimit"
	"github.com/dragonfly-p2p/df/node/source"
)

type metrics struct {
	bytes          *prometheus.CounterVec
	jobs           *prometheus.CounterVec
	drops          *prometheus.CounterVec
	schedFallbacks prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_download_bytes_total", Help: "Bytes downloaded, by where they came from (peer, source)."}, []string{"from"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_download_jobs_total", Help: "Finished downloads, by result."}, []string{"result"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_download_parent_drops_total", Help: "Parents dropped from a download, by reason."}, []string{"reason"}),
		schedFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_download_scheduler_fallbacks_total", Help: "Downloads that fell back to the DHT because no scheduler answered."}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.bytes, m.jobs, m.drops, m.schedFallbacks)
}

// badPeers remembers peers that sent provably bad data, for a while, so no
// download uses them.
type badPeers struct {
	mu    sync.Mutex
	until map[peer.ID]time.Time
}

// badPeerTTL is how long a misbehaving peer is shunned.
const badPeerTTL = 10 * time.Minute

func newBadPeers() *badPeers { return &badPeers{until: make(map[peer.ID]time.Time)} }

func (b *badPeers) add(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.until[p] = time.Now().Add(badPeerTTL)
	if len(b.until) > 4096 {
		now := time.Now()
		for k, t := range b.until {
			if now.After(t) {
				delete(b.until, k)
			}
		}
	}
}

func (b *badPeers) isBad(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[p]
	if ok && time.Now().After(t) {
		delete(b.until, p)
		return false
	}
	return ok
}

// IsBad reports whether p is shunned after misbehaving.
func (d *Downloader) IsBad(p peer.ID) bool { return d.bad.isBad(p) }

func redactedURL(u string) string { return source.RedactURL(u) }

// taskLimiter is the per-task download limiter (nil: none).
func (j *Job) taskLimiter() *ratelimit.Limiter {
	j.limOnce.Do(func() {
		if j.req.RateLimit > 0 {
			j.lim = ratelimit.New(j.req.RateLimit)
		}
	})
	return j.lim
}
