package bridge

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"wsbridge/internal/ratelimit"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Nodes learn each other's load from announcements on NATS, with no other
// service: every AnnounceInterval each node publishes its NodeStatus on
// $WSBRIDGE.cluster.<node>, keeps the latest from every peer, and forgets
// a peer silent for forgetPeriods of its own interval. Clients never reach
// these subjects: "$" is reserved (wire.Reserved) for pub, req, sub and
// delivery alike.

// clusterPrefix starts every announcement subject.
const clusterPrefix = "$WSBRIDGE.cluster."

// forgetPeriods is how many announcement periods a peer may stay silent
// before it leaves the view.
const forgetPeriods = 3

// NodeState is a node's state as it announces it.
type NodeState string

// The states of a node.
const (
	NodeReady    NodeState = "ready"
	NodeDraining NodeState = "draining"
	NodeNATSDown NodeState = "nats_down"
)

// NodeStatus is one node's announcement.
type NodeStatus struct {
	ID            string    `json:"id"`
	State         NodeState `json:"state"`
	Connections   int64     `json:"connections"`
	Subscriptions int64     `json:"subscriptions"`
	MsgsInRate    float64   `json:"msgs_in_per_sec"`  // client messages received
	MsgsOutRate   float64   `json:"msgs_out_per_sec"` // messages queued to clients
	Rebalancing   bool      `json:"rebalancing"`      // shedding clients now
	Moving        int64     `json:"moving"`           // clients shed within the last few seconds
	Shed          uint64    `json:"shed_total"`       // clients closed with 1012 since start
	IntervalMS    int64     `json:"interval_ms"`      // the node's announcement period
	// Not announced: filled in by Server.Cluster.
	Self bool `json:"self"`
	// AgeMS is how long ago the announcement arrived, in milliseconds.
	AgeMS int64 `json:"age_ms"`
}

type peer struct {
	st   NodeStatus
	seen time.Time
}

// cluster announces this node and keeps the view of its peers. The view is
// read by the rebalancer, the collector and Server.Cluster under mu; the
// NATS handler writes it. Nothing here runs on a worker.
type cluster struct {
	s       *Server
	subject string
	sub     *nats.Subscription
	kick    chan struct{} // announce now: draining began
	failLog *ratelimit.Log

	mu    sync.Mutex
	self  NodeStatus
	peers map[string]peer

	// Owned by run.
	lastIn, lastOut uint64
	lastAt          time.Time
}

func newCluster(s *Server) (*cluster, error) {
	cl := &cluster{
		s:       s,
		subject: clusterPrefix + subjectToken(s.cfg.NodeID),
		kick:    make(chan struct{}, 1),
		failLog: ratelimit.NewLog(1, time.Minute),
		peers:   make(map[string]peer),
	}
	cl.self = cl.status(time.Now())
	sub, err := s.nc.Subscribe(clusterPrefix+">", cl.receive)
	if err != nil {
		return nil, err
	}
	cl.sub = sub
	return cl, nil
}

// subjectToken makes a node id usable as one subject token.
func subjectToken(id string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, id)
}

// receive runs on the subscription's nats.go goroutine.
func (cl *cluster) receive(m *nats.Msg) {
	var st NodeStatus
	if err := json.Unmarshal(m.Data, &st); err != nil || st.ID == "" || st.ID == cl.s.cfg.NodeID {
		return
	}
	st.Self, st.AgeMS = false, 0
	cl.mu.Lock()
	cl.peers[st.ID] = peer{st: st, seen: time.Now()}
	cl.mu.Unlock()
}

// announceNow makes run announce at once (draining began). Safe from any
// goroutine.
func (cl *cluster) announceNow() {
	select {
	case cl.kick <- struct{}{}:
	default:
	}
}

// run announces every AnnounceInterval until shutdown. It publishes from
// its own goroutine: nats.go's Publish takes the connection lock, which a
// stuck NATS socket holds.
func (cl *cluster) run() {
	defer cl.s.wg.Done()
	t := time.NewTicker(cl.s.cfg.AnnounceInterval)
	defer t.Stop()
	for {
		select {
		case <-cl.s.done:
			return
		case <-t.C:
		case <-cl.kick:
		}
		now := time.Now()
		st := cl.status(now)
		cl.mu.Lock()
		cl.self = st
		for id, p := range cl.peers {
			if now.Sub(p.seen) > forgetPeriods*time.Duration(max(p.st.IntervalMS, 1))*time.Millisecond {
				delete(cl.peers, id)
			}
		}
		cl.mu.Unlock()
		if !cl.s.natsUp.Load() {
			continue // not buffered for later: it would be stale
		}
		b, _ := json.Marshal(st)
		if err := cl.s.nc.Publish(cl.subject, b); err != nil {
			cl.s.logLimited(cl.failLog, "announcing this node failed", "err", err)
		}
	}
}

// status is this node's announcement now. Only run and newCluster call it:
// it keeps the counters the rates are computed from.
func (cl *cluster) status(now time.Time) NodeStatus {
	s, m := cl.s, cl.s.metrics
	in, out := m.MessagesIn(), m.MessagesOut()
	st := NodeStatus{
		ID:            s.cfg.NodeID,
		State:         s.nodeState(),
		Connections:   s.rebal.own(),
		Subscriptions: m.Subscriptions(),
		Rebalancing:   s.rebal.active.Load(),
		Moving:        s.rebal.movingN.Load(),
		Shed:          s.rebal.shed.Load(),
		IntervalMS:    s.cfg.AnnounceInterval.Milliseconds(),
	}
	if dt := now.Sub(cl.lastAt).Seconds(); !cl.lastAt.IsZero() && dt > 0 {
		st.MsgsInRate = float64(in-cl.lastIn) / dt
		st.MsgsOutRate = float64(out-cl.lastOut) / dt
	}
	cl.lastIn, cl.lastOut, cl.lastAt = in, out, now
	return st
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

// view returns every node this one knows, itself first with its live
// connection count, then its peers by id.
func (cl *cluster) view() []NodeStatus {
	now := time.Now()
	cl.mu.Lock()
	self := cl.self
	out := make([]NodeStatus, 0, 1+len(cl.peers))
	for _, p := range cl.peers {
		st := p.st
		st.AgeMS = now.Sub(p.seen).Milliseconds()
		out = append(out, st)
	}
	cl.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	self.Self = true
	self.State = cl.s.nodeState()
	self.Connections = cl.s.rebal.own()
	self.Subscriptions = cl.s.metrics.Subscriptions()
	self.Rebalancing = cl.s.rebal.active.Load()
	self.Moving = cl.s.rebal.movingN.Load()
	self.Shed = cl.s.rebal.shed.Load()
	return append([]NodeStatus{self}, out...)
}

// Cluster returns what this node knows of the cluster: itself first (Self
// set, live counts), then every peer heard from within the last few
// announcement periods, by id. Safe for concurrent use; it never touches
// NATS.
func (s *Server) Cluster() []NodeStatus { return s.cluster.view() }

// clusterDescs are the wsbridge_cluster_* metrics.
type clusterDescs struct {
	nodes, mean, rebalancing, shed                 *prometheus.Desc
	conns, subs, msgsIn, msgsOut, state, nodeRebal *prometheus.Desc
}

func newClusterDescs() clusterDescs {
	node := []string{"node"}
	return clusterDescs{
		nodes:       desc("cluster_nodes", "Nodes in this node's view of the cluster, itself included."),
		mean:        desc("cluster_mean_connections", "Mean connections per ready node, the rebalancing target."),
		rebalancing: desc("cluster_rebalancing", "1 while this node sheds clients to even out the cluster."),
		shed:        desc("cluster_rebalance_closes_total", "Clients this node closed with 1012 rebalance."),
		conns:       desc("cluster_node_connections", "Connections of each node, as last announced.", node...),
		subs:        desc("cluster_node_subscriptions", "Subscriptions of each node, as last announced.", node...),
		msgsIn:      desc("cluster_node_messages_in_per_second", "Client messages received per second by each node.", node...),
		msgsOut:     desc("cluster_node_messages_out_per_second", "Messages queued to clients per second by each node.", node...),
		state:       desc("cluster_node_state", "1 for each node's state: ready, draining or nats_down.", "node", "state"),
		nodeRebal:   desc("cluster_node_rebalancing", "1 while the node sheds clients.", node...),
	}
}

func (d clusterDescs) describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{d.nodes, d.mean, d.rebalancing, d.shed, d.conns, d.subs, d.msgsIn, d.msgsOut, d.state, d.nodeRebal} {
		ch <- x
	}
}

func (d clusterDescs) collect(s *Server, ch chan<- prometheus.Metric) {
	g := func(dd *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(dd, prometheus.GaugeValue, v, labels...)
	}
	view := s.cluster.view()
	g(d.nodes, float64(len(view)))
	mean, _, _ := meanOfReady(view)
	g(d.mean, mean)
	g(d.rebalancing, boolGauge(s.rebal.active.Load()))
	ch <- prometheus.MustNewConstMetric(d.shed, prometheus.CounterValue, float64(s.rebal.shed.Load()))
	for _, n := range view {
		g(d.conns, float64(n.Connections), n.ID)
		g(d.subs, float64(n.Subscriptions), n.ID)
		g(d.msgsIn, n.MsgsInRate, n.ID)
		g(d.msgsOut, n.MsgsOutRate, n.ID)
		g(d.state, 1, n.ID, string(n.State))
		g(d.nodeRebal, boolGauge(n.Rebalancing), n.ID)
	}
}

// meanOfReady returns the mean connection count of the ready nodes in
// view, low without the clients they are moving and high with them, and
// how many nodes are ready.
func meanOfReady(view []NodeStatus) (low, high float64, n int) {
	var sum, moving int64
	for _, st := range view {
		if st.State == NodeReady {
			sum += st.Connections
			moving += st.Moving
			n++
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return float64(sum) / float64(n), float64(sum+moving) / float64(n), n
}
