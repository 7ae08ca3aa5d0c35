package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/metrics"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
	"wsbridge/netpoll"
)

// benchServer is a Server with a poller and no sockets: enough to run the
// fan-out path (frame building, queueing, scheduling) in isolation.
func benchServer(b *testing.B) *Server {
	b.Helper()
	p, err := netpoll.New(netpoll.Config{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	s := &Server{poller: p, metrics: metrics.New(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.cfg.WriteBuffer = 64 << 20
	s.maxFrame = wire.MaxFrame(64 << 20)
	s.cfg.CompressionMin = 512
	return s
}

// drain is the handler of a connection whose Desc is not on epoll: it
// empties the queue, standing in for the socket.
type drain struct{ c *conn }

func (d drain) Handle(netpoll.Event) {
	d.c.mu.Lock()
	if d.c.wbuf != nil {
		wsframe.PutBuffer(d.c.wbuf)
		d.c.wbuf = nil
	}
	d.c.mu.Unlock()
}

func benchConns(s *Server, n int, deflate bool) []*conn {
	conns := make([]*conn, n)
	for i := range conns {
		c := &conn{s: s, deflate: deflate}
		c.desc = netpoll.NewDesc(-1, drain{c})
		conns[i] = c
	}
	return conns
}

// benchSID is the id of subscriber i: UUID-shaped, as browsers that use
// crypto.randomUUID choose them, and either one id shared by all or a
// distinct one per subscriber. Both have the same length, so the frames
// (and the bytes queued) are the same size and only the naming differs.
func benchSID(distinct bool, i int) string {
	if !distinct {
		i = 0
	}
	return fmt.Sprintf("%08x-4b1d-4e8a-9c3f-%012x", i, i*7919)
}

// BenchmarkFanout measures one NATS message delivered to n subscribers of
// one subject, sharing one subscription id or each with its own: plain (a
// 48-byte tick), compressed (a 4 KiB JSON document) and compressed-large
// (a 64 KiB one). ns/delivery is the CPU per subscriber; cache-B is what
// the dispatcher's frame cache holds for the message, and peak-B the
// memory the message costs at its peak: the cache plus every connection's
// queued copy of its frame (bytes queued, not the queues' capacity).
func BenchmarkFanout(b *testing.B) {
	for _, v := range fanoutVariants() {
		for _, ids := range []string{"shared", "distinct"} {
			for _, n := range v.ns {
				b.Run(fmt.Sprintf("%s/%s/%d", v.name, ids, n), func(b *testing.B) {
					benchFanout(b, n, ids == "distinct", v.deflate, v.data)
				})
			}
		}
	}
}

type fanoutVariant struct {
	name    string
	deflate bool
	data    []byte
	ns      []int // subscriber counts
}

func fanoutVariants() []fanoutVariant {
	tick := []byte(`{"bid":1.08421,"ask":1.08423,"ts":1795000000123}`)
	doc := func(items int) []byte {
		var sb strings.Builder
		sb.WriteString(`{"items":[`)
		for i := range items {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"id":%d,"sku":"ABC-%05d","name":"Widget","price":%d.99,"qty":%d}`, i, i*7, i%100, i%9)
		}
		sb.WriteString(`]}`)
		return []byte(sb.String())
	}
	return []fanoutVariant{
		{"plain", false, tick, []int{1, 100, 2000}},
		{"deflate", true, doc(60), []int{1, 100, 2000}},
		{"deflate-64KiB", true, doc(960), []int{256}},
	}
}

func benchFanout(b *testing.B, n int, distinct, deflate bool, data []byte) {
	in, conns, d := fanoutFixture(b, n, distinct, deflate)
	m := &nats.Msg{Subject: "prices.EURUSD", Data: data}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		in.deliver(m, d)
		d.wakeAll()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
	cache, peak := fanoutPeak(in, conns, d, m)
	b.ReportMetric(float64(cache), "cache-B")
	b.ReportMetric(float64(peak), "peak-B")
}

// fanoutFixture is an interest with n subscribers, each on a connection
// of its own, and the dispatcher that delivers to it.
func fanoutFixture(b *testing.B, n int, distinct, deflate bool) (*interest, []*conn, *dispatcher) {
	s := benchServer(b)
	in := &interest{s: s, key: ikey{subject: "prices.EURUSD"}}
	conns := benchConns(s, n, deflate)
	for i, c := range conns {
		id := benchSID(distinct, i)
		in.members = append(in.members, &sub{c: c, id: id, pre: wire.AppendMsgPrefix(nil, id), in: in, idx: i})
	}
	return in, conns, &dispatcher{s: s}
}

// fanoutPeak waits for the queues to drain and delivers m once more: it
// returns what the frame cache then holds and that plus the bytes queued.
func fanoutPeak(in *interest, conns []*conn, d *dispatcher, m *nats.Msg) (cache, peak int) {
	for queuedBytes(conns) > 0 {
		runtime.Gosched()
	}
	in.deliver(m, d)
	cache = d.fc.retained()
	peak = cache + queuedBytes(conns)
	d.wakeAll()
	return cache, peak
}

// BenchmarkFanoutNaming is the figure of issue 12: each iteration delivers
// one message to n subscribers sharing one id and to n with distinct ids,
// in alternating order and timed apart, so that both see the same machine
// load. ns/delivery-* are the median iteration's; distinct/shared is their
// ratio, and peak-ratio that of their peak memory (peak-B of
// BenchmarkFanout).
func BenchmarkFanoutNaming(b *testing.B) {
	for _, v := range fanoutVariants() {
		n := v.ns[len(v.ns)-1]
		b.Run(fmt.Sprintf("%s/%d", v.name, n), func(b *testing.B) {
			m := &nats.Msg{Subject: "prices.EURUSD", Data: v.data}
			var sides [2]struct {
				in    *interest
				conns []*conn
				d     *dispatcher
				ns    []time.Duration // per iteration
			}
			for i := range sides {
				sides[i].in, sides[i].conns, sides[i].d = fanoutFixture(b, n, i == 1, v.deflate)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for it := range b.N {
				for k := range sides {
					// Alternate which side goes first, and start each on
					// drained queues, so neither pays for the other.
					sd := &sides[(it+k)%2]
					for queuedBytes(sides[0].conns)+queuedBytes(sides[1].conns) > 0 {
						runtime.Gosched()
					}
					t0 := time.Now()
					sd.in.deliver(m, sd.d)
					sd.d.wakeAll()
					sd.ns = append(sd.ns, time.Since(t0))
				}
			}
			b.StopTimer()
			// Medians, not means: on a shared machine a deliver that was
			// preempted says nothing about either side.
			per := func(i int) float64 {
				ns := sides[i].ns
				slices.Sort(ns)
				return float64(ns[len(ns)/2].Nanoseconds()) / float64(n)
			}
			b.ReportMetric(per(0), "ns/delivery-shared")
			b.ReportMetric(per(1), "ns/delivery-distinct")
			b.ReportMetric(per(1)/per(0), "distinct/shared")
			_, p0 := fanoutPeak(sides[0].in, sides[0].conns, sides[0].d, m)
			_, p1 := fanoutPeak(sides[1].in, sides[1].conns, sides[1].d, m)
			b.ReportMetric(float64(p1)/float64(p0), "peak-ratio")
		})
	}
}

// queuedBytes is the number of bytes waiting in the queues of conns.
func queuedBytes(conns []*conn) int {
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		if c.wbuf != nil {
			n += len(*c.wbuf)
		}
		c.mu.Unlock()
	}
	return n
}
