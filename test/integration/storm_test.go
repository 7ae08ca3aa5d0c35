package integration

import (
	"bytes"
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
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestResumeStorm kills, with SIGKILL, the bridge holding a third of the
// clients following an R3 stream on a three-node NATS cluster, while the
// stream is written at 20 msg/s. Its clients reconnect to a random
// surviving bridge at once and resume with "after". Every client must end
// with every seq exactly once, in order; only the killed node's clients
// may drop; reconnecting (drop → ok on another node) must take at most
// 1 s at p99; and the survivors must cost JetStream at most 200 API
// requests from the kill to the end, however many clients moved: they
// resume from their feeds' windows. The stream allows 16 consumers.
//
// WSBRIDGE_STORM_CLIENTS sets the client count (default 3,000; the
// figures in docs/BENCHMARKS.md are for 6,000 too).
func TestResumeStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a resume storm with real processes takes about a minute")
	}
	nClients := 3000
	if s := os.Getenv("WSBRIDGE_STORM_CLIENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 3 {
			t.Fatalf("WSBRIDGE_STORM_CLIENTS=%q: want a number of at least 3", s)
		}
		nClients = n
	}
	const (
		nMsgs      = 500
		rate       = 50 * time.Millisecond // 20 msg/s
		killAt     = 150
		overall    = 150 * time.Second // bound on the whole run
		maxAPI     = 200
		maxP99     = time.Second
		finishWait = 30 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), overall)
	defer cancel()

	cl := startCluster(t, 3, nil)
	// Few consumers allowed: a bridge that created one per resuming client
	// would hit "maximum consumers limit reached". Three feeds, the killed
	// node's (until its InactiveThreshold) and shared catch-ups fit.
	js := clusterStream(t, ctx, cl, jetstream.StreamConfig{Name: "STORM", Subjects: []string{"fail.>"}, Replicas: 3, MaxConsumers: 16})

	bridges := make([]*process, 3)
	addrs := make([]string, len(bridges))
	for i := range bridges {
		bridges[i] = startProcess(t, "BRIDGE_NATS_URL="+cl.urls(), "BRIDGE_NODE_ID=st-"+strconv.Itoa(i))
		addrs[i] = bridges[i].addr
	}

	// JetStream API requests, counted by NATS itself: every request any
	// connection sends under $JS.API (the test's publisher sends none).
	api := watchJSAPI(t, cl)

	pubAt := make([]atomic.Int64, nMsgs+1)
	clients := startStormClients(t, ctx, cancel, nClients, addrs, nMsgs, pubAt)
	t.Logf("%d clients subscribed", nClients)

	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() { pubDone <- foPublish(ctx, js, nMsgs, rate, &published, pubAt) }()
	waitFor(t, ctx, "the messages before the kill", func() bool { return published.Load() >= killAt })

	var onKilled int
	for _, c := range clients {
		c.mu.Lock()
		c.atKill, c.killedAt = c.node, time.Now()
		if c.node == "st-0" {
			onKilled++
		}
		c.mu.Unlock()
	}
	apiBefore := api.snapshot()
	metricsBefore := [2]float64{scrapeCounter(t, bridges[1].addr, "wsbridge_jetstream_api_requests_total"), scrapeCounter(t, bridges[2].addr, "wsbridge_jetstream_api_requests_total")}
	if err := bridges[0].cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	cpu := sampleCPU(ctx, []int{0, bridges[1].cmd.Process.Pid, bridges[2].cmd.Process.Pid}, 250*time.Millisecond, 12)
	t.Logf("killed bridge st-0 (kill -9), which held %d clients, at message %d", onKilled, published.Load())

	select {
	case err := <-pubDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("publisher did not finish: %d of %d", published.Load(), nMsgs)
	}
	fctx, fcancel := context.WithTimeout(ctx, finishWait)
	defer fcancel()
	for fctx.Err() == nil && slices.ContainsFunc(clients, func(c *stClient) bool { return !c.finished() }) {
		foPause(fctx, 20*time.Millisecond)
	}
	apiAfter := api.snapshot()
	var bridgeAPI float64
	for i, b := range bridges[1:] {
		bridgeAPI += scrapeCounter(t, b.addr, "wsbridge_jetstream_api_requests_total") - metricsBefore[i]
	}

	var reconnects, healthyGaps, healthyLags []time.Duration
	var failed, dropped, droppedHealthy, drops, dups int
	var closes []string
	for i, c := range clients {
		c.mu.Lock()
		if err := c.check(); err != nil {
			failed++
			if failed <= 10 {
				t.Errorf("client %d (on %s at the kill, last on %s): %v", i, c.atKill, c.node, err)
			}
		}
		if c.drops > 0 {
			dropped++
			drops += c.drops
			if c.atKill != "st-0" {
				droppedHealthy++
				if droppedHealthy <= 10 {
					t.Errorf("client %d on healthy node %s dropped %d times: %v", i, c.atKill, c.drops, c.why)
				}
			}
			closes = append(closes, c.why...)
		}
		reconnects = append(reconnects, c.reconnects...)
		if c.atKill != "st-0" {
			healthyGaps = append(healthyGaps, c.maxGap)
			healthyLags = append(healthyLags, c.maxLag)
		}
		dups += c.dups
		c.mu.Unlock()
	}
	if failed > 0 {
		t.Errorf("%d of %d clients did not get 1..%d exactly once in order", failed, nClients, nMsgs)
	}
	if dups > 0 {
		t.Errorf("the bridges sent %d frames with seq <= the last seen", dups)
	}
	if droppedHealthy > 0 {
		t.Errorf("%d clients of the surviving nodes dropped; reasons: %v", droppedHealthy, topReasons(closes, 5))
		for i, b := range bridges[1:] {
			t.Logf("bridge st-%d log tail:\n%s", i+1, tailLines(b.logs.String(), 20))
		}
	}
	t.Logf("%d clients, %d messages each, %d on the killed node; %d clients dropped (%d drops)", nClients, nMsgs, onKilled, dropped, drops)
	if len(reconnects) > 0 {
		p99 := percentile(reconnects, 99)
		t.Logf("reconnect (drop → ok on another node) over %d: p50 %v, p99 %v, max %v", len(reconnects),
			percentile(reconnects, 50), p99, slices.Max(reconnects))
		if p99 > maxP99 {
			t.Errorf("reconnect p99 %v, want at most %v", p99, maxP99)
		}
	}
	t.Logf("clients of the surviving nodes, longest wait between two messages after the kill (publisher: one per %v): p50 %v, p99 %v, max %v",
		rate, percentile(healthyGaps, 50), percentile(healthyGaps, 99), slices.Max(healthyGaps))
	t.Logf("the same clients' longest delivery lag (publish ack → client) after the kill: p50 %v, p99 %v, max %v",
		percentile(healthyLags, 50), percentile(healthyLags, 99), slices.Max(healthyLags))
	var pubGap time.Duration
	for i := killAt + 1; i <= nMsgs; i++ {
		pubGap = max(pubGap, time.Duration(pubAt[i].Load()-pubAt[i-1].Load()))
	}
	t.Logf("longest gap between two publish acks after the kill: %v", pubGap)
	t.Logf("CPU per 250 ms after the kill (test process with the NATS cluster and clients / st-1 / st-2): %s", <-cpu)
	req, pulls := apiAfter.requests-apiBefore.requests, apiAfter.pulls-apiBefore.pulls
	t.Logf("JetStream API from the kill to the end (%v): %d requests seen on $JS.API.> (by kind %v) besides %d pull requests; the surviving bridges counted %.0f",
		time.Since(killed).Round(time.Millisecond), req, apiAfter.minus(apiBefore), pulls, bridgeAPI)
	if req > maxAPI {
		t.Errorf("%d JetStream API requests from the kill to the end, want at most %d", req, maxAPI)
	}
	for i, b := range bridges[1:] {
		t.Logf("bridge st-%d: %s", i+1, scrapeSome(t, b.addr, "wsbridge_jetstream_resumes_total", "wsbridge_jetstream_catchup_consumers_total", "wsbridge_slow_consumer_disconnects_total", "wsbridge_connections_closed_total"))
	}
}

// stClient follows fail.x (foPublish's subject) from the start: on a lost connection it dials
// a random other bridge, as a load balancer would place it, and
// resubscribes after the last seq it saw.
type stClient struct {
	addrs      []string
	want       uint64
	subscribed *atomic.Int64

	mu         sync.Mutex
	node       string
	atKill     string // node at the moment of the kill
	lastSeq    uint64
	gap        string
	dups       int
	drops      int
	why        []string        // each drop's error
	lostAt     time.Time       // set while a drop has not been followed by an ok
	reconnects []time.Duration // drop → ok
	counted    bool
	lastMsg    time.Time
	killedAt   time.Time     // set at the kill
	maxGap     time.Duration // longest wait between two messages since the kill
	maxLag     time.Duration // longest publish ack → delivery since the kill
	pubAt      []atomic.Int64
}

func (c *stClient) run(ctx context.Context, first int) {
	i := first
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil && !c.finished() {
		err := c.session(ctx, c.addrs[i])
		if err == nil {
			continue // done
		}
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		if c.lostAt.IsZero() && c.counted {
			c.lostAt = time.Now()
			c.drops++
			c.why = append(c.why, err.Error())
		}
		connected := c.node != ""
		c.node = ""
		c.mu.Unlock()
		// Another node, as a load balancer would pick after a failed
		// connection; immediately after a drop, then with full jitter.
		i = (i + 1 + rand.IntN(len(c.addrs)-1)) % len(c.addrs)
		if connected {
			backoff = 10 * time.Millisecond
			continue
		}
		foPause(ctx, time.Duration(rand.Int64N(int64(backoff))))
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

var msgPrefix = []byte(`{"op":"msg"`)

// session runs one connection until it fails or the client is done (nil).
func (c *stClient) session(ctx context.Context, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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
	var bb bytes.Buffer
	for {
		_, r, err := ws.Reader(ctx)
		if err != nil {
			return err
		}
		bb.Reset()
		if _, err := bb.ReadFrom(r); err != nil {
			return err
		}
		buf := bb.Bytes()
		if bytes.HasPrefix(buf, msgPrefix) {
			i := bytes.LastIndex(buf, []byte(`"seq":`))
			if i < 0 {
				return fmt.Errorf("msg without seq: %s", buf)
			}
			seq, err := strconv.ParseUint(string(bytes.TrimSuffix(buf[i+6:], []byte("}"))), 10, 64)
			if err != nil {
				return err
			}
			if c.deliver(seq) {
				ws.Close(websocket.StatusNormalClosure, "done")
				return nil
			}
			continue
		}
		var f foFrame
		if err := json.Unmarshal(buf, &f); err != nil {
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
			if !c.lostAt.IsZero() {
				c.reconnects = append(c.reconnects, time.Since(c.lostAt))
				c.lostAt = time.Time{}
			}
			c.mu.Unlock()
		case "err":
			return fmt.Errorf("sub: %s: %s", f.Code, f.Message)
		}
	}
}

func (c *stClient) deliver(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case seq <= c.lastSeq:
		c.dups++
		return false
	case seq != c.lastSeq+1 && c.gap == "":
		c.gap = fmt.Sprintf("after seq %d came %d", c.lastSeq, seq)
	}
	c.lastSeq = seq
	now := time.Now()
	if !c.killedAt.IsZero() {
		since := c.lastMsg
		if since.Before(c.killedAt) {
			since = c.killedAt
		}
		c.maxGap = max(c.maxGap, now.Sub(since))
		if at := c.pubAt[min(seq, uint64(len(c.pubAt)-1))].Load(); at > 0 {
			c.maxLag = max(c.maxLag, now.Sub(time.Unix(0, at)))
		}
	}
	c.lastMsg = now
	return c.gap == "" && c.lastSeq >= c.want
}

func (c *stClient) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gap != "" || c.lastSeq >= c.want
}

// check runs under c.mu.
func (c *stClient) check() error {
	switch {
	case c.gap != "":
		return fmt.Errorf("missed messages: %s", c.gap)
	case c.lastSeq != c.want:
		return fmt.Errorf("stopped at seq %d of %d (drops: %v)", c.lastSeq, c.want, c.why)
	}
	return nil
}

// startStormClients runs n clients wanting seqs 1..want, client i on
// addrs[i%len(addrs)], and waits until every one has subscribed. Dials
// are spread over a few hundred milliseconds per thousand clients.
func startStormClients(t *testing.T, ctx context.Context, cancel context.CancelFunc, n int, addrs []string, want int, pubAt []atomic.Int64) []*stClient {
	t.Helper()
	var subscribed atomic.Int64
	clients := make([]*stClient, n)
	var wg sync.WaitGroup
	for i := range clients {
		c := &stClient{addrs: addrs, want: uint64(want), subscribed: &subscribed, pubAt: pubAt}
		clients[i] = c
		wg.Go(func() { c.run(ctx, i%len(addrs)) })
		if i%200 == 199 {
			waitFor(t, ctx, "a batch of clients to subscribe", func() bool { return subscribed.Load() >= int64(i+1)-200 })
		}
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, ctx, "every client to subscribe", func() bool { return subscribed.Load() >= int64(n) })
	return clients
}

// jsAPIWatch counts the requests NATS carries under $JS.API.
type jsAPIWatch struct {
	mu     sync.Mutex
	byKind map[string]int
	pulls  int
}

type jsAPICounts struct {
	requests, pulls int
	byKind          map[string]int
}

func (a jsAPICounts) minus(b jsAPICounts) map[string]int {
	d := make(map[string]int)
	for k, n := range a.byKind {
		if n-b.byKind[k] > 0 {
			d[k] = n - b.byKind[k]
		}
	}
	return d
}

// watchJSAPI subscribes to $JS.API.> on the cluster.
func watchJSAPI(t *testing.T, cl *foCluster) *jsAPIWatch {
	t.Helper()
	nc, err := nats.Connect(cl.urls(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &jsAPIWatch{byKind: make(map[string]int)}
	_, err = nc.Subscribe("$JS.API.>", func(m *nats.Msg) {
		w.mu.Lock()
		defer w.mu.Unlock()
		kind := jsAPIKind(m.Subject)
		if kind == "CONSUMER.MSG.NEXT" {
			w.pulls++
			return
		}
		w.byKind[kind]++
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// jsAPIKind is the request's kind: $JS.API.CONSUMER.CREATE.S.C.F →
// CONSUMER.CREATE.
func jsAPIKind(subject string) string {
	t := strings.Split(strings.TrimPrefix(subject, "$JS.API."), ".")
	switch {
	case len(t) >= 2 && (t[0] == "CONSUMER" || t[0] == "STREAM"):
		if t[1] == "MSG" && len(t) >= 3 {
			return t[0] + ".MSG." + t[2]
		}
		return t[0] + "." + t[1]
	default:
		return t[0]
	}
}

func (w *jsAPIWatch) snapshot() jsAPICounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := jsAPICounts{pulls: w.pulls, byKind: make(map[string]int, len(w.byKind))}
	for k, n := range w.byKind {
		c.byKind[k] = n
		c.requests += n
	}
	return c
}

// scrapeCounter reads one unlabelled sample from a bridge's /metrics.
func scrapeCounter(t *testing.T, addr, name string) float64 {
	t.Helper()
	v, ok := scrape(t, "http://"+addr+"/metrics")[name]
	if !ok {
		t.Fatalf("%s: no %s", addr, name)
	}
	return v
}

// scrapeSome returns the samples of a bridge's /metrics whose names
// start with one of prefixes.
func scrapeSome(t *testing.T, addr string, prefixes ...string) string {
	t.Helper()
	var out []string
	for k, v := range scrape(t, "http://"+addr+"/metrics") {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				out = append(out, fmt.Sprintf("%s %g", k, v))
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// topReasons counts distinct reasons, most frequent first.
func topReasons(rs []string, n int) []string {
	count := make(map[string]int)
	for _, r := range rs {
		count[r]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return count[b] - count[a] })
	out := make([]string, 0, n)
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%d× %s", count[k], k))
	}
	return out
}

// sampleCPU reads the CPU time of pids (0: this process) n times, every
// period, and sends the increments, one group per period.
func sampleCPU(ctx context.Context, pids []int, period time.Duration, n int) <-chan string {
	out := make(chan string, 1)
	go func() {
		prev := make([]time.Duration, len(pids))
		for i, pid := range pids {
			prev[i] = cpuTime(pid)
		}
		var b strings.Builder
		tick := time.NewTicker(period)
		defer tick.Stop()
		for range n {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
			for i, pid := range pids {
				c := cpuTime(pid)
				if i > 0 {
					b.WriteString("/")
				}
				fmt.Fprintf(&b, "%d", (c - prev[i]).Milliseconds())
				prev[i] = c
			}
			b.WriteString("ms ")
		}
		out <- b.String()
	}()
	return out
}

// cpuTime is utime+stime of pid (0: this process) from /proc, 0 where
// there is no /proc.
func cpuTime(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	if !ok {
		return 0
	}
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}
