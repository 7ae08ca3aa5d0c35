package cluster

import (
	"bytes"
	"cmp"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"wsbridge/internal/testutil"
)

// client is a fake Candidate. The test decides when a shed client is
// gone, as its close handshake would.
type client struct {
	n             *shedNode
	opened        int64
	closing, gone bool
	shedBy        bool // closed by Shed, not on its own
}

func (c *client) Opened() int64 { return c.opened }
func (c *client) Open() bool    { return !c.closing && !c.gone }
func (c *client) Gone() bool    { return c.gone }
func (c *client) Shed() {
	c.closing, c.shedBy = true, true
	c.gone = c.n.quick
	c.n.order = append(c.n.order, c.opened)
}

// shedNode is a Shedder driven decision by decision on a fake clock, over
// fake clients and a view the test sets. Nothing runs concurrently.
type shedNode struct {
	*Shedder
	now        time.Time
	next       time.Duration // what the last decision asked for
	clients    []*client
	peers      []NodeStatus // the view after this node's own entry
	allowed    bool
	quick      bool    // a shed client is gone at once, its close answered
	order      []int64 // Opened of each client shed, in order
	candidates int     // Candidates calls
	log        bytes.Buffer
}

// testInterval is the announcement period of the nodes under test: a
// node starts after 200 ms over the trigger, and a shed client moves for
// 1.2 s.
const testInterval = 100 * time.Millisecond

// newShedNode returns a node holding conns clients, opened in a shuffled
// order, next to peers; its first decision comes rebalanceIdle in, as
// under Run.
func newShedNode(t *testing.T, cfg ShedConfig, conns int, peers ...NodeStatus) *shedNode {
	t.Helper()
	n := &shedNode{now: time.Unix(1000, 0), next: rebalanceIdle, peers: peers, allowed: true}
	for i := range conns {
		n.clients = append(n.clients, &client{n: n, opened: int64((i*7)%conns) + 1})
	}
	cfg.Interval = cmp.Or(cfg.Interval, testInterval)
	cfg.Allowed = func() bool { return n.allowed }
	cfg.Connections = func() int64 {
		k := int64(0)
		for _, c := range n.clients {
			if !c.gone {
				k++
			}
		}
		return k
	}
	cfg.View = func() []NodeStatus {
		own := NodeStatus{ID: "a", State: NodeReady, Connections: n.Own(), Moving: n.Moving(), IntervalMS: cfg.Interval.Milliseconds(), Self: true}
		return append([]NodeStatus{own}, n.peers...)
	}
	cfg.Candidates = func() []Candidate {
		n.candidates++
		var cs []Candidate
		for _, c := range n.clients {
			if !c.gone {
				cs = append(cs, c)
			}
		}
		return cs
	}
	cfg.Log = slog.New(slog.NewTextHandler(&n.log, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	s, err := NewShedder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Shedder = s
	return n
}

// decide takes the next decision when the last one asked for it.
func (n *shedNode) decide() {
	n.now = n.now.Add(n.next)
	n.next = n.Shedder.decide(n.now)
}

// decideFor takes decisions until d has passed.
func (n *shedNode) decideFor(d time.Duration) {
	end := n.now.Add(d)
	for !n.now.Add(n.next).After(end) {
		n.decide()
	}
}

// arrive makes every shed client gone, and counts them at peer b, as if
// they had reconnected there and b had announced it.
func (n *shedNode) arrive() {
	for _, c := range n.clients {
		if c.shedBy && !c.gone {
			c.gone = true
			n.peers[0].Connections++
		}
	}
}

func (n *shedNode) lines() []string {
	return strings.Split(strings.TrimSpace(n.log.String()), "\n")
}

// readyPeer is a ready peer on time.
func readyPeer(id string, conns int64) NodeStatus {
	return NodeStatus{ID: id, State: NodeReady, Connections: conns, IntervalMS: testInterval.Milliseconds()}
}

// TestShedderSheds follows one rebalancing from start to end: two
// periods over the trigger, the first client at once, then one per step
// at Rate, oldest first, a wait while the shed clients may be counted
// nowhere, and the end at the mean.
func TestShedderSheds(t *testing.T) {
	n := newShedNode(t, ShedConfig{Rate: 100, Slack: 0.1}, 20, readyPeer("b", 0))

	n.decide()
	if n.Active() || len(n.order) != 0 {
		t.Fatalf("first decision over the trigger: active %v, shed %v; want neither", n.Active(), n.order)
	}
	if n.next != rebalanceIdle {
		t.Fatalf("next decision in %v, want %v", n.next, rebalanceIdle)
	}
	n.decide() // 250 ms later: over for two periods
	if !n.Active() || len(n.order) != 1 || n.next != 10*time.Millisecond {
		t.Fatalf("two periods over: active %v, shed %d, next in %v; want active, 1, 10ms", n.Active(), len(n.order), n.next)
	}
	for range 9 {
		n.decide()
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(n.order, want) {
		t.Fatalf("shed %v, want the oldest first %v", n.order, want)
	}
	if n.candidates != 1 {
		t.Fatalf("Candidates called %d times within 100 ms, want once", n.candidates)
	}
	if n.ShedTotal() != 10 || n.Moving() != 10 || n.Own() != 10 {
		t.Fatalf("shed %d, moving %d, own %d; want 10 of each", n.ShedTotal(), n.Moving(), n.Own())
	}

	// At the mean counting the moving clients, above it without them: b
	// has not announced them yet, so a waits, still active.
	n.decideFor(time.Second)
	if !n.Active() || n.ShedTotal() != 10 {
		t.Fatalf("waiting for b: active %v, shed %d; want active, 10", n.Active(), n.ShedTotal())
	}
	n.arrive()
	n.decide()
	if n.Active() || n.next != rebalanceIdle || n.Own() != 10 {
		t.Fatalf("b counts them: active %v, next in %v, own %d; want done, %v, 10", n.Active(), n.next, n.Own(), rebalanceIdle)
	}
	n.decideFor(10 * time.Second)
	if n.ShedTotal() != 10 || n.Moving() != 0 {
		t.Fatalf("after the end: shed %d, moving %d; want 10, 0", n.ShedTotal(), n.Moving())
	}
	want := []string{
		`level=INFO msg="rebalancing: shedding clients with 1012" connections=20 mean=10 nodes=2 rate=100`,
		`level=INFO msg="rebalancing done" connections=10 shed_total=10`,
	}
	if got := n.lines(); !slices.Equal(got, want) {
		t.Fatalf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestShedderStart: one sample over the trigger is not enough; a node
// must stay over it for two announcement periods.
func TestShedderStart(t *testing.T) {
	n := newShedNode(t, ShedConfig{Rate: 100, Slack: 0.1}, 20, readyPeer("b", 0))
	n.decide() // over
	n.peers[0].Connections = 20
	n.decide() // even
	n.peers[0].Connections = 0
	n.decide() // over again: the two periods start here
	if n.Active() {
		t.Fatal("active after one sample over")
	}
	n.decide()
	if !n.Active() || n.ShedTotal() != 1 {
		t.Fatalf("two periods over: active %v, shed %d; want active, 1", n.Active(), n.ShedTotal())
	}
}

// TestShedderNever: nothing is shed while not allowed, at the floor,
// alone, or with a peer late.
func TestShedderNever(t *testing.T) {
	late := readyPeer("b", 0)
	late.AgeMS = 151
	cases := []struct {
		name    string
		cfg     ShedConfig
		peers   []NodeStatus
		allowed bool
	}{
		{"not allowed", ShedConfig{}, []NodeStatus{readyPeer("b", 0)}, false},
		{"at the floor", ShedConfig{Floor: 20}, []NodeStatus{readyPeer("b", 0)}, true},
		{"alone", ShedConfig{}, nil, true},
		{"a peer late", ShedConfig{}, []NodeStatus{late}, true},
		{"a draining peer is not in the mean", ShedConfig{}, []NodeStatus{{ID: "b", State: NodeDraining, IntervalMS: 100}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newShedNode(t, tc.cfg, 20, tc.peers...)
			n.allowed = tc.allowed
			n.decideFor(10 * time.Second)
			if n.Active() || n.ShedTotal() != 0 || n.Decisions() != 40 {
				t.Fatalf("active %v, shed %d, %d decisions; want none shed in 40", n.Active(), n.ShedTotal(), n.Decisions())
			}
		})
	}
}

// TestShedderStops: shedding stops at once when it is no longer allowed
// (draining, NATS down) or a peer is late, and does not start again
// within the slack, even once the peer is on time.
func TestShedderStops(t *testing.T) {
	cases := []struct {
		name          string
		stop, restart func(n *shedNode)
	}{
		{
			"not allowed",
			func(n *shedNode) { n.allowed = false },
			func(n *shedNode) { n.allowed = true },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newShedNode(t, ShedConfig{Rate: 100, Slack: 0.1}, 20, readyPeer("b", 0))
			n.decideFor(500*time.Millisecond + 80*time.Millisecond)
			if got := n.ShedTotal(); got != 9 {
				t.Fatalf("shed %d before the stop, want 9", got)
			}
			n.arrive() // 11 against 9: above the mean, within the slack
			tc.stop(n)
			n.decide()
			if n.Active() || n.next != rebalanceIdle {
				t.Fatalf("active %v, next in %v; want stopped", n.Active(), n.next)
			}
			tc.restart(n)
			n.decideFor(10 * time.Second)
			if n.Active() || n.ShedTotal() != 9 {
				t.Fatalf("active %v, shed %d; want stopped at 9", n.Active(), n.ShedTotal())
			}
			if got := n.lines(); len(got) != 2 || !strings.Contains(got[1], `msg="rebalancing done" connections=11 shed_total=9`) {
				t.Fatalf("logged %q, want a start and a done", got)
			}
		})
	}
}

// TestShedderPausesWhileAPeerIsLate: a late peer pauses shedding (it may
// have died, and its clients be on their way) without ending it: once the
// peer announces again, the node goes on to the mean, which a node
// within the slack would otherwise never reach.
func TestShedderPausesWhileAPeerIsLate(t *testing.T) {
	n := newShedNode(t, ShedConfig{Rate: 100, Slack: 0.1}, 20, readyPeer("b", 0))
	n.decideFor(500*time.Millisecond + 80*time.Millisecond)
	if got := n.ShedTotal(); got != 9 {
		t.Fatalf("shed %d before the pause, want 9", got)
	}
	n.arrive()
	n.arrive() // above the mean, within the slack
	n.peers[0].AgeMS = 151
	n.decideFor(time.Second)
	if !n.Active() || n.ShedTotal() != 9 {
		t.Fatalf("while the peer is late: active %v, shed %d; want paused at 9", n.Active(), n.ShedTotal())
	}
	n.peers[0].AgeMS = 0
	n.decideFor(10 * time.Second)
	if n.Active() || n.ShedTotal() != 10 {
		t.Fatalf("after the peer announced: active %v, shed %d; want done at 10 (the mean)", n.Active(), n.ShedTotal())
	}
	if got := n.lines(); len(got) != 2 || !strings.Contains(got[1], `msg="rebalancing done" connections=10 shed_total=10`) {
		t.Fatalf("logged %q, want a start and a done", got)
	}
}

// TestShedderPace: the trickle sheds Rate per second in steps of at
// least 10 ms, and a decision that comes late sheds at most two steps'
// worth.
func TestShedderPace(t *testing.T) {
	cases := []struct {
		name      string
		rate      float64
		late      time.Duration // the third decision comes this much late
		step      time.Duration
		perStep   int
		afterLate int
	}{
		{"one per step", 100, time.Second, 10 * time.Millisecond, 1, 2},
		{"faster than the timer", 1000, time.Second, 10 * time.Millisecond, 10, 20},
		{"slower than one a second", 0.5, 10 * time.Second, 2 * time.Second, 1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newShedNode(t, ShedConfig{Rate: tc.rate}, 200, readyPeer("b", 0), readyPeer("c", 0), readyPeer("d", 0), readyPeer("e", 0))
			n.quick = true // else at 0.5/s the one client planned is the one still closing
			n.decide()
			n.decide()
			if n.ShedTotal() != 1 || n.next != tc.step {
				t.Fatalf("start: shed %d, next in %v; want 1, %v", n.ShedTotal(), n.next, tc.step)
			}
			n.decide()
			if got := n.ShedTotal() - 1; got != uint64(tc.perStep) {
				t.Fatalf("one step shed %d, want %d", got, tc.perStep)
			}
			before := n.ShedTotal()
			n.next += tc.late
			n.decide()
			if got := n.ShedTotal() - before; got != uint64(tc.afterLate) {
				t.Fatalf("a step %v late shed %d, want %d", tc.late, got, tc.afterLate)
			}
		})
	}
}

// TestShedderCandidates: the candidates are rebuilt each second while
// shedding, and a client that closed on its own is skipped.
func TestShedderCandidates(t *testing.T) {
	n := newShedNode(t, ShedConfig{Rate: 100}, 1000, readyPeer("b", 0))
	n.quick = true
	for _, c := range n.clients {
		if c.opened == 1 {
			c.closing = true // by its client: not shed, not gone yet
		}
	}
	n.decideFor(3 * time.Second) // shedding from 500 ms on
	want := make([]int64, 0, 251)
	for k := range int64(251) {
		want = append(want, 2+k)
	}
	if !slices.Equal(n.order, want) {
		t.Fatalf("shed %v\nwant %v", n.order, want)
	}
	if n.candidates != 3 {
		t.Fatalf("%d plans in 2.5 s of shedding, want 3", n.candidates)
	}
}

// TestShedderAccounting: a shed client is left out of Own until it is
// gone, and counts as moving for two announcement periods and a second.
func TestShedderAccounting(t *testing.T) {
	n := newShedNode(t, ShedConfig{Rate: 1}, 20, readyPeer("b", 0))
	n.decide()
	n.decide()
	shedAt := n.now
	if n.Own() != 19 || n.Moving() != 1 {
		t.Fatalf("own %d, moving %d; want 19, 1", n.Own(), n.Moving())
	}
	n.allowed = false // no more shedding; the accounting goes on
	for _, c := range n.clients {
		if c.shedBy {
			c.gone = true
		}
	}
	n.decide()
	if n.Own() != 19 || n.Moving() != 1 {
		t.Fatalf("gone: own %d, moving %d; want 19, 1", n.Own(), n.Moving())
	}
	for n.now.Add(n.next).Sub(shedAt) <= 2*testInterval+time.Second {
		n.decide()
	}
	if n.Moving() != 1 {
		t.Fatalf("moving %d at %v, want 1", n.Moving(), n.now.Sub(shedAt))
	}
	n.decide()
	if n.Moving() != 0 {
		t.Fatalf("moving %d at %v, want 0", n.Moving(), n.now.Sub(shedAt))
	}
}

// TestShedderRun: Run decides on its own timer and returns when stopped.
func TestShedderRun(t *testing.T) {
	n := newShedNode(t, ShedConfig{}, 0)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); n.Run(stop) }()
	testutil.Eventually(t, "a decision", func() bool { return n.Decisions() > 0 })
	close(stop)
	select {
	case <-done:
	case <-time.After(testutil.Wait):
		t.Fatal("Run did not return")
	}
}

func TestNewShedderRequires(t *testing.T) {
	views := func() []NodeStatus { return nil }
	conns := func() int64 { return 0 }
	cands := func() []Candidate { return nil }
	for name, cfg := range map[string]ShedConfig{
		"connections": {View: views, Candidates: cands},
		"a view":      {Connections: conns, Candidates: cands},
		"candidates":  {Connections: conns, View: views},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := NewShedder(cfg); err == nil || s != nil {
				t.Fatalf("NewShedder = %v, %v; want an error", s, err)
			}
		})
	}
}
