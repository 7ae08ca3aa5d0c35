package bridge

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts what the bridge does. Hot paths touch only atomics (a
// fan-out adds its totals once per message, not once per delivery) and
// client_golang histograms, whose Observe is lock-free too; the collector
// turns them into wsbridge_* metrics at scrape time.
type metrics struct {
	conns      atomic.Int64
	accepted   atomic.Uint64
	deliveries atomic.Uint64
	publishes  atomic.Uint64
	dropped    atomic.Uint64
	slow       atomic.Uint64
	subs       atomic.Int64
	reconnects atomic.Uint64
	natsSlow   atomic.Uint64 // messages from NATS dropped over MaxPendingBytes

	inflightRefused [numInflight]atomic.Uint64

	in, inBytes   [numInOps]atomic.Uint64
	out, outBytes [numOutOps]atomic.Uint64
	refusedBy     [numRefusals]atomic.Uint64
	closes        sync.Map // close code → *atomic.Uint64
	refusals      sync.Map // HTTP status → *atomic.Uint64

	jsAPI atomic.Uint64 // JetStream API requests sent

	handshake prometheus.Histogram
	latency   prometheus.Histogram
	resume    *prometheus.HistogramVec
}

// inOp is a client→bridge message kind, the op label of wsbridge_messages_in_total.
type inOp uint8

const (
	inSub inOp = iota
	inUnsub
	inPub // raw-mode messages too
	inReq
	inAuth
	inPing
	inInvalid // undecodable or an unknown op
	numInOps
)

var inOpNames = [numInOps]string{"sub", "unsub", "pub", "req", "auth", "ping", "invalid"}

// outOp is a bridge→client message kind.
type outOp uint8

const (
	outHello outOp = iota
	outMsg
	outReply
	outOK
	outErr
	outPong
	outStatus
	numOutOps
)

var outOpNames = [numOutOps]string{"hello", "msg", "reply", "ok", "err", "pong", "status"}

// inflight is a per-connection cap on operations awaiting an answer, the
// kind label of wsbridge_inflight_refusals_total.
type inflight uint8

const (
	inflightReq inflight = iota // req awaiting its reply
	inflightAck                 // acked pub awaiting its PubAck
	numInflight
)

var inflightNames = [numInflight]string{"req", "ack"}

// refusal is why a handshake was refused, the reason label of
// wsbridge_handshakes_refused_total.
type refusal uint8

const (
	refusedAuth       refusal = iota // 401, or a token without the raw-mode permission
	refusedOrigin                    // 403 by the origin policy
	refusedLimit                     // 503 node full, 429 address full
	refusedBadRequest                // malformed request, bad raw-mode query
	refusedDraining                  // 503 while shutting down
	refusedRate                      // 503 beyond MaxHandshakeRate
	numRefusals
)

var refusalNames = [numRefusals]string{"auth", "origin", "limit", "bad_request", "draining", "rate"}

func newMetrics() *metrics {
	return &metrics{
		handshake: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "wsbridge",
			Name:      "handshake_duration_seconds",
			Help:      "Time from accepting a TCP connection to writing its 101 Switching Protocols.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "wsbridge",
			Name:      "delivery_latency_seconds",
			Help:      "Time from the bridge taking a message from NATS to writing its frame to the client's socket, observed per write for the oldest message in it.",
			Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		resume: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "wsbridge",
			Name:      "jetstream_resume_duration_seconds",
			Help:      "Time from a sub with from (other than new) to its switch to live delivery, by source: window (served from memory) or jetstream (read history from JetStream).",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"source"}),
	}
}

func (m *metrics) published() { m.publishes.Add(1) }

// closed counts a close by code. The peer chooses the code of a close it
// starts, which the bridge echoes: codes outside the registered 1000–1015
// count as otherCode, so a client cannot mint label values.
func (m *metrics) closed(code int) {
	if code < 1000 || code > 1015 {
		code = otherCode
	}
	count(&m.closes, code)
}

// otherCode is the closes key, and the "other" label, of close codes
// outside 1000–1015 (3000–4999 from peers).
const otherCode = 0

func (m *metrics) refused(r refusal, status int) {
	m.refusedBy[r].Add(1)
	count(&m.refusals, status)
}

func (m *metrics) received(op inOp, bytes int) {
	m.in[op].Add(1)
	m.inBytes[op].Add(uint64(bytes))
}

func (m *metrics) sent(op outOp, n, bytes int) {
	m.out[op].Add(uint64(n))
	m.outBytes[op].Add(uint64(bytes))
}

// fanout is one message's outcome across its subscribers, so that the
// shared counters are touched once per message.
type fanout struct{ n, bytes, dropped int }

func (f *fanout) add(ok bool, frame []byte) {
	if ok {
		f.n++
		f.bytes += len(frame)
	} else {
		f.dropped++
	}
}

// fanoutOf is the outcome of queueing n frames of size bytes at once.
func fanoutOf(ok bool, n, bytes int) fanout {
	if ok {
		return fanout{n: n, bytes: bytes}
	}
	return fanout{dropped: n}
}

func (m *metrics) delivered(f fanout) {
	if f.n > 0 {
		m.deliveries.Add(uint64(f.n))
		m.sent(outMsg, f.n, f.bytes)
	}
	if f.dropped > 0 {
		m.dropped.Add(uint64(f.dropped))
	}
}

// outOpOf classifies a bridge→client payload by its op, which every
// envelope starts with: {"op":"<name>"…
func outOpOf(p []byte) (outOp, bool) {
	const pre = len(`{"op":"`)
	if len(p) <= pre+1 {
		return 0, false
	}
	switch p[pre] {
	case 'h':
		return outHello, true
	case 'm':
		return outMsg, true
	case 'r':
		return outReply, true
	case 'o':
		return outOK, true
	case 'e':
		return outErr, true
	case 'p':
		return outPong, true
	case 's':
		return outStatus, true
	}
	return 0, false
}

func count(m *sync.Map, k int) {
	v, ok := m.Load(k)
	if !ok {
		v, _ = m.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func snapshot(m *sync.Map) map[int]uint64 {
	out := make(map[int]uint64)
	m.Range(func(k, v any) bool {
		out[k.(int)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

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
		Connections: s.metrics.conns.Load(),
		Deliveries:  s.metrics.deliveries.Load(),
		Publishes:   s.metrics.publishes.Load(),
		Closes:      snapshot(&s.metrics.closes),
		Refusals:    snapshot(&s.metrics.refusals),
	}
}

// clock is monotonic nanoseconds since the server started, never 0.
func (s *Server) clock() int64 { return int64(time.Since(s.epoch)) + 1 }

// collector exports the server's metrics. Gauges that describe shared
// state (NATS subscriptions, feeds, the worker queue) are read under their
// locks here, at scrape time, never on a hot path.
type collector struct {
	s       *Server
	descs   map[string]*prometheus.Desc
	cluster clusterDescs
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsbridge_"+name, help, labels, nil)
}

func newCollector(s *Server) *collector {
	ds := []struct{ key, help string }{
		{"connections", "Open WebSocket connections."},
		{"connections_accepted_total", "WebSocket connections accepted (101 sent)."},
		{"connections_closed_total", "WebSocket connections closed, by close code; 1006: dropped without a close handshake; other: a peer's code outside 1000-1015."},
		{"handshakes_refused_total", "Upgrade requests refused, by reason: auth, origin, limit, bad_request, draining, rate."},
		{"messages_in_total", "Client messages received, by op (raw-mode messages count as pub)."},
		{"bytes_in_total", "Payload bytes of client messages received, by op, as they arrived (compressed if compressed)."},
		{"messages_out_total", "Messages queued to clients, by op."},
		{"bytes_out_total", "Frame bytes queued to clients, by op, after compression."},
		{"deliveries_dropped_total", "Messages for a subscriber that were not queued because its write queue was full (a slow consumer being cut) or it was closing."},
		{"slow_consumer_disconnects_total", "Connections closed with 1008 because their write queue overflowed."},
		{"subscriptions", "Client subscriptions, core and JetStream."},
		{"nats_subscriptions", "NATS subscriptions held for core client interest: one per subject and queue group on this node."},
		{"nats_slow_consumer_drops_total", "Messages from NATS dropped because the dispatch backlog was over BRIDGE_MAX_PENDING_BYTES: the bridge itself was a slow consumer."},
		{"partial_message_bytes", "Bytes of client messages still being assembled, node-wide (bounded by BRIDGE_MAX_PARTIAL_BYTES)."},
		{"dispatch_backlog_bytes", "Bytes of messages taken from NATS and not yet queued to clients."},
		{"requests_in_flight", "Client requests waiting for a reply or their timeout."},
		{"acked_publishes_in_flight", "Client acked publishes waiting for their PubAck."},
		{"inflight_refusals_total", "req and acked pub refused with too_many_requests because the connection had BRIDGE_MAX_INFLIGHT_REQUESTS or BRIDGE_MAX_INFLIGHT_ACKS in flight, by kind: req, ack."},
		{"jetstream_feeds", "Shared JetStream consumers feeding live subscriptions: one per stream and subject on this node."},
		{"jetstream_catchups_total", "Subscriptions with from that had history to replay, from a feed's resume window or JetStream."},
		{"jetstream_resumes_total", "Subscriptions with from (other than new) that went live, by source: window (served from a feed's resume window alone) or jetstream (read history from JetStream)."},
		{"jetstream_catchup_consumers_total", "Ordered consumers created to read history for subscriptions below a resume window; each serves every such subscription of its feed whose range it overlaps."},
		{"jetstream_api_requests_total", "JetStream API requests this node sent (stream lookups, consumer creates and deletes, infos); pull requests and publishes excluded."},
		{"nats_connected", "1 while the NATS connection is up."},
		{"nats_reconnects_total", "Times the NATS connection was re-established."},
		{"worker_queue_depth", "Connections with events waiting for a netpoll worker."},
		{"draining", "1 while the node is shutting down."},
	}
	c := &collector{s: s, descs: make(map[string]*prometheus.Desc, len(ds)), cluster: newClusterDescs()}
	for _, d := range ds {
		var labels []string
		switch d.key {
		case "connections_closed_total":
			labels = []string{"code"}
		case "handshakes_refused_total":
			labels = []string{"reason"}
		case "inflight_refusals_total":
			labels = []string{"kind"}
		case "messages_in_total", "bytes_in_total", "messages_out_total", "bytes_out_total":
			labels = []string{"op"}
		case "jetstream_resumes_total":
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
	c.s.metrics.handshake.Describe(ch)
	c.s.metrics.latency.Describe(ch)
	c.cluster.describe(ch)
	c.s.metrics.resume.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, m := c.s, c.s.metrics
	counter := func(key string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[key], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(key string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[key], prometheus.GaugeValue, v)
	}
	gauge("connections", float64(m.conns.Load()))
	counter("connections_accepted_total", m.accepted.Load())
	for code, n := range snapshot(&m.closes) {
		label := strconv.Itoa(code)
		if code == otherCode {
			label = "other"
		}
		counter("connections_closed_total", n, label)
	}
	for r := range numRefusals {
		counter("handshakes_refused_total", m.refusedBy[r].Load(), refusalNames[r])
	}
	for op := range numInOps {
		counter("messages_in_total", m.in[op].Load(), inOpNames[op])
		counter("bytes_in_total", m.inBytes[op].Load(), inOpNames[op])
	}
	for op := range numOutOps {
		counter("messages_out_total", m.out[op].Load(), outOpNames[op])
		counter("bytes_out_total", m.outBytes[op].Load(), outOpNames[op])
	}
	counter("deliveries_dropped_total", m.dropped.Load())
	counter("slow_consumer_disconnects_total", m.slow.Load())
	gauge("subscriptions", float64(m.subs.Load()))
	s.imu.Lock()
	nsubs := len(s.interests)
	s.imu.Unlock()
	gauge("nats_subscriptions", float64(nsubs))
	counter("nats_slow_consumer_drops_total", m.natsSlow.Load())
	gauge("dispatch_backlog_bytes", float64(s.pending.Load()))
	gauge("partial_message_bytes", float64(s.partials.Used()))
	gauge("requests_in_flight", float64(s.out.Requests()))
	gauge("acked_publishes_in_flight", float64(s.pub.Inflight()))
	for k := range numInflight {
		counter("inflight_refusals_total", m.inflightRefused[k].Load(), inflightNames[k])
	}
	gauge("jetstream_feeds", float64(s.streams.Feeds()))
	st := s.streams.Stats()
	counter("jetstream_catchups_total", st.Catchups)
	counter("jetstream_resumes_total", st.ResumesFromWindow, "window")
	counter("jetstream_resumes_total", st.ResumesFromJetStream, "jetstream")
	counter("jetstream_catchup_consumers_total", st.CatchupConsumers)
	counter("jetstream_api_requests_total", m.jsAPI.Load())
	gauge("nats_connected", boolGauge(s.natsUp.Load()))
	counter("nats_reconnects_total", m.reconnects.Load())
	gauge("worker_queue_depth", float64(s.poller.Queued()))
	gauge("draining", boolGauge(s.draining.Load()))
	ch <- m.handshake
	ch <- m.latency
	c.cluster.collect(s, ch)
	m.resume.Collect(ch)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
