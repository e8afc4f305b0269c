package serve

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/hypernoise/hypernoise/serve/batch"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // by endpoint and status
	latency  *prometheus.HistogramVec // by endpoint
	rows     prometheus.Histogram     // images per batch
	reqs     prometheus.Histogram     // requests per batch
	runSec   prometheus.Histogram     // wall time per batch
	images   *prometheus.CounterVec   // by method
	nfe      *prometheus.CounterVec   // network evaluations, by method
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hypernoise_http_requests_total",
		Help: "HTTP requests answered, by endpoint and status code."}, []string{"endpoint", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hypernoise_http_request_duration_seconds",
		Help: "Time from a request's arrival to its answer, by endpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"endpoint"})
	m.rows = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hypernoise_batch_images",
		Help: "Images (noise rows) per generation batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)})
	m.reqs = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hypernoise_batch_requests",
		Help: "Requests merged into one generation batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 11)})
	m.runSec = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hypernoise_batch_duration_seconds",
		Help: "Wall time of one generation batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	m.images = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hypernoise_images_generated_total",
		Help: "Images returned to clients, by method."}, []string{"method"})
	m.nfe = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hypernoise_network_evaluations_total",
		Help: "Generator network evaluations spent on the images returned, by method."}, []string{"method"})
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hypernoise_queue_depth",
		Help: "Generation requests waiting for a batch worker."}, func() float64 { return float64(s.batcher.Waiting()) })
	admitted := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hypernoise_requests_in_flight",
		Help: "Generation requests admitted (waiting or running)."}, func() float64 { return float64(len(s.admit)) })
	m.reg.MustRegister(m.requests, m.latency, m.rows, m.reqs, m.runSec, m.images, m.nfe, waiting, admitted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow(w, r, http.MethodGet, http.MethodHead) {
			h.ServeHTTP(w, r)
		}
	})
}

// observeRun records one batch (the batcher's OnRun).
func (m *metrics) observeRun(rows, requests int, seconds float64) {
	m.rows.Observe(float64(rows))
	m.reqs.Observe(float64(requests))
	m.runSec.Observe(seconds)
}

// reqInfo is what a handler tells the request's log line about its generation.
type reqInfo struct {
	method, hypernet string
	n, batchRows     int
	batchReqs        int
	nfe, genSeconds  float64
}

type infoKey struct{}

// noteRun records a finished generation in the request's log line and the metrics.
func noteRun(ctx context.Context, j job, res *batch.Result) {
	info, _ := ctx.Value(infoKey{}).(*reqInfo)
	if info == nil {
		return
	}
	*info = reqInfo{method: j.req.Method, hypernet: j.req.Hypernet, n: j.n, batchRows: res.Batch,
		batchReqs: res.Requests, nfe: res.NFE, genSeconds: res.Seconds}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// observe counts and times each request and logs one line for it: endpoint (the path, never the
// query string, which may hold a refused key), status, duration and, for generations, method,
// images, the batch they ran in and its network evaluations. Headers are never logged.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		info := &reqInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		endpoint := r.URL.Path
		if !slices.Contains(paths, endpoint) {
			endpoint = "other"
		}
		sec := time.Since(t0).Seconds()
		s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(sw.code)).Inc()
		s.metrics.latency.WithLabelValues(endpoint).Observe(sec)
		if info.n > 0 {
			s.metrics.images.WithLabelValues(info.method).Add(float64(info.n))
			s.metrics.nfe.WithLabelValues(info.method).Add(float64(info.n) * info.nfe)
		}
		if s.cfg.Log == nil {
			return
		}
		attrs := []slog.Attr{slog.String("http_method", r.Method), slog.String("path", endpoint),
			slog.Int("status", sw.code), slog.Float64("seconds", sec)}
		if info.n > 0 {
			attrs = append(attrs, slog.String("method", info.method), slog.String("hypernet", info.hypernet),
				slog.Int("n", info.n), slog.Int("batch_images", info.batchRows), slog.Int("batch_requests", info.batchReqs),
				slog.Float64("nfe_per_image", info.nfe), slog.Float64("generation_seconds", info.genSeconds))
		}
		s.cfg.Log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}
