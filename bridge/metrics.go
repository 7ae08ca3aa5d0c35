package bridge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wsbridge/internal/cluster"
)

// Stats is a snapshot of the server's counters.
type Stats struct {
	Connections int64
	Deliveries  uint64
	Publishes   uint64
	Closes      map[int]uint64 // by WebSocket close code; 1006 for dropped sockets
	Refusals    map[int]uint64 // handshakes refused, by HTTP status
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections: s.metrics.Connections(),
		Deliveries:  s.metrics.Deliveries(),
		Publishes:   s.metrics.Publishes(),
		Closes:      s.metrics.Closes(),
		Refusals:    s.metrics.Refusals(),
	}
}

// clock is monotonic nanoseconds since the server started, never 0.
func (s *Server) clock() int64 { return int64(time.Since(s.epoch)) + 1 }

// collector exports the server's metrics: internal/metrics' counters, and
// the gauges that describe shared state (NATS subscriptions, feeds, the
// worker queue), read under their locks here, at scrape time, never on a
// hot path.
type collector struct {
	s       *Server
	descs   map[string]*prometheus.Desc
	cluster *cluster.Metrics
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsbridge_"+name, help, labels, nil)
}

func newCollector(s *Server) *collector {
	ds := []struct{ key, help string }{
		{"nats_subscriptions", "NATS subscriptions held for core client interest: one per subject and queue group on this node."},
		{"partial_message_bytes", "Bytes of client messages still being assembled, node-wide (bounded by BRIDGE_MAX_PARTIAL_BYTES)."},
		{"dispatch_backlog_bytes", "Bytes of messages taken from NATS and not yet queued to clients."},
		{"requests_in_flight", "Client requests waiting for a reply or their timeout."},
		{"acked_publishes_in_flight", "Client acked publishes waiting for their PubAck."},
		{"jetstream_feeds", "Shared JetStream consumers feeding live subscriptions: one per stream and subject on this node."},
		{"jetstream_catchups_total", "Subscriptions with from that had history to replay, from a feed's resume window or JetStream."},
		{"jetstream_resumes_total", "Subscriptions with from (other than new) that went live, by source: window (served from a feed's resume window alone) or jetstream (read history from JetStream)."},
		{"jetstream_catchup_consumers_total", "Ordered consumers created to read history for subscriptions below a resume window; each serves every such subscription of its feed whose range it overlaps."},
		{"nats_connected", "1 while the NATS connection is up."},
		{"worker_queue_depth", "Connections with events waiting for a netpoll worker."},
		{"draining", "1 while the node is shutting down."},
	}
	c := &collector{s: s, descs: make(map[string]*prometheus.Desc, len(ds)), cluster: cluster.NewMetrics()}
	for _, d := range ds {
		var labels []string
		if d.key == "jetstream_resumes_total" {
			labels = []string{"source"}
		}
		c.descs[d.key] = desc(d.key, d.help, labels...)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	c.s.metrics.Describe(ch)
	c.cluster.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	counter := func(key string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[key], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(key string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[key], prometheus.GaugeValue, v)
	}
	s.metrics.Collect(ch)
	s.imu.Lock()
	nsubs := len(s.interests)
	s.imu.Unlock()
	gauge("nats_subscriptions", float64(nsubs))
	gauge("dispatch_backlog_bytes", float64(s.pending.Load()))
	gauge("partial_message_bytes", float64(s.partials.Used()))
	gauge("requests_in_flight", float64(s.out.Requests()))
	gauge("acked_publishes_in_flight", float64(s.pub.Inflight()))
	gauge("jetstream_feeds", float64(s.streams.Feeds()))
	st := s.streams.Stats()
	counter("jetstream_catchups_total", st.Catchups)
	counter("jetstream_resumes_total", st.ResumesFromWindow, "window")
	counter("jetstream_resumes_total", st.ResumesFromJetStream, "jetstream")
	counter("jetstream_catchup_consumers_total", st.CatchupConsumers)
	gauge("nats_connected", boolGauge(s.natsUp.Load()))
	gauge("worker_queue_depth", float64(s.poller.Queued()))
	gauge("draining", boolGauge(s.draining.Load()))
	c.cluster.Collect(ch, c.s.cluster.View())
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
