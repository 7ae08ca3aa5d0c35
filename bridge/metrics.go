package bridge

import (
	"sync"
	"sync/atomic"
)

// metrics counts what the bridge does. Counters are plain atomics on the
// hot path; exporting them is the caller's business (Stats).
type metrics struct {
	conns      atomic.Int64
	deliveries atomic.Uint64
	publishes  atomic.Uint64
	closes     sync.Map // close code → *atomic.Uint64
	refusals   sync.Map // HTTP status → *atomic.Uint64
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) delivered(n int) { m.deliveries.Add(uint64(n)) }
func (m *metrics) published()      { m.publishes.Add(1) }

func (m *metrics) closed(code int)    { count(&m.closes, code) }
func (m *metrics) refused(status int) { count(&m.refusals, status) }

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
	st := Stats{
		Connections: s.metrics.conns.Load(),
		Deliveries:  s.metrics.deliveries.Load(),
		Publishes:   s.metrics.publishes.Load(),
		Closes:      snapshot(&s.metrics.closes),
		Refusals:    snapshot(&s.metrics.refusals),
	}
	return st
}
