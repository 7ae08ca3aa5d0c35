package bridge

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"wsbridge/internal/testutil"
)

// clusterNode starts a bridge named id on ns that announces every 50 ms.
func clusterNode(t *testing.T, ns *natsserver.Server, id string, mutate func(*Config)) *testServer {
	t.Helper()
	return startTestBridge(t, ns, func(c *Config) {
		c.NodeID = id
		c.AnnounceInterval = 50 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
}

// viewOf returns node id's entry in srv's view.
func viewOf(srv *testServer, id string) (NodeStatus, bool) {
	for _, n := range srv.Cluster() {
		if n.ID == id {
			return n, true
		}
	}
	return NodeStatus{}, false
}

func TestClusterAnnouncements(t *testing.T) {
	ns := startTestNATS(t)
	a := clusterNode(t, ns, "a", nil)
	b := clusterNode(t, ns, "b", nil)
	c := clusterNode(t, ns, "c", nil)
	conn := testutil.DialWS(t, b.addr, "/ws")
	conn.ExpectText(`{"op":"hello"`)
	testutil.Eventually(t, "every node to see the three and b's client", func() bool {
		for _, s := range []*testServer{a, b, c} {
			v := s.Cluster()
			if len(v) != 3 || !v[0].Self || v[0].ID != s.cfg.NodeID {
				return false
			}
			if nb, ok := viewOf(s, "b"); !ok || nb.Connections != 1 || nb.State != NodeReady {
				return false
			}
		}
		return true
	})

	t.Run("draining is announced at once", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- c.Shutdown(t.Context()) }()
		testutil.Eventually(t, "a to see c draining or gone", func() bool {
			n, ok := viewOf(a, "c")
			return !ok || n.State == NodeDraining
		})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a silent node is forgotten", func(t *testing.T) {
		testutil.Eventually(t, "a to forget c", func() bool {
			_, ok := viewOf(a, "c")
			return !ok && len(a.Cluster()) == 2
		})
	})
	t.Run("metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if err := reg.Register(newCollector(a.Server)); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, mf := range mfs {
			got[mf.GetName()] = len(mf.GetMetric())
		}
		for name, n := range map[string]int{
			"wsbridge_cluster_nodes":                       1,
			"wsbridge_cluster_mean_connections":            1,
			"wsbridge_cluster_rebalancing":                 1,
			"wsbridge_cluster_rebalance_closes_total":      1,
			"wsbridge_cluster_node_connections":            2,
			"wsbridge_cluster_node_subscriptions":          2,
			"wsbridge_cluster_node_messages_in_per_second": 2,
			"wsbridge_cluster_node_state":                  2,
		} {
			if got[name] != n {
				t.Errorf("%s: %d series, want %d", name, got[name], n)
			}
		}
	})
}

// TestRebalanceSheds: a node with 20 clients next to an empty peer sheds
// down to the mean, each with 1012 "rebalance", and stops there. The test
// plays the peer: it counts every shed client as its own, as if the load
// balancer had sent it there, and announces a period longer than the
// test, so that it is never late. A real node announcing every 50 ms
// misses its 75 ms grace on a loaded machine, and a late peer stops the
// shedding (cluster.Assess) at 11 against 9, within the slack, where it
// does not start again.
func TestRebalanceSheds(t *testing.T) {
	// announce is a's period. a starts after two of them over the
	// trigger, and counts a shed client as moving for two and a second
	// (1.5 s): how long the peer's count of it may take to reach a before
	// a sheds one too many. While the count catches up a sheds in rounds,
	// each waiting for the last to stop moving: the tenth client goes
	// about 4 s in, within testutil.Wait, which bounds each client's read.
	const announce = 250 * time.Millisecond
	ns := startTestNATS(t)
	a := clusterNode(t, ns, "a", func(c *Config) { c.AnnounceInterval, c.Rebalance, c.RebalanceRate = announce, true, 100 })
	if err := a.NATS().Flush(); err != nil { // a's subscription to announcements is in place
		t.Fatal(err)
	}
	peer := testutil.NATSClient(t, ns)
	announceB := func(conns int) {
		t.Helper()
		b, err := json.Marshal(NodeStatus{ID: "b", State: NodeReady, Connections: int64(conns), IntervalMS: time.Hour.Milliseconds()})
		if err == nil {
			err = peer.Publish("$WSBRIDGE.cluster.b", b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	announceB(0)
	const n = 20
	closes := make(chan string, n)
	for range n {
		c := testutil.DialWS(t, a.addr, "/ws")
		c.ExpectText(`{"op":"hello"`)
		go func() {
			f, err := c.TryReadFrame()
			if err != nil || f.Op != ws.OpClose || len(f.Payload) < 2 {
				closes <- "no close: " + f.String()
				return
			}
			code := int(f.Payload[0])<<8 | int(f.Payload[1])
			if code != 1012 || string(f.Payload[2:]) != "rebalance" {
				closes <- "close " + f.String()
				return
			}
			closes <- "rebalance"
		}()
	}
	moved := 0
	deadline := time.After(testutil.Wait)
	for moved < n/2 {
		select {
		case why := <-closes:
			if why != "rebalance" {
				t.Fatalf("client %d: %s", moved, why)
			}
			moved++
			announceB(moved)
		case <-deadline:
			t.Fatalf("only %d of %d clients shed", moved, n/2)
		}
	}
	testutil.Eventually(t, "a to stop shedding with b's count in view", func() bool {
		nb, _ := viewOf(a, "b")
		return nb.Connections == n/2 && !a.rebal.Active()
	})
	if got := a.rebal.ShedTotal(); got != n/2 {
		t.Fatalf("a shed %d clients, want %d", got, n/2)
	}
	if got := a.Cluster()[0].Connections; got != n/2 {
		t.Fatalf("a holds %d, want %d", got, n/2)
	}
	select {
	case why := <-closes:
		t.Fatalf("one more client closed: %s", why)
	default:
	}
}

// TestRebalanceNeverSheds: the off switch, the minimum, and a node that
// is not ready keep every client.
func TestRebalanceNeverSheds(t *testing.T) {
	on := func(c *Config) { c.Rebalance = true }
	cases := []struct {
		name   string
		mutate func(*Config)
		then   func(*testServer) // after the clients are connected
	}{
		{"off", func(c *Config) { c.Rebalance = false }, nil},
		{"below the minimum", func(c *Config) { c.Rebalance, c.RebalanceMinConnections = true, 10 }, nil},
		// As the status listener would record it while nats.go reconnects.
		{"NATS down", on, func(s *testServer) { s.linkChanged(false) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := startTestNATS(t)
			a := clusterNode(t, ns, "a", tc.mutate)
			_ = clusterNode(t, ns, "b", nil)
			for range 10 {
				c := testutil.DialWS(t, a.addr, "/ws")
				c.ExpectText(`{"op":"hello"`)
			}
			if tc.then != nil {
				tc.then(a)
			}
			// Several decisions after a knows both counts.
			var seen uint64
			testutil.Eventually(t, "a to see b and decide twice", func() bool {
				if _, ok := viewOf(a, "b"); ok && seen == 0 {
					seen = a.rebal.Decisions()
				}
				return seen > 0 && a.rebal.Decisions() > seen+2
			})
			if a.rebal.ShedTotal() != 0 || a.Stats().Connections != 10 {
				t.Fatalf("a shed %d, holds %d", a.rebal.ShedTotal(), a.Stats().Connections)
			}
		})
	}
}

func TestHandshakeRate(t *testing.T) {
	ns := startTestNATS(t)
	srv := startTestBridge(t, ns, func(c *Config) { c.MaxHandshakeRate = 2 })
	var last *http.Response
	for i := range 3 {
		conn, err := net.DialTimeout("tcp", srv.addr, confWait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(confWait))
		if _, err := conn.Write([]byte(upgradeRequest("/ws"))); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 && resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake %d: %s, want 101 within the burst", i, resp.Status)
		}
		last = resp
	}
	if last.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third handshake: %s, want 503", last.Status)
	}
	if ra := last.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q, want 1", ra)
	}
	if got := refusedFor(t, srv.Server, "rate"); got != 1 {
		t.Fatalf("refused for rate: %d, want 1", got)
	}
}
