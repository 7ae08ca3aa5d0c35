package bridge

import (
	"time"

	"wsbridge/internal/cluster"
	"wsbridge/internal/ratelimit"
)

// NodeState is a node's state as it announces it.
type NodeState = cluster.NodeState

// The states of a node.
const (
	NodeReady    = cluster.NodeReady
	NodeDraining = cluster.NodeDraining
	NodeNATSDown = cluster.NodeNATSDown
)

// NodeStatus is one node's announcement, as Server.Cluster returns it.
type NodeStatus = cluster.NodeStatus

// newMembership subscribes to the announcements (internal/cluster) and
// feeds them this node's status; New starts its Run.
func newMembership(s *Server) (*cluster.Membership, error) {
	failLog := ratelimit.NewLog(1, time.Minute)
	return cluster.New(s.nc, cluster.Config{
		NodeID:   s.cfg.NodeID,
		Interval: s.cfg.AnnounceInterval,
		Status:   s.nodeStatus,
		Messages: s.messageTotals,
		NATSUp:   s.natsUp.Load,
		OnError:  func(err error) { s.logLimited(failLog, "announcing this node failed", "err", err) },
	})
}

// nodeStatus is what this node reports of itself to its Membership: read
// from atomics, so the announcer and View never wait on a lock here.
func (s *Server) nodeStatus() NodeStatus {
	return NodeStatus{
		State:         s.nodeState(),
		Connections:   s.rebal.Own(),
		Subscriptions: s.metrics.Subscriptions(),
		Rebalancing:   s.rebal.Active(),
		Moving:        s.rebal.Moving(),
		Shed:          s.rebal.ShedTotal(),
	}
}

// messageTotals is every client message received and queued so far, which
// the announced rates are computed from.
func (s *Server) messageTotals() (in, out uint64) {
	return s.metrics.MessagesIn(), s.metrics.MessagesOut()
}

func (s *Server) nodeState() NodeState {
	switch {
	case s.draining.Load():
		return NodeDraining
	case !s.natsUp.Load():
		return NodeNATSDown
	}
	return NodeReady
}

// Cluster returns what this node knows of the cluster: itself first (Self
// set, live counts), then every peer heard from within the last few
// announcement periods, by id. Safe for concurrent use; it never touches
// NATS.
func (s *Server) Cluster() []NodeStatus { return s.cluster.View() }
