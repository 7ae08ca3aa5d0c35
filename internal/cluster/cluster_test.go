package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/testutil"
)

// TestMain fails the run if a Membership's or a Shedder's Run, or the
// nats.go goroutine of a subscription, outlives the tests: every test
// stops what it ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		left := leftover()
		for left != "" && time.Now().Before(deadline) {
			runtime.Gosched()
			left = leftover()
		}
		if left != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// leftover returns the stacks of the goroutines running a Run or its
// subscription's handler.
func leftover() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var own []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cluster.(*Membership).Run") || strings.Contains(g, "cluster.(*Shedder).Run") || strings.Contains(g, "nats.(*Conn).waitForMsgs") {
			own = append(own, g)
		}
	}
	return strings.Join(own, "\n\n")
}

// node is a Membership under test, reporting what the test sets.
type node struct {
	*Membership
	st       atomic.Pointer[NodeStatus]
	in, out  atomic.Uint64
	up       atomic.Bool
	statuses atomic.Int64 // announcements built: Messages calls
	stop     func()       // stops Run and waits for it; idempotent
}

// startNode runs a Membership named id on nc, announcing every interval,
// and stops it at cleanup.
func startNode(t *testing.T, nc *nats.Conn, id string, interval time.Duration) *node {
	t.Helper()
	n := &node{}
	n.set(NodeStatus{State: NodeReady})
	n.up.Store(true)
	m, err := New(nc, Config{
		NodeID:   id,
		Interval: interval,
		Status:   func() NodeStatus { return *n.st.Load() },
		Messages: func() (uint64, uint64) { n.statuses.Add(1); return n.in.Load(), n.out.Load() },
		NATSUp:   n.up.Load,
		OnError:  func(err error) { t.Errorf("%s: announcing: %v", id, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Membership = m
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); m.Run(stop) }()
	var once sync.Once
	n.stop = func() { once.Do(func() { close(stop) }); <-done }
	t.Cleanup(n.stop)
	return n
}

func (n *node) set(st NodeStatus) { n.st.Store(&st) }

// entry returns node id's entry in n's view.
func (n *node) entry(id string) (NodeStatus, bool) {
	for _, st := range n.View() {
		if st.ID == id {
			return st, true
		}
	}
	return NodeStatus{}, false
}

// announced waits until n has built k more announcements than it had
// when before was read: a second one means the first was published or
// skipped.
func (n *node) announced(t *testing.T, before int64, k int64) {
	t.Helper()
	testutil.Eventually(t, "an announcement", func() bool { return n.statuses.Load() >= before+k })
}

func TestNewRequires(t *testing.T) {
	nc := testutil.NATSClient(t, testutil.StartNATS(t, false, nil))
	status := func() NodeStatus { return NodeStatus{} }
	for name, cfg := range map[string]Config{
		"a node id": {Status: status},
		"a status":  {NodeID: "a"},
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := New(nc, cfg); err == nil || m != nil {
				t.Fatalf("New = %v, %v; want an error", m, err)
			}
		})
	}
}

func TestSubjectToken(t *testing.T) {
	for in, want := range map[string]string{"node-1": "node-1", "a.b": "a_b", "x*>y z": "x__y_z"} {
		if got := subjectToken(in); got != want || strings.ContainsAny(got, ".*> ") {
			t.Errorf("subjectToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAnnouncementJSON pins the announcement's encoding: nodes of
// different versions read each other's.
func TestAnnouncementJSON(t *testing.T) {
	b, err := json.Marshal(NodeStatus{
		ID: "n1", State: NodeDraining, Connections: 3, Subscriptions: 4, MsgsInRate: 1.5, MsgsOutRate: 2,
		Rebalancing: true, Moving: 5, Shed: 6, IntervalMS: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"n1","state":"draining","connections":3,"subscriptions":4,"msgs_in_per_sec":1.5,"msgs_out_per_sec":2,"rebalancing":true,"moving":5,"shed_total":6,"interval_ms":1000,"self":false,"age_ms":0}`
	if string(b) != want {
		t.Fatalf("announcement\n%s\nwant\n%s", b, want)
	}
}

// TestAnnounce: AnnounceNow publishes this node's status on its own
// subject at once, with its rates since the last announcement; while NATS
// is down nothing is published.
func TestAnnounce(t *testing.T) {
	nc := testutil.NATSClient(t, testutil.StartNATS(t, false, nil))
	raw, err := nc.SubscribeSync("$WSBRIDGE.cluster.>")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nc, "a.b c", time.Hour)
	n.set(NodeStatus{ID: "ignored", State: NodeReady, Connections: 3, Subscriptions: 4, Rebalancing: true, Moving: 1, Shed: 2, IntervalMS: 7, Self: true, AgeMS: 9})
	n.in.Store(100)
	n.out.Store(300)
	n.AnnounceNow()
	msg, err := raw.NextMsg(testutil.Wait)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "$WSBRIDGE.cluster.a_b_c" {
		t.Fatalf("subject %q", msg.Subject)
	}
	var got NodeStatus
	if err := json.Unmarshal(msg.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.MsgsInRate <= 0 || got.MsgsOutRate <= got.MsgsInRate {
		t.Errorf("rates in %v, out %v: want out > in > 0", got.MsgsInRate, got.MsgsOutRate)
	}
	want := NodeStatus{ID: "a.b c", State: NodeReady, Connections: 3, Subscriptions: 4, MsgsInRate: got.MsgsInRate, MsgsOutRate: got.MsgsOutRate, Rebalancing: true, Moving: 1, Shed: 2, IntervalMS: time.Hour.Milliseconds()}
	if got != want {
		t.Errorf("announced %+v\nwant %+v", got, want)
	}
	if v := n.View()[0]; v.MsgsInRate != got.MsgsInRate || v.MsgsOutRate != got.MsgsOutRate || !v.Self {
		t.Errorf("self in the view %+v: want Self and the announced rates", v)
	}

	t.Run("not while NATS is down", func(t *testing.T) {
		n.up.Store(false)
		before := n.statuses.Load()
		n.AnnounceNow()
		n.announced(t, before, 1)
		n.AnnounceNow()
		n.announced(t, before, 2)
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if k, _, _ := raw.Pending(); k != 0 {
			t.Fatalf("%d announcements while NATS was down", k)
		}
		n.up.Store(true)
		n.AnnounceNow()
		if _, err := raw.NextMsg(testutil.Wait); err != nil {
			t.Fatalf("once up again: %v", err)
		}
	})
}

// TestView: nodes see each other, themselves first with live counts; a
// node's own id never enters its view as a peer, nor does a message that
// is not an announcement; a silent node is forgotten.
func TestView(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	nc := testutil.NATSClient(t, ns)
	a := startNode(t, nc, "a", 20*time.Millisecond)
	b := startNode(t, testutil.NATSClient(t, ns), "b", 20*time.Millisecond)
	c := startNode(t, testutil.NATSClient(t, ns), "c", 20*time.Millisecond)
	b.set(NodeStatus{State: NodeReady, Connections: 5})
	testutil.Eventually(t, "every node to see the three and b's count", func() bool {
		for _, n := range []*node{a, b, c} {
			v := n.View()
			if len(v) != 3 || !v[0].Self || v[1].Self || v[2].Self || v[1].ID >= v[2].ID {
				return false
			}
			if nb, ok := n.entry("b"); !ok || nb.Connections != 5 {
				return false
			}
		}
		return true
	})

	t.Run("self is live", func(t *testing.T) {
		a.set(NodeStatus{State: NodeDraining, Connections: 42})
		if v := a.View()[0]; v.ID != "a" || v.State != NodeDraining || v.Connections != 42 || v.AgeMS != 0 {
			t.Fatalf("self %+v: want a's counts now", v)
		}
	})
	t.Run("not an announcement", func(t *testing.T) {
		for _, data := range []string{`not json`, `{"state":"ready"}`, `{"id":"a","connections":99}`} {
			if err := nc.Publish("$WSBRIDGE.cluster.x", []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// A marker after them: once it is in the view, they were handled.
		if err := nc.Publish("$WSBRIDGE.cluster.z", []byte(`{"id":"z","interval_ms":60000}`)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "b to see the marker", func() bool { _, ok := b.entry("z"); return ok })
		if v := b.View(); len(v) != 4 {
			t.Fatalf("b's view %+v: want a, b, c and z", v)
		}
		if v := a.View(); v[0].Connections != 42 || v[1].ID == "a" {
			t.Fatalf("a's view %+v: its own id entered it", v)
		}
	})
	t.Run("a silent node is forgotten", func(t *testing.T) {
		c.stop()
		testutil.Eventually(t, "a and b to forget c", func() bool {
			_, inA := a.entry("c")
			_, inB := b.entry("c")
			return !inA && !inB
		})
	})
}
