// Package metrics counts what a bridge node does and exports those counts
// as wsbridge_* Prometheus metrics: connections, closes by code, refused
// handshakes by reason, client messages and bytes by op, deliveries and
// drops, and the handshake, delivery-latency and resume histograms. It
// owns those metrics' names, help texts and label values.
//
// It knows Prometheus and counting, not connections or NATS. The gauges
// that read a node's state at scrape time (NATS subscriptions, queues,
// the cluster view) belong to bridge's own collector, which adds this
// package's Counters to it.
//
// A Counters is safe for concurrent use. Recording touches only atomics
// and client_golang histograms, whose Observe is lock-free too, so the
// hot paths never wait on a lock or allocate; the close and refusal maps
// allocate once, the first time a code is seen.
package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters counts what the bridge does. A fan-out adds its totals once per
// message, not once per delivery; Collect turns the counts into wsbridge_*
// metrics at scrape time. Make one with New.
type Counters struct {
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

	descs map[string]*prometheus.Desc
}

// InOp is a client→bridge message kind, the op label of wsbridge_messages_in_total.
type InOp uint8

// The client→bridge message kinds.
const (
	InSub InOp = iota
	InUnsub
	InPub // raw-mode messages too
	InReq
	InAuth
	InPing
	InInvalid // undecodable or an unknown op
	numInOps
)

var inOpNames = [numInOps]string{"sub", "unsub", "pub", "req", "auth", "ping", "invalid"}

// OutOp is a bridge→client message kind, the op label of
// wsbridge_messages_out_total.
type OutOp uint8

// The bridge→client message kinds.
const (
	OutHello OutOp = iota
	OutMsg
	OutReply
	OutOK
	OutErr
	OutPong
	OutStatus
	numOutOps
)

var outOpNames = [numOutOps]string{"hello", "msg", "reply", "ok", "err", "pong", "status"}

// Inflight is a per-connection cap on operations awaiting an answer, the
// kind label of wsbridge_inflight_refusals_total.
type Inflight uint8

// The capped kinds of operations in flight.
const (
	InflightReq Inflight = iota // req awaiting its reply
	InflightAck                 // acked pub awaiting its PubAck
	numInflight
)

var inflightNames = [numInflight]string{"req", "ack"}

// Refusal is why a handshake was refused, the reason label of
// wsbridge_handshakes_refused_total.
type Refusal uint8

// The reasons a handshake is refused.
const (
	RefusedAuth       Refusal = iota // 401, or a token without the raw-mode permission
	RefusedOrigin                    // 403 by the origin policy
	RefusedLimit                     // 503 node full, 429 address full
	RefusedBadRequest                // malformed request, bad raw-mode query
	RefusedDraining                  // 503 while shutting down
	RefusedRate                      // 503 beyond MaxHandshakeRate
	numRefusals
)

var refusalNames = [numRefusals]string{"auth", "origin", "limit", "bad_request", "draining", "rate"}

// New returns Counters at zero, with their histograms and descriptors.
func New() *Counters {
	m := &Counters{
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
	m.descs = newDescs()
	return m
}

// Connected counts a connection registered after its 101: one more open
// and one more accepted.
func (m *Counters) Connected() {
	m.conns.Add(1)
	m.accepted.Add(1)
}

// Disconnected counts a registered connection gone.
func (m *Counters) Disconnected() { m.conns.Add(-1) }

// Subscribed counts a client subscription made, core or JetStream.
func (m *Counters) Subscribed() { m.subs.Add(1) }

// Unsubscribed counts a client subscription ended.
func (m *Counters) Unsubscribed() { m.subs.Add(-1) }

// Published counts a client publish handed to NATS.
func (m *Counters) Published() { m.publishes.Add(1) }

// SlowConsumer counts a connection closed with 1008 because its write
// queue overflowed.
func (m *Counters) SlowConsumer() { m.slow.Add(1) }

// NATSDropped counts a message from NATS dropped because the dispatch
// backlog was over MaxPendingBytes.
func (m *Counters) NATSDropped() { m.natsSlow.Add(1) }

// Reconnected counts the NATS connection re-established.
func (m *Counters) Reconnected() { m.reconnects.Add(1) }

// JetStreamRequest counts a JetStream API request sent.
func (m *Counters) JetStreamRequest() { m.jsAPI.Add(1) }

// InflightRefused counts an operation refused with too_many_requests
// because its connection had k's cap in flight.
func (m *Counters) InflightRefused(k Inflight) { m.inflightRefused[k].Add(1) }

// Closed counts a close by code. The peer chooses the code of a close it
// starts, which the bridge echoes: codes outside the registered 1000–1015
// all count as "other", so a client cannot mint label values.
func (m *Counters) Closed(code int) {
	if code < 1000 || code > 1015 {
		code = otherCode
	}
	count(&m.closes, code)
}

// otherCode is the closes key, and the "other" label, of close codes
// outside 1000–1015 (3000–4999 from peers).
const otherCode = 0

// Refused counts a refused handshake by reason and by the HTTP status it
// was answered with.
func (m *Counters) Refused(r Refusal, status int) {
	m.refusedBy[r].Add(1)
	count(&m.refusals, status)
}

// Received counts a client message of kind op, bytes as it arrived.
func (m *Counters) Received(op InOp, bytes int) {
	m.in[op].Add(1)
	m.inBytes[op].Add(uint64(bytes))
}

// Sent counts n messages of kind op queued to clients, bytes in all.
func (m *Counters) Sent(op OutOp, n, bytes int) {
	m.out[op].Add(uint64(n))
	m.outBytes[op].Add(uint64(bytes))
}

// Fanout is one message's outcome across its subscribers, so that the
// shared counters are touched once per message. The zero value is no
// delivery.
type Fanout struct{ n, bytes, dropped int }

// Add counts one subscriber: frame queued if ok, dropped if not.
func (f *Fanout) Add(ok bool, frame []byte) {
	if ok {
		f.n++
		f.bytes += len(frame)
	} else {
		f.dropped++
	}
}

// Drop counts one subscriber whose frame was not queued.
func (f *Fanout) Drop() { f.dropped++ }

// FanoutOf is the outcome of a fan-out counted elsewhere: n frames queued
// with bytes in all, dropped not queued.
func FanoutOf(n, bytes, dropped int) Fanout {
	return Fanout{n: n, bytes: bytes, dropped: dropped}
}

// Delivered counts a message's fan-out: its frames queued as msg, and the
// subscribers it was dropped for.
func (m *Counters) Delivered(f Fanout) {
	if f.n > 0 {
		m.deliveries.Add(uint64(f.n))
		m.Sent(OutMsg, f.n, f.bytes)
	}
	if f.dropped > 0 {
		m.dropped.Add(uint64(f.dropped))
	}
}

// ObserveHandshake records the time from a TCP accept to its 101.
func (m *Counters) ObserveHandshake(d time.Duration) { m.handshake.Observe(d.Seconds()) }

// ObserveLatency records the time from taking a message from NATS to
// writing its frame, for the oldest message in a write.
func (m *Counters) ObserveLatency(d time.Duration) { m.latency.Observe(float64(d) / 1e9) }

// Resumed records a JetStream subscription's switch to live delivery, d
// after its sub, with history read from JetStream if fromJS, else from a
// feed's window.
func (m *Counters) Resumed(d time.Duration, fromJS bool) {
	source := "window"
	if fromJS {
		source = "jetstream"
	}
	m.resume.WithLabelValues(source).Observe(d.Seconds())
}

// Connections returns the connections open now.
func (m *Counters) Connections() int64 { return m.conns.Load() }

// Subscriptions returns the client subscriptions open now.
func (m *Counters) Subscriptions() int64 { return m.subs.Load() }

// Deliveries returns the frames queued to subscribers so far.
func (m *Counters) Deliveries() uint64 { return m.deliveries.Load() }

// Publishes returns the client publishes handed to NATS so far.
func (m *Counters) Publishes() uint64 { return m.publishes.Load() }

// MessagesIn returns the client messages received so far, of every op.
func (m *Counters) MessagesIn() uint64 {
	var n uint64
	for op := range numInOps {
		n += m.in[op].Load()
	}
	return n
}

// MessagesOut returns the messages queued to clients so far, of every op.
func (m *Counters) MessagesOut() uint64 {
	var n uint64
	for op := range numOutOps {
		n += m.out[op].Load()
	}
	return n
}

// Closes returns the closes so far by close code, those outside
// 1000–1015 under 0. The map is the caller's.
func (m *Counters) Closes() map[int]uint64 { return snapshot(&m.closes) }

// Refusals returns the refused handshakes so far by HTTP status. The map
// is the caller's.
func (m *Counters) Refusals() map[int]uint64 { return snapshot(&m.refusals) }

// OutOpOf classifies a bridge→client payload by its op, which every
// envelope starts with: {"op":"<name>"…
func OutOpOf(p []byte) (OutOp, bool) {
	const pre = len(`{"op":"`)
	if len(p) <= pre+1 {
		return 0, false
	}
	switch p[pre] {
	case 'h':
		return OutHello, true
	case 'm':
		return OutMsg, true
	case 'r':
		return OutReply, true
	case 'o':
		return OutOK, true
	case 'e':
		return OutErr, true
	case 'p':
		return OutPong, true
	case 's':
		return OutStatus, true
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

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsbridge_"+name, help, labels, nil)
}

func newDescs() map[string]*prometheus.Desc {
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
		{"nats_slow_consumer_drops_total", "Messages from NATS dropped because the dispatch backlog was over BRIDGE_MAX_PENDING_BYTES: the bridge itself was a slow consumer."},
		{"inflight_refusals_total", "req and acked pub refused with too_many_requests because the connection had BRIDGE_MAX_INFLIGHT_REQUESTS or BRIDGE_MAX_INFLIGHT_ACKS in flight, by kind: req, ack."},
		{"jetstream_api_requests_total", "JetStream API requests this node sent (stream lookups, consumer creates and deletes, infos); pull requests and publishes excluded."},
		{"nats_reconnects_total", "Times the NATS connection was re-established."},
	}
	descs := make(map[string]*prometheus.Desc, len(ds))
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
		}
		descs[d.key] = desc(d.key, d.help, labels...)
	}
	return descs
}

// Describe implements prometheus.Collector.
func (m *Counters) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
	m.handshake.Describe(ch)
	m.latency.Describe(ch)
	m.resume.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Counters) Collect(ch chan<- prometheus.Metric) {
	counter := func(key string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[key], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(key string, v float64) {
		ch <- prometheus.MustNewConstMetric(m.descs[key], prometheus.GaugeValue, v)
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
	counter("nats_slow_consumer_drops_total", m.natsSlow.Load())
	for k := range numInflight {
		counter("inflight_refusals_total", m.inflightRefused[k].Load(), inflightNames[k])
	}
	counter("jetstream_api_requests_total", m.jsAPI.Load())
	counter("nats_reconnects_total", m.reconnects.Load())
	ch <- m.handshake
	ch <- m.latency
	m.resume.Collect(ch)
}
