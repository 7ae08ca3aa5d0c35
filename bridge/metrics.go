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
}

func newMetrics() *metrics { return &metrics{} }

func (m *metrics) delivered(n int) { m.deliveries.Add(uint64(n)) }
func (m *metrics) published()      { m.publishes.Add(1) }

func (m *metrics) closed(code int) {
	v, ok := m.closes.Load(code)
	if !ok {
		v, _ = m.closes.LoadOrStore(code, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Connections int64
	Deliveries  uint64
	Publishes   uint64
	Closes      map[int]uint64 // by WebSocket close code; 1006 for dropped sockets
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.metrics.conns.Load(),
		Deliveries:  s.metrics.deliveries.Load(),
		Publishes:   s.metrics.publishes.Load(),
		Closes:      make(map[int]uint64),
	}
	s.metrics.closes.Range(func(k, v any) bool {
		st.Closes[k.(int)] = v.(*atomic.Uint64).Load()
		return true
	})
	return st
}
