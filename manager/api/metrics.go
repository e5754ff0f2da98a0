package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logins   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dragonfly_manager_http_requests_total", Help: "API requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dragonfly_manager_http_request_duration_seconds", Help: "API request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}, []string{"route"}),
		logins:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dragonfly_manager_logins_total", Help: "Login attempts by result."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.logins)
	}
	return m
}

// WithRegisterer registers the API's metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(s *Server) { s.reg = reg } }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
	w.ResponseWriter.WriteHeader(c)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		s.m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}
