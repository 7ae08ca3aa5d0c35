package metrics

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrape gathers m as a registry would (a pedantic one, which also checks
// that what Collect sends matches what Describe announced) and returns
// every sample as "name{label=value,…}" → value.
func scrape(t *testing.T, m *Counters) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName()
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case s.GetCounter() != nil:
				out[key] = s.GetCounter().GetValue()
			case s.GetGauge() != nil:
				out[key] = s.GetGauge().GetValue()
			case s.GetHistogram() != nil:
				out[key+"_count"] = float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestCounters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record func(m *Counters)
		want   map[string]float64
	}{
		{
			name: "connections",
			record: func(m *Counters) {
				m.Connected()
				m.Connected()
				m.Disconnected()
			},
			want: map[string]float64{"wsbridge_connections": 1, "wsbridge_connections_accepted_total": 2},
		},
		{
			name: "closes by registered code",
			record: func(m *Counters) {
				m.Closed(1000)
				m.Closed(1006)
				m.Closed(1006)
				m.Closed(1015)
			},
			want: map[string]float64{
				"wsbridge_connections_closed_total{code=1000}": 1,
				"wsbridge_connections_closed_total{code=1006}": 2,
				"wsbridge_connections_closed_total{code=1015}": 1,
			},
		},
		{
			name: "a peer's own close codes count as other",
			record: func(m *Counters) {
				m.Closed(3000)
				m.Closed(4999)
				m.Closed(999)
				m.Closed(1016)
			},
			want: map[string]float64{"wsbridge_connections_closed_total{code=other}": 4},
		},
		{
			name: "refusals by reason",
			record: func(m *Counters) {
				m.Refused(RefusedAuth, 401)
				m.Refused(RefusedOrigin, 403)
				m.Refused(RefusedLimit, 429)
				m.Refused(RefusedBadRequest, 400)
				m.Refused(RefusedDraining, 503)
				m.Refused(RefusedRate, 503)
			},
			want: map[string]float64{
				`wsbridge_handshakes_refused_total{reason=auth}`:        1,
				`wsbridge_handshakes_refused_total{reason=origin}`:      1,
				`wsbridge_handshakes_refused_total{reason=limit}`:       1,
				`wsbridge_handshakes_refused_total{reason=bad_request}`: 1,
				`wsbridge_handshakes_refused_total{reason=draining}`:    1,
				`wsbridge_handshakes_refused_total{reason=rate}`:        1,
			},
		},
		{
			name: "messages in by op",
			record: func(m *Counters) {
				for op := range numInOps {
					m.Received(op, 10*int(op+1))
				}
				m.Received(InPub, 5)
			},
			want: map[string]float64{
				"wsbridge_messages_in_total{op=sub}": 1, "wsbridge_bytes_in_total{op=sub}": 10,
				"wsbridge_messages_in_total{op=unsub}": 1, "wsbridge_bytes_in_total{op=unsub}": 20,
				"wsbridge_messages_in_total{op=pub}": 2, "wsbridge_bytes_in_total{op=pub}": 35,
				"wsbridge_messages_in_total{op=req}": 1, "wsbridge_bytes_in_total{op=req}": 40,
				"wsbridge_messages_in_total{op=auth}": 1, "wsbridge_bytes_in_total{op=auth}": 50,
				"wsbridge_messages_in_total{op=ping}": 1, "wsbridge_bytes_in_total{op=ping}": 60,
				"wsbridge_messages_in_total{op=invalid}": 1, "wsbridge_bytes_in_total{op=invalid}": 70,
			},
		},
		{
			name: "messages out by op",
			record: func(m *Counters) {
				m.Sent(OutHello, 1, 100)
				m.Sent(OutStatus, 3, 90)
			},
			want: map[string]float64{
				"wsbridge_messages_out_total{op=hello}": 1, "wsbridge_bytes_out_total{op=hello}": 100,
				"wsbridge_messages_out_total{op=status}": 3, "wsbridge_bytes_out_total{op=status}": 90,
				"wsbridge_messages_out_total{op=msg}": 0,
			},
		},
		{
			name: "a fan-out counts as msg once per message",
			record: func(m *Counters) {
				var f Fanout
				f.Add(true, make([]byte, 40))
				f.Add(true, make([]byte, 60))
				f.Add(false, make([]byte, 50))
				f.Drop()
				m.Delivered(f)
				m.Delivered(FanoutOf(3, 30, 1))
				m.Delivered(Fanout{})
			},
			want: map[string]float64{
				"wsbridge_messages_out_total{op=msg}": 5,
				"wsbridge_bytes_out_total{op=msg}":    130,
				"wsbridge_deliveries_dropped_total":   3,
			},
		},
		{
			name: "the rest",
			record: func(m *Counters) {
				m.Subscribed()
				m.Subscribed()
				m.Unsubscribed()
				m.Published()
				m.SlowConsumer()
				m.NATSDropped()
				m.Reconnected()
				m.JetStreamRequest()
				m.JetStreamRequest()
				m.InflightRefused(InflightReq)
				m.InflightRefused(InflightAck)
				m.InflightRefused(InflightAck)
			},
			want: map[string]float64{
				"wsbridge_subscriptions":                     1,
				"wsbridge_slow_consumer_disconnects_total":   1,
				"wsbridge_nats_slow_consumer_drops_total":    1,
				"wsbridge_nats_reconnects_total":             1,
				"wsbridge_jetstream_api_requests_total":      2,
				"wsbridge_inflight_refusals_total{kind=req}": 1,
				"wsbridge_inflight_refusals_total{kind=ack}": 2,
			},
		},
		{
			name: "histograms",
			record: func(m *Counters) {
				m.ObserveHandshake(time.Millisecond)
				m.ObserveLatency(time.Microsecond)
				m.ObserveLatency(time.Second)
				m.Resumed(time.Millisecond, false)
				m.Resumed(time.Second, true)
				m.Resumed(time.Second, true)
			},
			want: map[string]float64{
				"wsbridge_handshake_duration_seconds_count":                          1,
				"wsbridge_delivery_latency_seconds_count":                            2,
				"wsbridge_jetstream_resume_duration_seconds{source=window}_count":    1,
				"wsbridge_jetstream_resume_duration_seconds{source=jetstream}_count": 2,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New()
			tc.record(m)
			got := scrape(t, m)
			for _, k := range slices.Sorted(maps.Keys(tc.want)) {
				if v, ok := got[k]; !ok || v != tc.want[k] {
					t.Errorf("%s = %v (present %v), want %v", k, v, ok, tc.want[k])
				}
			}
			// Everything not recorded stays at zero.
			for k, v := range got {
				if _, ok := tc.want[k]; !ok && v != 0 {
					t.Errorf("%s = %v, want 0", k, v)
				}
			}
		})
	}
}

// TestTotals checks the sums and snapshots bridge reads between scrapes
// (Server.Stats, the cluster announcements, the rebalancer).
func TestTotals(t *testing.T) {
	m := New()
	m.Connected()
	m.Subscribed()
	m.Published()
	m.Received(InSub, 1)
	m.Received(InPub, 1)
	m.Sent(OutOK, 1, 1)
	m.Delivered(FanoutOf(2, 2, 0))
	m.Closed(1001)
	m.Closed(4000)
	m.Refused(RefusedRate, 503)
	m.Refused(RefusedLimit, 503)
	if c, s, d, p := m.Connections(), m.Subscriptions(), m.Deliveries(), m.Publishes(); c != 1 || s != 1 || d != 2 || p != 1 {
		t.Errorf("connections %d, subscriptions %d, deliveries %d, publishes %d; want 1, 1, 2, 1", c, s, d, p)
	}
	if in, out := m.MessagesIn(), m.MessagesOut(); in != 2 || out != 3 {
		t.Errorf("messages in %d, out %d; want 2, 3", in, out)
	}
	if got, want := m.Closes(), map[int]uint64{1001: 1, otherCode: 1}; !maps.Equal(got, want) {
		t.Errorf("Closes() = %v, want %v", got, want)
	}
	if got, want := m.Refusals(), map[int]uint64{503: 2}; !maps.Equal(got, want) {
		t.Errorf("Refusals() = %v, want %v", got, want)
	}
}

func TestOutOpOf(t *testing.T) {
	for _, tc := range []struct {
		payload string
		op      OutOp
		ok      bool
	}{
		{`{"op":"hello","node":"a"}`, OutHello, true},
		{`{"op":"msg","sid":"s"}`, OutMsg, true},
		{`{"op":"reply","id":"r"}`, OutReply, true},
		{`{"op":"ok","id":"1"}`, OutOK, true},
		{`{"op":"err","code":"x"}`, OutErr, true},
		{`{"op":"pong"}`, OutPong, true},
		{`{"op":"status","nats":"up"}`, OutStatus, true},
		{`{"op":"x"}`, 0, false},
		{`{"op":"`, 0, false},
		{`{"op":"m`, 0, false},
		{``, 0, false},
	} {
		t.Run(tc.payload, func(t *testing.T) {
			op, ok := OutOpOf([]byte(tc.payload))
			if op != tc.op || ok != tc.ok {
				t.Fatalf("OutOpOf(%q) = %v, %v; want %v, %v", tc.payload, op, ok, tc.op, tc.ok)
			}
		})
	}
}

// TestHotPathAllocs holds the recording paths to no allocation: they run
// per message and per delivery. A close or refusal code allocates its
// counter the first time it is seen only.
func TestHotPathAllocs(t *testing.T) {
	m := New()
	frame := make([]byte, 64)
	m.Closed(1000)
	m.Refused(RefusedAuth, 401)
	for name, f := range map[string]func(){
		"Received": func() { m.Received(InPub, 100) },
		"Sent":     func() { m.Sent(OutOK, 1, 20) },
		"Delivered": func() {
			var out Fanout
			out.Add(true, frame)
			out.Add(false, frame)
			out.Drop()
			m.Delivered(out)
		},
		"Closed":          func() { m.Closed(1000) },
		"Refused":         func() { m.Refused(RefusedAuth, 401) },
		"ObserveLatency":  func() { m.ObserveLatency(time.Millisecond) },
		"Subscribed":      func() { m.Subscribed() },
		"InflightRefused": func() { m.InflightRefused(InflightAck) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs, want 0", name, n)
		}
	}
}

func BenchmarkCounters(b *testing.B) {
	m := New()
	frame := make([]byte, 64)
	b.Run("Received", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Received(InPub, 100)
		}
	})
	b.Run("Delivered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out Fanout
			out.Add(true, frame)
			out.Add(true, frame)
			m.Delivered(out)
		}
	})
	b.Run("ObserveLatency", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveLatency(time.Millisecond)
		}
	})
}
