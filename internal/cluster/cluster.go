// Package cluster is the bridge nodes' membership: nodes learn each
// other's load from announcements on NATS, with no other service. Every
// Config.Interval a Membership publishes this node's NodeStatus on
// $WSBRIDGE.cluster.<node>, keeps the latest from every peer, and forgets
// a peer silent for forgetPeriods of its own interval. Clients never reach
// these subjects: "$" is reserved (wire.Reserved) for pub, req, sub and
// delivery alike.
//
// It owns the announcement subject and its JSON, the view of the peers,
// the wsbridge_cluster_* metrics read from that view, the arithmetic a
// node sheds by (Assess), and the schedule it sheds on (Shedder): when to
// start and stop, which clients go first, and how fast. It knows nothing
// of connections: the bridge reports this node's state and counts
// through Config.Status, and hands the Shedder its connections as
// Candidates, which close themselves.
//
// A Membership and a Shedder are safe for concurrent use; each one's Run
// must be called once, and its owner stops it and waits for it. The
// functions are pure.
package cluster

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

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
	// Not announced: filled in by Membership.View.
	Self bool `json:"self"`
	// AgeMS is how long ago the announcement arrived, in milliseconds.
	AgeMS int64 `json:"age_ms"`
}

// Config configures a Membership.
type Config struct {
	// NodeID names this node; it is required. Announcements carrying it
	// are this node's own and never enter the view.
	NodeID string
	// Interval is how often the node announces itself; zero means 1s.
	Interval time.Duration
	// Status returns this node's State, Connections, Subscriptions,
	// Rebalancing, Moving and Shed now; its other fields are ignored. It
	// is required, is called from any goroutine (View's callers and
	// Run), and must not block.
	Status func() NodeStatus
	// Messages returns the client messages received and the messages
	// queued to clients since start: the announced rates are their change
	// over each period. Nil announces zero rates.
	Messages func() (in, out uint64)
	// NATSUp reports whether the NATS connection is up: while it is down
	// Run skips announcements rather than let nats.go buffer stale ones.
	// Nil means always up.
	NATSUp func() bool
	// OnError is told, on Run's goroutine, that publishing an
	// announcement failed; the owner decides how loudly to log it. Nil
	// ignores such failures.
	OnError func(err error)
}

type peer struct {
	st   NodeStatus
	seen time.Time
}

// Membership announces this node and keeps the view of its peers. The
// view is read by View under mu; the NATS handler writes it. Nothing here
// runs on a bridge worker.
type Membership struct {
	cfg     Config
	nc      *nats.Conn
	subject string
	sub     *nats.Subscription
	kick    chan struct{} // announce now: draining began

	mu    sync.Mutex
	self  NodeStatus
	peers map[string]peer

	// Owned by Run (and New, before Run).
	lastIn, lastOut uint64
	lastAt          time.Time
}

// New subscribes to every node's announcements on nc and returns the
// Membership, which announces nothing until Run. The subscription lasts
// until Run returns or nc closes.
func New(nc *nats.Conn, cfg Config) (*Membership, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("cluster: Config.NodeID is required")
	}
	if cfg.Status == nil {
		return nil, errors.New("cluster: Config.Status is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	m := &Membership{
		cfg:     cfg,
		nc:      nc,
		subject: clusterPrefix + subjectToken(cfg.NodeID),
		kick:    make(chan struct{}, 1),
		peers:   make(map[string]peer),
	}
	m.self = m.status(time.Now())
	sub, err := nc.Subscribe(clusterPrefix+">", m.receive)
	if err != nil {
		return nil, err
	}
	m.sub = sub
	return m, nil
}

// Close ends the subscription of a Membership that will never Run.
func (m *Membership) Close() { _ = m.sub.Unsubscribe() }

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
func (m *Membership) receive(msg *nats.Msg) {
	var st NodeStatus
	if err := json.Unmarshal(msg.Data, &st); err != nil || st.ID == "" || st.ID == m.cfg.NodeID {
		return
	}
	st.Self, st.AgeMS = false, 0
	m.mu.Lock()
	m.peers[st.ID] = peer{st: st, seen: time.Now()}
	m.mu.Unlock()
}

// AnnounceNow makes Run announce at once (draining began), without waiting
// for the next period. It never blocks.
func (m *Membership) AnnounceNow() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run announces every Config.Interval, and forgets silent peers, until
// stop is closed; then it unsubscribes and returns. Its owner runs it once,
// on a goroutine of its own, and waits for it. It publishes from that
// goroutine because nats.go's Publish takes the connection lock, which a
// stuck NATS socket holds.
func (m *Membership) Run(stop <-chan struct{}) {
	defer func() { _ = m.sub.Unsubscribe() }()
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-m.kick:
		}
		now := time.Now()
		st := m.status(now)
		m.mu.Lock()
		m.self = st
		for id, p := range m.peers {
			if now.Sub(p.seen) > forgetPeriods*time.Duration(max(p.st.IntervalMS, 1))*time.Millisecond {
				delete(m.peers, id)
			}
		}
		m.mu.Unlock()
		if m.cfg.NATSUp != nil && !m.cfg.NATSUp() {
			continue // not buffered for later: it would be stale
		}
		b, _ := json.Marshal(st)
		if err := m.nc.Publish(m.subject, b); err != nil && m.cfg.OnError != nil {
			m.cfg.OnError(err)
		}
	}
}

// status is this node's announcement now. Only Run and New call it: it
// keeps the counters the rates are computed from.
func (m *Membership) status(now time.Time) NodeStatus {
	var in, out uint64
	if m.cfg.Messages != nil {
		in, out = m.cfg.Messages()
	}
	st := m.live(NodeStatus{ID: m.cfg.NodeID, IntervalMS: m.cfg.Interval.Milliseconds()})
	if dt := now.Sub(m.lastAt).Seconds(); !m.lastAt.IsZero() && dt > 0 {
		st.MsgsInRate = float64(in-m.lastIn) / dt
		st.MsgsOutRate = float64(out-m.lastOut) / dt
	}
	m.lastIn, m.lastOut, m.lastAt = in, out, now
	return st
}

// live returns st with the fields Config.Status reports taken from it
// now; the rates stay those of st, since only an announcement measures
// them.
func (m *Membership) live(st NodeStatus) NodeStatus {
	l := m.cfg.Status()
	st.State = l.State
	st.Connections = l.Connections
	st.Subscriptions = l.Subscriptions
	st.Rebalancing = l.Rebalancing
	st.Moving = l.Moving
	st.Shed = l.Shed
	return st
}

// View returns every node this one knows: itself first (Self set, its
// counts live from Config.Status, its rates as last announced), then
// every peer heard from within the last few announcement periods, by id.
// It never touches NATS.
func (m *Membership) View() []NodeStatus {
	now := time.Now()
	m.mu.Lock()
	self := m.self
	out := make([]NodeStatus, 0, 1+len(m.peers))
	for _, p := range m.peers {
		st := p.st
		st.AgeMS = now.Sub(p.seen).Milliseconds()
		out = append(out, st)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	self = m.live(self)
	self.Self = true
	return append([]NodeStatus{self}, out...)
}
