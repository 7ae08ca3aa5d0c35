package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

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
	s := &Server{poller: p, metrics: newMetrics(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.cfg.WriteBuffer = 64 << 20
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
	for _, v := range []struct {
		name    string
		deflate bool
		data    []byte
		ns      []int
	}{
		{"plain", false, tick, []int{1, 100, 2000}},
		{"deflate", true, doc(60), []int{1, 100, 2000}},
		{"deflate-64KiB", true, doc(960), []int{256}},
	} {
		for _, ids := range []string{"shared", "distinct"} {
			for _, n := range v.ns {
				b.Run(fmt.Sprintf("%s/%s/%d", v.name, ids, n), func(b *testing.B) {
					benchFanout(b, n, ids == "distinct", v.deflate, v.data)
				})
			}
		}
	}
}

func benchFanout(b *testing.B, n int, distinct, deflate bool, data []byte) {
	s := benchServer(b)
	in := &interest{s: s, key: ikey{subject: "prices.EURUSD"}}
	conns := benchConns(s, n, deflate)
	for i, c := range conns {
		id := benchSID(distinct, i)
		in.members = append(in.members, &sub{c: c, id: id, pre: wire.AppendMsgPrefix(nil, id), in: in, idx: i})
	}
	m := &nats.Msg{Subject: "prices.EURUSD", Data: data}
	d := &dispatcher{s: s}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		in.deliver(m, d)
		d.wakeAll()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")

	// Once the queues are drained, one more message, its queues not yet
	// drained.
	for queuedBytes(conns) > 0 {
		runtime.Gosched()
	}
	in.deliver(m, d)
	peak := d.fc.retained() + queuedBytes(conns)
	b.ReportMetric(float64(d.fc.retained()), "cache-B")
	b.ReportMetric(float64(peak), "peak-B")
	d.wakeAll()
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
