package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFailoverRealProcesses runs three wsbridge binaries on a three-node
// NATS cluster with an R3 stream, and 300 WebSocket clients that follow
// the stream while a publisher writes at a steady rate. During the run one
// bridge is killed with SIGKILL and the stream leader's NATS node is shut
// down and started again. Every client must end with every sequence
// exactly once, in order.
func TestFailoverRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("failover with real processes takes about 20s")
	}
	const (
		nClients = 300
		nMsgs    = 1000
		rate     = 10 * time.Millisecond // 100 msg/s
		overall  = 90 * time.Second      // bound on the whole run
	)
	ctx, cancel := context.WithTimeout(context.Background(), overall)
	defer cancel()

	cl := startCluster(t, 3, nil)
	js := clusterStream(t, ctx, cl, jetstream.StreamConfig{Name: "FAIL", Subjects: []string{"fail.>"}, Replicas: 3})

	bridges := make([]*process, 3)
	addrs := make([]string, len(bridges))
	for i := range bridges {
		bridges[i] = startProcess(t, "BRIDGE_NATS_URL="+cl.urls(), "BRIDGE_NODE_ID=fo-"+strconv.Itoa(i))
		addrs[i] = bridges[i].addr
	}

	// Clients, round-robin over the bridges; all subscribed before the
	// publisher starts.
	pubAt := make([]atomic.Int64, nMsgs+1) // unix ns of each seq's ack
	clients := startFoClients(t, ctx, cancel, nClients, addrs, nMsgs, pubAt)

	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() { pubDone <- foPublish(ctx, js, nMsgs, rate, &published, pubAt) }()

	waitFor(t, ctx, "a quarter of the messages", func() bool { return published.Load() >= nMsgs/4 })
	if err := bridges[0].cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed bridge fo-0 (kill -9) at message %d", published.Load())

	waitFor(t, ctx, "45% of the messages", func() bool { return published.Load() >= nMsgs*45/100 })
	leader := cl.streamLeader(t, ctx, js, "FAIL")
	cl.stop(leader)
	t.Logf("stopped NATS node %s (stream leader) at message %d", cl.name(leader), published.Load())
	waitFor(t, ctx, "60% of the messages", func() bool { return published.Load() >= nMsgs*60/100 })
	cl.start(t, leader)
	t.Logf("restarted NATS node %s at message %d", cl.name(leader), published.Load())

	select {
	case err := <-pubDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("publisher did not finish: %d of %d", published.Load(), nMsgs)
	}
	finished := func() bool {
		for _, c := range clients {
			if !c.finished() {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !finished() && time.Now().Before(deadline) && ctx.Err() == nil {
		foPause(ctx, 20*time.Millisecond)
	}

	var reconnects, stalls, lags []time.Duration
	var worstLag uint64
	var dups, subErrs, affected int
	failed := 0
	for i, c := range clients {
		c.mu.Lock()
		if err := c.check(); err != nil {
			failed++
			if failed <= 10 {
				t.Errorf("client %d (last on %s): %v", i, c.node, err)
			}
		}
		if len(c.reconnects) > 0 {
			affected++
			reconnects = append(reconnects, slices.Max(c.reconnects))
		}
		stalls = append(stalls, c.maxGap)
		lags = append(lags, c.maxLag)
		if c.maxLag == slices.Max(lags) {
			worstLag = c.lagSeq
		}
		dups += c.dups
		subErrs += len(c.subErrs)
		c.mu.Unlock()
	}
	if failed > 0 {
		t.Errorf("%d of %d clients did not get 1..%d exactly once in order", failed, nClients, nMsgs)
		for i, b := range bridges {
			if i > 0 {
				t.Logf("bridge fo-%d log tail:\n%s", i, tailLines(b.logs.String(), 20))
			}
		}
	}
	if dups > 0 {
		// Allowed on the wire only if the bridge resent after a resume;
		// PROTOCOL.md promises none, so report it.
		t.Errorf("the bridges sent %d frames with seq <= the last seen (the client dropped them)", dups)
	}
	t.Logf("%d clients, %d messages each; %d clients reconnected (%d sub errors)", nClients, nMsgs, affected, subErrs)
	if len(reconnects) > 0 {
		t.Logf("reconnect time (connection loss → first message after resubscribe): p50 %v, max %v",
			percentile(reconnects, 50), slices.Max(reconnects))
	}
	t.Logf("longest gap between two messages per client: p50 %v, max %v", percentile(stalls, 50), slices.Max(stalls))
	var pubGap time.Duration
	for i := 2; i <= nMsgs; i++ {
		pubGap = max(pubGap, time.Duration(pubAt[i].Load()-pubAt[i-1].Load()))
	}
	t.Logf("longest gap between two publish acks: %v", pubGap)
	t.Logf("worst delivery lag (publish ack → client) per client: p50 %v, max %v (seq %d)", percentile(lags, 50), slices.Max(lags), worstLag)
}

// foClient follows fail.x from the start through any bridge node: on a
// lost connection it moves to the next node and resubscribes after the
// last sequence it saw, dropping anything at or below it.
type foClient struct {
	addrs      []string
	next       int
	want       uint64
	subscribed *atomic.Int64
	pubAt      []atomic.Int64

	mu         sync.Mutex
	node       string
	lastSeq    uint64
	gap        string // first out-of-order delivery
	dups       int
	subErrs    []string
	lostAt     time.Time       // set while a loss has not been followed by a message
	reconnects []time.Duration // loss → first message after resubscribe
	lastMsg    time.Time
	maxGap     time.Duration
	maxLag     time.Duration // ack of a publish → its delivery
	lagSeq     uint64
	counted    bool
}

type foFrame struct {
	Op      string `json:"op"`
	Ref     string `json:"ref"`
	Sid     string `json:"sid"`
	Seq     uint64 `json:"seq"`
	Node    string `json:"node"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (c *foClient) run(ctx context.Context) {
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil && !c.finished() {
		addr := c.addrs[c.next%len(c.addrs)]
		c.next++
		if err := c.session(ctx, addr); err != nil {
			c.mu.Lock()
			if c.lostAt.IsZero() && c.counted {
				c.lostAt = time.Now()
			}
			c.mu.Unlock()
		} else {
			backoff = 10 * time.Millisecond
			continue
		}
		// Full jitter, as bridge.js does, so 100 clients don't stampede.
		foPause(ctx, time.Duration(rand.Int64N(int64(backoff))))
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// session runs one connection until it fails or the client is done.
func (c *foClient) session(ctx context.Context, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	ws, _, err := websocket.Dial(dctx, "ws://"+addr+"/ws", nil)
	cancel()
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)

	c.mu.Lock()
	from := any("all")
	if c.lastSeq > 0 {
		from = map[string]uint64{"after": c.lastSeq}
	}
	c.mu.Unlock()
	cmd, _ := json.Marshal(map[string]any{"op": "sub", "id": "s", "subject": "fail.x", "from": from})
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		var f foFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		switch f.Op {
		case "hello":
			c.mu.Lock()
			c.node = f.Node
			c.mu.Unlock()
			if err := ws.Write(ctx, websocket.MessageText, cmd); err != nil {
				return err
			}
		case "ok":
			c.mu.Lock()
			if !c.counted {
				c.counted = true
				c.subscribed.Add(1)
			}
			c.mu.Unlock()
		case "err":
			c.mu.Lock()
			c.subErrs = append(c.subErrs, f.Code+": "+f.Message)
			if !c.counted {
				c.counted = true
				c.subscribed.Add(1)
			}
			c.mu.Unlock()
			return fmt.Errorf("%s: %s", f.Code, f.Message) // resubscribe elsewhere
		case "msg":
			if done := c.deliver(f.Seq); done {
				ws.Close(websocket.StatusNormalClosure, "done")
				return nil
			}
		}
	}
}

// deliver applies the resume rule to one message; it reports whether the
// client has everything.
func (c *foClient) deliver(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	switch {
	case seq <= c.lastSeq:
		c.dups++
		return false
	case seq != c.lastSeq+1:
		if c.gap == "" {
			c.gap = fmt.Sprintf("after seq %d came %d", c.lastSeq, seq)
		}
	}
	if !c.lostAt.IsZero() {
		c.reconnects = append(c.reconnects, now.Sub(c.lostAt))
		c.lostAt = time.Time{}
	}
	if !c.lastMsg.IsZero() {
		c.maxGap = max(c.maxGap, now.Sub(c.lastMsg))
	}
	c.lastMsg = now
	c.lastSeq = seq
	if at := c.pubAt[min(seq, uint64(len(c.pubAt)-1))].Load(); at > 0 {
		if lag := now.Sub(time.Unix(0, at)); lag > c.maxLag {
			c.maxLag, c.lagSeq = lag, seq
		}
	}
	return c.gap == "" && c.lastSeq >= c.want
}

func (c *foClient) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gap != "" || c.lastSeq >= c.want
}

// check runs under c.mu.
func (c *foClient) check() error {
	switch {
	case c.gap != "":
		return fmt.Errorf("missed messages: %s", c.gap)
	case c.lastSeq != c.want:
		return fmt.Errorf("stopped at seq %d of %d (sub errors: %v)", c.lastSeq, c.want, c.subErrs)
	}
	return nil
}

// foPublish writes n messages to fail.x at one per period, each with a
// Nats-Msg-Id so a retry after a lost ack is deduplicated; every message
// must be stored as seq i.
func foPublish(ctx context.Context, js jetstream.JetStream, n int, period time.Duration, published *atomic.Int64, pubAt []atomic.Int64) error {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 1; i <= n; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		data := []byte(`{"n":` + strconv.Itoa(i) + `}`)
		for {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ack, err := js.Publish(pctx, "fail.x", data, jetstream.WithMsgID("m-"+strconv.Itoa(i)))
			cancel()
			if err == nil {
				if ack.Sequence != uint64(i) {
					return fmt.Errorf("message %d stored as seq %d", i, ack.Sequence)
				}
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("publishing message %d: %w", i, err)
			}
			foPause(ctx, 50*time.Millisecond) // the stream is electing a leader
		}
		pubAt[i].Store(time.Now().UnixNano())
		published.Store(int64(i))
	}
	return nil
}

// foCluster is a NATS cluster of in-process servers on fixed loopback
// ports, so a node can be stopped and started again with the same
// address, routes and store.
type foCluster struct {
	mu      sync.Mutex
	opts    []natsserver.Options
	servers []*natsserver.Server
}

// startCluster starts n JetStream nodes routed to each other; mutate, if
// not nil, adjusts node i's options.
func startCluster(t *testing.T, n int, mutate func(i int, o *natsserver.Options)) *foCluster {
	t.Helper()
	cl := &foCluster{opts: make([]natsserver.Options, n), servers: make([]*natsserver.Server, n)}
	routes := make([]string, n)
	for i := range n {
		o := natstest.DefaultTestOptions
		o.Port = freePort(t)
		o.ServerName = "n" + strconv.Itoa(i)
		o.JetStream = true
		o.StoreDir = t.TempDir()
		if n > 1 {
			o.Cluster.Name = "fo"
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = freePort(t)
			routes[i] = "nats://127.0.0.1:" + strconv.Itoa(o.Cluster.Port)
		}
		if mutate != nil {
			mutate(i, &o)
		}
		cl.opts[i] = o
	}
	for i := range n {
		if n > 1 {
			cl.opts[i].Routes = natsserver.RoutesFromStr(strings.Join(routes, ","))
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cl.start(t, i) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range n {
			cl.stop(i)
		}
	})
	return cl
}

func (cl *foCluster) start(t *testing.T, i int) {
	t.Helper()
	o := cl.opts[i] // a copy: the server keeps a pointer to its options
	s := natstest.RunServer(&o)
	cl.mu.Lock()
	cl.servers[i] = s
	cl.mu.Unlock()
}

func (cl *foCluster) stop(i int) {
	cl.mu.Lock()
	s := cl.servers[i]
	cl.servers[i] = nil
	cl.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (cl *foCluster) name(i int) string { return cl.opts[i].ServerName }

// urls lists the client URLs of the given nodes, or of all of them.
func (cl *foCluster) urls(nodes ...int) string {
	if len(nodes) == 0 {
		for i := range cl.opts {
			nodes = append(nodes, i)
		}
	}
	u := make([]string, len(nodes))
	for j, i := range nodes {
		u[j] = "nats://127.0.0.1:" + strconv.Itoa(cl.opts[i].Port)
	}
	return strings.Join(u, ",")
}

// index returns the node named name, or -1.
func (cl *foCluster) index(name string) int {
	for i, o := range cl.opts {
		if o.ServerName == name {
			return i
		}
	}
	return -1
}

// streamLeader returns the index of the node leading stream.
func (cl *foCluster) streamLeader(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) int {
	t.Helper()
	leader := -1
	retry(t, ctx, "finding the leader of "+stream, func(ctx context.Context) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster == nil {
			return fmt.Errorf("no cluster info")
		}
		for i, o := range cl.opts {
			if o.ServerName == info.Cluster.Leader {
				leader = i
				return nil
			}
		}
		return fmt.Errorf("leader %q is not a node of the cluster", info.Cluster.Leader)
	})
	return leader
}

// retry calls f until it succeeds, for at most wait.
// clusterStream connects a service to the cluster and creates the stream,
// retrying while the cluster forms.
func clusterStream(t *testing.T, ctx context.Context, cl *foCluster, cfg jetstream.StreamConfig) jetstream.JetStream {
	t.Helper()
	svc, err := nats.Connect(cl.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	js, err := jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	retry(t, ctx, "creating stream "+cfg.Name, func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, cfg)
		return err
	})
	return js
}

// startFoClients runs n resuming clients wanting seqs 1..want, client i
// starting at addrs[i%len(addrs)], and waits until every one has
// subscribed. They stop when ctx ends; cancel and the wait run at cleanup.
func startFoClients(t *testing.T, ctx context.Context, cancel context.CancelFunc, n int, addrs []string, want int, pubAt []atomic.Int64) []*foClient {
	t.Helper()
	var subscribed atomic.Int64
	clients := make([]*foClient, n)
	var wg sync.WaitGroup
	for i := range clients {
		c := &foClient{addrs: addrs, next: i % len(addrs), want: uint64(want), subscribed: &subscribed, pubAt: pubAt}
		clients[i] = c
		wg.Go(func() { c.run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, ctx, "every client to subscribe", func() bool { return subscribed.Load() >= int64(n) })
	return clients
}

func retry(t *testing.T, ctx context.Context, what string, f func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: %v", what, err)
		}
		foPause(ctx, 50*time.Millisecond)
	}
}

// waitFor polls cond until it holds; ctx bounds the wait.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		foPause(ctx, 5*time.Millisecond)
	}
}

// foPause waits d or until ctx ends: pacing between attempts, not
// synchronisation.
func foPause(ctx context.Context, d time.Duration) {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestFailoverFeedConsumerLoss: when the NATS node that hosts a bridge's
// stream consumer goes away (the bridge's own NATS connection is fine),
// delivery to its clients must resume within seconds, with nothing lost.
func TestFailoverFeedConsumerLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("failover with real processes takes about 10s")
	}
	const (
		nClients = 20
		nMsgs    = 400
		maxStall = 4 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// n0 carries the bridge's connection and no stream data; the stream
	// and its consumers live on n1..n3, so stopping the consumer's host
	// never cuts the bridge's own connection.
	cl := startCluster(t, 4, func(i int, o *natsserver.Options) {
		if i > 0 {
			o.Tags = append(o.Tags, "store")
		}
	})
	js := clusterStream(t, ctx, cl, jetstream.StreamConfig{Name: "FAIL", Subjects: []string{"fail.>"}, Replicas: 3,
		Placement: &jetstream.Placement{Tags: []string{"store"}}})
	br := startProcess(t, "BRIDGE_NATS_URL="+cl.urls(0), "BRIDGE_NODE_ID=fo-feed")

	pubAt := make([]atomic.Int64, nMsgs+1)
	clients := startFoClients(t, ctx, cancel, nClients, []string{br.addr}, nMsgs, pubAt)

	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() { pubDone <- foPublish(ctx, js, nMsgs, 10*time.Millisecond, &published, pubAt) }()
	waitFor(t, ctx, "a quarter of the messages", func() bool { return published.Load() >= nMsgs/4 })

	// The feed is the one consumer that outlives the catch-ups.
	host := -1
	retry(t, ctx, "finding the feed's consumer", func(ctx context.Context) error {
		st, err := js.Stream(ctx, "FAIL")
		if err != nil {
			return err
		}
		var hosts []string
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			if ci.Cluster != nil {
				hosts = append(hosts, ci.Cluster.Leader)
			}
		}
		if err := l.Err(); err != nil {
			return err
		}
		if len(hosts) != 1 {
			return fmt.Errorf("%d consumers (%v), want the feed's alone", len(hosts), hosts)
		}
		host = cl.index(hosts[0])
		if host <= 0 {
			return fmt.Errorf("consumer on %q", hosts[0])
		}
		return nil
	})
	cl.stop(host)
	t.Logf("stopped %s, the feed consumer's host, at message %d", cl.name(host), published.Load())

	select {
	case err := <-pubDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("publisher did not finish: %d of %d", published.Load(), nMsgs)
	}
	waitFor(t, ctx, "every client to finish", func() bool {
		for _, c := range clients {
			if !c.finished() {
				return false
			}
		}
		return true
	})
	var worst time.Duration
	for i, c := range clients {
		c.mu.Lock()
		if err := c.check(); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		worst = max(worst, c.maxLag)
		c.mu.Unlock()
	}
	t.Logf("worst delivery lag: %v", worst)
	if worst > maxStall {
		t.Errorf("delivery stalled %v after the consumer's node went away, want under %v", worst, maxStall)
	}
}
