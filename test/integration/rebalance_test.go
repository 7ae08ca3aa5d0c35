package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRebalanceScaleOut is the scale-out of issue 16 with real processes:
// a three-node NATS cluster with an R3 stream and three wsbridge binaries.
// Bridges rb-0 and rb-1 start with N clients each, and rb-2 starts empty
// 10 s later. Clients follow the stream while a publisher writes at a
// steady rate; on a drop each reconnects to a random live bridge, as a
// load balancer would send it, and resumes with "after". Within 60 s of
// rb-2 being ready every bridge must hold 2N/3 ± 15 %, and still at the
// end; every client ends with every seq exactly once, in order, moved at
// most 3 times, and every close it saw was 1012 "rebalance". While it
// runs, headless Chromium watches rb-0's /cluster page and must see the
// three nodes converge too.
//
// N is 600; WSBRIDGE_REBALANCE_N=1500 runs the by-hand size.
func TestRebalanceScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("rebalancing with real processes takes about a minute")
	}
	n := 600
	if v := os.Getenv("WSBRIDGE_REBALANCE_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 150 {
			t.Fatalf("WSBRIDGE_REBALANCE_N=%q: want a number ≥ 150", v)
		}
	}
	const (
		period         = 100 * time.Millisecond // 10 msg/s
		scaleAfter     = 10 * time.Second
		convergeWithin = 60 * time.Second
		hold           = 10 * time.Second
		maxMoves       = 3
	)
	target := float64(2*n) / 3
	lo, hi := int64(target*0.85), int64(target*1.15+0.5)
	inBand := func(c int64) bool { return c >= lo && c <= hi }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cl := startCluster(t, 3, nil)
	js := clusterStream(t, ctx, cl, jetstream.StreamConfig{Name: "REB", Subjects: []string{"reb.>"}, Replicas: 3})
	ids := []string{"rb-0", "rb-1", "rb-2"}
	admin := make([]string, len(ids))
	startBridge := func(i int) *process {
		admin[i] = "127.0.0.1:" + strconv.Itoa(freePort(t))
		return startProcess(t, "BRIDGE_NATS_URL="+cl.urls(), "BRIDGE_NODE_ID="+ids[i], "BRIDGE_ADMIN_LISTEN="+admin[i])
	}
	bridges := []*process{startBridge(0), startBridge(1)}
	lb := &rbBalancer{addrs: []string{bridges[0].addr, bridges[1].addr}}
	counts := map[string]*atomic.Int64{}
	for _, id := range ids {
		counts[id] = new(atomic.Int64)
	}
	count := func(id string) int64 { return counts[id].Load() }

	var want atomic.Uint64 // set once the publisher is done
	var subscribed atomic.Int64
	clients := make([]*rbClient, 2*n)
	cctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range clients {
		c := &rbClient{lb: lb, home: lb.addrs[i/n], want: &want, subscribed: &subscribed, counts: counts}
		clients[i] = c
		wg.Go(func() { c.run(cctx) })
	}
	t.Cleanup(func() { stopClients(); wg.Wait() })
	waitFor(t, ctx, "every client to subscribe", func() bool { return subscribed.Load() >= int64(2*n) })
	t.Logf("%d clients subscribed: rb-0 %d, rb-1 %d", 2*n, count("rb-0"), count("rb-1"))

	var published atomic.Int64
	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	pubDone := make(chan error, 1)
	go func() { pubDone <- rbPublish(pubCtx, js, period, &published) }()

	foPause(ctx, scaleAfter) // the scenario's pacing: old nodes run alone
	bridges = append(bridges, startBridge(2))
	ready := time.Now()
	lb.add(bridges[2].addr)
	t.Logf("rb-2 ready at message %d", published.Load())

	// The cluster page, as an operator would watch it.
	var pg *page
	if rbHaveBrowser(t) {
		pg = newPage(t)
		pg.do(wait, chromedp.Navigate("http://"+admin[0]+"/cluster"))
		pg.poll("the page to list three nodes", `document.querySelectorAll('#nodes tr').length === 3`, 10*time.Second)
	}

	sample := func() string {
		return fmt.Sprintf("rb-0 %d, rb-1 %d, rb-2 %d", count("rb-0"), count("rb-1"), count("rb-2"))
	}
	balanced := func() bool { return inBand(count("rb-0")) && inBand(count("rb-1")) && inBand(count("rb-2")) }
	var converged time.Duration
	nextLog := ready.Add(5 * time.Second)
	for converged == 0 {
		now := time.Now()
		if balanced() {
			converged = now.Sub(ready)
			break
		}
		if now.Sub(ready) > convergeWithin {
			t.Fatalf("not within %d..%d after %v: %s", lo, hi, convergeWithin, sample())
		}
		if now.After(nextLog) {
			t.Logf("t+%2.0fs: %s", now.Sub(ready).Seconds(), sample())
			nextLog = now.Add(5 * time.Second)
		}
		foPause(ctx, 100*time.Millisecond)
	}
	t.Logf("converged %v after rb-2 was ready: %s (band %d..%d)", converged.Round(100*time.Millisecond), sample(), lo, hi)
	if pg != nil {
		js := fmt.Sprintf(`(() => { const rows = [...document.querySelectorAll('#nodes tr')];
			return rows.length === 3 && rows.every(r => { const c = +r.querySelector('td.conns').textContent; return c >= %d && c <= %d; }); })()`, lo, hi)
		pg.diag = `[...document.querySelectorAll('#nodes tr')].map(r => r.dataset.node + ':' + r.querySelector('td.conns').textContent)`
		pg.poll("the cluster page to show the three nodes converged", js, 10*time.Second)
		shot, err := chromedp.Run(pg.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		path := filepath.Join(t.ArtifactDir(), "cluster.png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("cluster page screenshot: %s", path)
	}

	// Hold: the balance must stick, with no more moves than needed.
	holdEnd := time.Now().Add(hold)
	var excursions int
	for time.Now().Before(holdEnd) && ctx.Err() == nil {
		if !balanced() {
			excursions++
		}
		foPause(ctx, 100*time.Millisecond)
	}
	stopPub()
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	total := uint64(published.Load())
	want.Store(total)
	waitFor(t, ctx, "every client to have every message", func() bool {
		for _, c := range clients {
			if !c.finished() {
				return false
			}
		}
		return true
	})
	end := sample()
	if !balanced() {
		t.Errorf("not balanced at the end: %s (band %d..%d)", end, lo, hi)
	}
	if excursions > 0 {
		t.Logf("%d samples out of the band during the %v hold", excursions, hold)
	}

	var moves []int
	var latencies []time.Duration
	failed, badCloses, tooMany, dups := 0, 0, 0, 0
	for i, c := range clients {
		c.mu.Lock()
		if err := c.check(total); err != nil {
			if failed++; failed <= 10 {
				t.Errorf("client %d: %v", i, err)
			}
		}
		for _, cl := range c.closes {
			if cl != "1012 rebalance" {
				if badCloses++; badCloses <= 10 {
					t.Errorf("client %d saw close %q, want only 1012 rebalance", i, cl)
				}
			}
		}
		m := max(0, c.sessions-1)
		if m > maxMoves {
			if tooMany++; tooMany <= 10 {
				t.Errorf("client %d moved %d times, want at most %d", i, m, maxMoves)
			}
		}
		moves = append(moves, m)
		latencies = append(latencies, c.latencies...)
		dups += c.dups
		c.mu.Unlock()
	}
	if dups > 0 {
		t.Errorf("the bridges sent %d frames with seq <= the last seen", dups)
	}
	hist := map[int]int{}
	sum := 0
	for _, m := range moves {
		hist[m]++
		sum += m
	}
	t.Logf("N=%d per old node, %d clients, %d messages each; at the end: %s", n, 2*n, total, end)
	t.Logf("moves per client: mean %.2f, max %d, histogram %v (%d moves in all)", float64(sum)/float64(len(moves)), slices.Max(moves), hist, sum)
	if len(latencies) > 0 {
		t.Logf("reconnect latency (1012 received → resumed sub ok, jitter ≤ 1 s included): p50 %v, p99 %v, max %v",
			percentile(latencies, 50).Round(time.Millisecond), percentile(latencies, 99).Round(time.Millisecond), slices.Max(latencies).Round(time.Millisecond))
	}
	if code, body := get(t, "http://"+admin[0]+"/cluster.json"); code == 200 {
		var v struct {
			Nodes []struct {
				ID          string `json:"id"`
				Connections int64  `json:"connections"`
				Shed        uint64 `json:"shed_total"`
			}
		}
		if json.Unmarshal([]byte(body), &v) == nil {
			var parts []string
			for _, nd := range v.Nodes {
				parts = append(parts, fmt.Sprintf("%s %d conns, shed %d", nd.ID, nd.Connections, nd.Shed))
			}
			t.Logf("rb-0's /cluster.json: %s", strings.Join(parts, "; "))
		}
	}
	for i := range bridges {
		if code, body := get(t, "http://"+admin[i]+"/metrics"); code == 200 {
			for _, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(line, "wsbridge_jetstream_catchups_total ") {
					// With BRIDGE_LOG_LEVEL=debug in the environment the
					// bridges also log each catch-up that waited for its
					// consumer's replica.
					t.Logf("%s: %s; catch-ups behind the feed: %d", ids[i], line,
						strings.Count(bridges[i].logs.String(), "catch-up consumer behind the feed"))
				}
			}
		}
	}
	if failed > 0 || badCloses > 0 {
		for i, b := range bridges {
			t.Logf("bridge rb-%d log tail:\n%s", i, tailLines(b.logs.String(), 15))
		}
	}
}

// rbHaveBrowser reports whether Chromium is installed; without it the
// page part is left out, unless WSBRIDGE_REQUIRE_BROWSER=1 fails the test.
func rbHaveBrowser(t *testing.T) bool {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
	}
	if os.Getenv("WSBRIDGE_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium not found and WSBRIDGE_REQUIRE_BROWSER=1")
	}
	t.Log("chromium not found: the cluster page is not checked")
	return false
}

// rbBalancer picks a random live bridge, as a load balancer would.
type rbBalancer struct {
	mu    sync.Mutex
	addrs []string
}

func (b *rbBalancer) add(addr string) {
	b.mu.Lock()
	b.addrs = append(b.addrs, addr)
	b.mu.Unlock()
}

func (b *rbBalancer) pick() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[rand.IntN(len(b.addrs))]
}

// rbClient follows reb.x like a bundled client: on 1012 "rebalance" it
// reconnects within a jitter of up to 1 s through the balancer and
// resumes after the last seq it saw.
type rbClient struct {
	lb         *rbBalancer
	home       string // where it first connects
	want       *atomic.Uint64
	subscribed *atomic.Int64
	counts     map[string]*atomic.Int64 // connected clients by node, read-only map

	mu        sync.Mutex
	lastSeq   uint64
	gap       string
	dups      int
	sessions  int      // connections that got a hello
	closes    []string // every close or drop the client did not start
	closedAt  time.Time
	latencies []time.Duration // 1012 → the resumed sub's ok
	counted   bool
	node      string // of the current session
	inSession int    // messages in the current session
}

var errRebalanced = errors.New("closed with 1012 rebalance")

func (c *rbClient) run(ctx context.Context) {
	addr := c.home
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		err := c.session(ctx, addr)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRebalanced):
			backoff = 20 * time.Millisecond
			foPause(ctx, time.Duration(rand.Int64N(int64(time.Second))))
			addr = c.lb.pick()
		default:
			// A refused or failed dial (503 beyond the handshake rate):
			// full jitter; before the first hello, the home node again.
			foPause(ctx, time.Duration(rand.Int64N(int64(backoff))))
			backoff = min(2*backoff, time.Second)
			c.mu.Lock()
			if c.sessions > 0 {
				addr = c.lb.pick()
			}
			c.mu.Unlock()
		}
	}
}

// session runs one connection until it ends or ctx does; it returns
// errRebalanced after a 1012 "rebalance".
func (c *rbClient) session(ctx context.Context, addr string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ws, _, err := websocket.Dial(dctx, "ws://"+addr+"/ws", nil)
	cancel()
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	node := ""
	defer func() {
		if node != "" {
			c.counts[node].Add(-1)
		}
	}()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce websocket.CloseError
			what := "drop: " + err.Error()
			if errors.As(err, &ce) {
				what = strconv.Itoa(int(ce.Code)) + " " + ce.Reason
			}
			c.mu.Lock()
			c.closes = append(c.closes, what)
			c.closedAt = time.Now()
			c.mu.Unlock()
			if what == "1012 rebalance" {
				return errRebalanced
			}
			return err
		}
		var f foFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		switch f.Op {
		case "hello":
			node = f.Node
			c.counts[node].Add(1)
			c.mu.Lock()
			c.sessions++
			c.node, c.inSession = node, 0
			from := any("all")
			if c.lastSeq > 0 {
				from = map[string]uint64{"after": c.lastSeq}
			}
			c.mu.Unlock()
			cmd, _ := json.Marshal(map[string]any{"op": "sub", "id": "s", "subject": "reb.x", "from": from})
			if err := ws.Write(ctx, websocket.MessageText, cmd); err != nil {
				return err
			}
		case "ok":
			c.mu.Lock()
			if !c.closedAt.IsZero() {
				c.latencies = append(c.latencies, time.Since(c.closedAt))
				c.closedAt = time.Time{}
			}
			if !c.counted {
				c.counted = true
				c.subscribed.Add(1)
			}
			c.mu.Unlock()
		case "err":
			c.mu.Lock()
			c.closes = append(c.closes, "sub error: "+f.Code+": "+f.Message)
			c.mu.Unlock()
			return fmt.Errorf("%s: %s", f.Code, f.Message)
		case "msg":
			c.deliver(f.Seq) // done or not, it stays to be counted
		}
	}
}

// deliver applies one message.
func (c *rbClient) deliver(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case seq <= c.lastSeq:
		c.dups++
		return
	case seq != c.lastSeq+1 && c.gap == "":
		c.gap = fmt.Sprintf("after seq %d came %d (message %d of session %d, on %s)", c.lastSeq, seq, c.inSession+1, c.sessions, c.node)
	}
	c.inSession++
	c.lastSeq = seq
}

func (c *rbClient) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.want.Load()
	return c.gap != "" || (w > 0 && c.lastSeq >= w)
}

// check runs under c.mu.
func (c *rbClient) check(want uint64) error {
	switch {
	case c.gap != "":
		return fmt.Errorf("missed messages: %s", c.gap)
	case c.lastSeq != want:
		return fmt.Errorf("stopped at seq %d of %d", c.lastSeq, want)
	}
	return nil
}

// rbPublish writes to reb.x at one message per period until ctx ends,
// each with a Nats-Msg-Id so a retried publish is stored once.
func rbPublish(ctx context.Context, js jetstream.JetStream, period time.Duration, published *atomic.Int64) error {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
		data := []byte(`{"n":` + strconv.Itoa(i) + `}`)
		for {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			ack, err := js.Publish(pctx, "reb.x", data, jetstream.WithMsgID("r-"+strconv.Itoa(i)))
			cancel()
			if err == nil {
				if ack.Sequence != uint64(i) {
					return fmt.Errorf("message %d stored as seq %d", i, ack.Sequence)
				}
				break
			}
			if ctx.Err() != nil {
				return nil // message i may be stored: the count below says
			}
			foPause(ctx, 50*time.Millisecond)
		}
		published.Store(int64(i))
	}
}
