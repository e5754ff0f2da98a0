package service

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	decisions     *prometheus.CounterVec
	latency       prometheus.Histogram
	backToSource  prometheus.Counter
	seedTriggers  prometheus.Counter
	traffic       *prometheus.CounterVec
	registrations prometheus.Counter
	reschedules   prometheus.Counter
	pieceFailures prometheus.Counter
	peersDone     *prometheus.CounterVec
	badMessages   prometheus.Counter
	probes        prometheus.Counter
	hosts, tasks  prometheus.Gauge
	peers         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "dragonfly", "scheduler"
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "decisions_total",
			Help: "Scheduling decisions by result (parents, back-to-source, empty, failure, wait)."}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "decision_duration_seconds",
			Help: "Time to make one scheduling decision.", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
		backToSource: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "back_to_source_total",
			Help: "Peers sent to the origin."}),
		seedTriggers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "seed_triggers_total",
			Help: "Seed peers asked to fetch a task from its origin."}),
		traffic: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "traffic_bytes_total",
			Help: "Bytes of verified pieces reported by peers, by type (peer, back-to-source)."}, []string{"type"}),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "registrations_total",
			Help: "Peer registrations (including re-registrations after failover)."}),
		reschedules: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reschedules_total",
			Help: "Reschedule requests from peers."}),
		pieceFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "piece_failures_total",
			Help: "Failed piece transfers reported by peers."}),
		peersDone: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "peers_done_total",
			Help: "Finished downloads by result."}, []string{"result"}),
		badMessages: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bad_messages_total",
			Help: "Messages refused as malformed or out of bounds."}),
		probes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "probe_requests_total",
			Help: "RTT probe requests sent to hosts."}),
		hosts: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "hosts", Help: "Hosts known."}),
		tasks: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "tasks", Help: "Tasks known."}),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "peers", Help: "Peers known."}),
	}
	m.traffic.WithLabelValues("peer")
	m.traffic.WithLabelValues("back-to-source")
	if reg != nil {
		reg.MustRegister(m.decisions, m.latency, m.backToSource, m.seedTriggers, m.traffic, m.registrations,
			m.reschedules, m.pieceFailures, m.peersDone, m.badMessages, m.probes, m.hosts, m.tasks, m.peers)
	}
	return m
}
