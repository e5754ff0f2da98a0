package mirror

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dragonfly-p2p/df/node/download"
)

// metrics are the mirror's Prometheus series. Labels carry configured
// registry names, endpoints and statuses only: never a repository, a
// reference or anything from a request header.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	served    *prometheus.CounterVec
	upstreams *prometheus.CounterVec
	access    *prometheus.CounterVec
	aborted   prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_mirror_requests_total",
			Help: "Mirror requests, by endpoint (base, manifest, blob, other), method and status code."},
			[]string{"endpoint", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dragonfly_dfnode_mirror_response_header_seconds",
			Help:    "Time from a mirror request to its response headers, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
			[]string{"endpoint"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_mirror_served_bytes_total",
			Help: "Body bytes served by the mirror, by where the node got them (peer, origin, cache = already stored here)."},
			[]string{"source"}),
		upstreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_mirror_upstream_requests_total",
			Help: "Requests of the mirror to registries and their token endpoints, by registry, operation and status (or error)."},
			[]string{"registry", "op", "code"}),
		access: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_mirror_access_checks_total",
			Help: "Access decisions before serving from the cluster, by result (cached, confirmed, refused, error)."},
			[]string{"result"}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dragonfly_dfnode_mirror_aborted_responses_total",
			Help: "Responses aborted after their headers because the download failed or the client left."}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.served, m.upstreams, m.access, m.aborted} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) request(ep endpoint, method string, code int) {
	m.requests.WithLabelValues(ep.String(), method, strconv.Itoa(code)).Inc()
}

func (m *metrics) headers(ep endpoint, d time.Duration) {
	m.duration.WithLabelValues(ep.String()).Observe(d.Seconds())
}

func (m *metrics) upstream(registry, op, code string) {
	m.upstreams.WithLabelValues(registry, op, code).Inc()
}

// servedBytes attributes n served bytes to where the job got its content:
// all to "cache" when the job downloaded nothing (complete before), else in
// proportion to its bytes from peers and from the origin.
func (m *metrics) servedBytes(st download.Stats, n int64) {
	if n <= 0 {
		return
	}
	total := st.BytesFromPeers + st.BytesFromSource
	if total <= 0 {
		m.served.WithLabelValues("cache").Add(float64(n))
		return
	}
	peer := float64(n) * float64(st.BytesFromPeers) / float64(total)
	m.served.WithLabelValues("peer").Add(peer)
	m.served.WithLabelValues("origin").Add(float64(n) - peer)
}
