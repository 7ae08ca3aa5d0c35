package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"

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
	return s
}

// fakeConn is a connection whose Desc is not on epoll; its handler drains
// the queue, standing in for the socket.
type drain struct{ c *conn }

func (d drain) Handle(netpoll.Event) {
	d.c.mu.Lock()
	if d.c.wbuf != nil {
		wsframe.PutBuffer(d.c.wbuf)
		d.c.wbuf = nil
	}
	d.c.mu.Unlock()
}

func benchConns(s *Server, n int) []*conn {
	conns := make([]*conn, n)
	for i := range conns {
		c := &conn{s: s}
		c.desc = netpoll.NewDesc(-1, drain{c})
		conns[i] = c
	}
	return conns
}

// BenchmarkFanout measures one NATS message delivered to n subscribers of
// one subject: the frame is built once and copied into each queue.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := benchServer(b)
			in := &interest{s: s, key: ikey{subject: "prices.EURUSD"}}
			for i, c := range benchConns(s, n) {
				in.members = append(in.members, &sub{c: c, id: "s1", in: in, idx: i})
			}
			m := &nats.Msg{Subject: "prices.EURUSD", Data: []byte(`{"bid":1.08421,"ask":1.08423,"ts":1795000000123}`)}
			d := &dispatcher{s: s}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				in.deliver(m, d)
				d.wakeAll()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}
