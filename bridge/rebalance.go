package bridge

import (
	"wsbridge/internal/cluster"
	"wsbridge/internal/wsframe"
)

// newShedder builds this node's rebalancer (internal/cluster) over its
// connections; New starts its Run. The view is read through s.cluster,
// set before Run starts: the Membership reads the Shedder's counters from
// its first status on, so the Shedder comes first.
func newShedder(s *Server) (*cluster.Shedder, error) {
	return cluster.NewShedder(cluster.ShedConfig{
		Rate:        s.cfg.RebalanceRate,
		Slack:       s.cfg.RebalanceSlack,
		Floor:       int64(s.cfg.RebalanceMinConnections),
		Interval:    s.cfg.AnnounceInterval,
		Allowed:     func() bool { return s.cfg.Rebalance && !s.draining.Load() && s.natsUp.Load() },
		Connections: s.metrics.Connections,
		View:        func() []NodeStatus { return s.cluster.View() },
		Candidates:  s.candidates,
		Log:         s.log,
	})
}

// candidates is every registered connection, for the Shedder to choose
// from.
func (s *Server) candidates() []cluster.Candidate {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	cs := make([]cluster.Candidate, len(s.conns))
	for i, c := range s.conns {
		cs[i] = c
	}
	return cs
}

var _ cluster.Candidate = (*conn)(nil)

// Opened is Server.clock at register (cluster.Candidate).
func (c *conn) Opened() int64 { return c.opened }

// Open reports whether c is open with no close pending (cluster.Candidate).
func (c *conn) Open() bool {
	_, open := c.queued()
	return open
}

// Gone reports whether c is closed, its close handshake over
// (cluster.Candidate).
func (c *conn) Gone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateClosed
}

// Shed closes c with 1012 "rebalance" after its queued frames
// (cluster.Candidate).
func (c *conn) Shed() { c.requestClose(wsframe.CloseRebalance) }
