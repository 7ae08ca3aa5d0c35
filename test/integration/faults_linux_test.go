package integration

// The fault suite of issue 12: faults that send nothing (a blackholed
// link, a frozen NATS node, a blackholed client) made for real with
// namespaces and nftables (netns_linux_test.go), against the real
// binary, plus descriptor exhaustion under a lowered limit. Each case
// measures what an operator would: how long until the node noticed, what
// clients were told, whether /healthz, /readyz and /metrics kept
// answering, and whether JetStream subscribers got every message once.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/testutil"
)

const (
	faultStream   = "FAULTS"
	faultJSSubj   = "fjs.x"
	faultCoreSubj = "fcore.x"
	faultRate     = 20 * time.Millisecond  // 50 msg/s to each of the two subjects
	faultPubEvery = 100 * time.Millisecond // each client's pub with id
	faultMaxSeq   = 20000                  // bound on JetStream messages per case

	// What issue 12 asks of the node.
	detectBound   = 15*time.Second + 5*time.Second // NATS pings (5s, two outstanding) plus slack
	endpointBound = time.Second                    // /healthz, /readyz, /metrics
	pubBound      = time.Second                    // a pub with id is answered
	feedBackBound = 5 * time.Second                // JetStream delivery after NATS is back
)

// faultTopology is a 3-node NATS cluster on the host (n0 a nats-server
// process, n1 and n2 in-process) and one wsbridge in the bridge
// namespace whose every NATS link crosses the router. The bridge starts
// while n0 alone is up, so its first connection is to n0 although
// BRIDGE_NATS_URL lists all three.
type faultTopology struct {
	net    *faultNet
	ports  [3]int // client ports of n0, n1, n2 on net.hostIP
	n0     *natsProc
	peers  [2]*natsserver.Server // n1, n2
	bridge *process
	nodeID string
	svc    *nats.Conn // the services' connection, to n1 and n2 only
	js     jetstream.JetStream
}

func newFaultTopology(t *testing.T, ctx context.Context, name string, env ...string) *faultTopology {
	t.Helper()
	n := newFaultNet(t)
	tp := &faultTopology{net: n, nodeID: "fault-" + name}
	var cports [3]int
	var urls, routes []string
	for i := range 3 {
		tp.ports[i], cports[i] = freePortOn(t, n.hostIP), freePortOn(t, n.hostIP)
		urls = append(urls, "nats://"+net.JoinHostPort(n.hostIP, strconv.Itoa(tp.ports[i])))
		routes = append(routes, "nats://"+net.JoinHostPort(n.hostIP, strconv.Itoa(cports[i])))
	}
	conf := fmt.Sprintf("server_name: n0\nhost: %q\nport: %d\njetstream { store_dir: %q }\n"+
		"cluster { name: wsbf, host: %q, port: %d, routes: [%q, %q, %q] }\n",
		n.hostIP, tp.ports[0], t.TempDir(), n.hostIP, cports[0], routes[0], routes[1], routes[2])
	tp.n0 = startNATSProc(t, conf, net.JoinHostPort(n.hostIP, strconv.Itoa(tp.ports[0])))

	tp.bridge = startWrapped(t, []string{"ip", "netns", "exec", n.inner}, append([]string{
		"BRIDGE_LISTEN=" + n.innerIP + ":0",
		"BRIDGE_NATS_URL=" + strings.Join(urls, ","),
		"BRIDGE_NODE_ID=" + tp.nodeID,
	}, env...)...)
	if !tp.bridge.logs.waitFor(`"msg":"NATS connected"`, wait) {
		t.Fatalf("the bridge did not connect to n0:\n%s", tp.bridge.logs)
	}

	for i := 1; i < 3; i++ {
		o := natstest.DefaultTestOptions
		o.Host, o.Port = n.hostIP, tp.ports[i]
		o.ServerName = "n" + strconv.Itoa(i)
		o.JetStream, o.StoreDir = true, t.TempDir()
		o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = "wsbf", n.hostIP, cports[i]
		o.Routes = natsserver.RoutesFromStr(strings.Join(routes, ","))
		s := runClusterNode(t, &o)
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		tp.peers[i-1] = s
	}
	if on := tp.bridgeOn(); on != "" {
		t.Fatalf("the bridge is on %s, want n0", on)
	}
	svc, err := nats.Connect(strings.Join(urls[1:], ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if tp.js, err = jetstream.New(svc); err != nil {
		t.Fatal(err)
	}
	tp.svc = svc
	if !pollUntil(ctx, 30*time.Second, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err = tp.js.CreateStream(cctx, jetstream.StreamConfig{Name: faultStream, Subjects: []string{"fjs.>"}, Replicas: 3})
		return err == nil
	}) {
		t.Fatalf("creating the R3 stream: %v\nn0:\n%s", err, tailLines(tp.n0.logs.String(), 20))
	}
	return tp
}

// bridgeOn names the in-process node (n1, n2) the bridge is connected
// to, or "" when it is on neither (on n0, or disconnected).
func (tp *faultTopology) bridgeOn() string {
	for i, s := range tp.peers {
		cz, err := s.Connz(&natsserver.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, c := range cz.Conns {
			if c.Name == "wsbridge "+tp.nodeID {
				return "n" + strconv.Itoa(i+1)
			}
		}
	}
	return ""
}

// lastSeq is the stream's last sequence.
func (tp *faultTopology) lastSeq(t *testing.T, ctx context.Context) uint64 {
	t.Helper()
	var last uint64
	var err error
	if !pollUntil(ctx, 20*time.Second, func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var st jetstream.Stream
		if st, err = tp.js.Stream(cctx, faultStream); err != nil {
			return false
		}
		var info *jetstream.StreamInfo
		if info, err = st.Info(cctx); err != nil {
			return false
		}
		last = info.State.LastSeq
		return true
	}) {
		t.Fatalf("stream info: %v", err)
	}
	return last
}

// pollUntil polls cond every 20ms for at most d; it reports whether cond
// held.
func pollUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		foPause(ctx, 20*time.Millisecond)
	}
	return true
}

// faultPublisher is the services' traffic: 50 msg/s of core messages
// {"n":i} on fcore.x and 50 msg/s of JetStream messages on fjs.x, each
// with a Nats-Msg-Id so retries while the stream elects a leader are
// deduplicated and message i is stored as seq i.
type faultPublisher struct {
	pubAt  []atomic.Int64 // unix ns each seq was acked
	jsLast atomic.Int64
	coreN  atomic.Int64
	mu     sync.Mutex
	err    error
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func startFaultPublisher(t *testing.T, ctx context.Context, tp *faultTopology) *faultPublisher {
	p := &faultPublisher{pubAt: make([]atomic.Int64, faultMaxSeq+1), stop: make(chan struct{})}
	t.Cleanup(p.halt)
	p.wg.Go(func() {
		tick := time.NewTicker(faultRate)
		defer tick.Stop()
		for i := 1; i < faultMaxSeq; i++ {
			select {
			case <-tick.C:
			case <-p.stop:
				return
			}
			data := []byte(`{"n":` + strconv.Itoa(i) + `}`)
			for {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				ack, err := tp.js.Publish(pctx, faultJSSubj, data, jetstream.WithMsgID("f-"+strconv.Itoa(i)))
				cancel()
				if err == nil {
					if ack.Sequence != uint64(i) {
						p.fail(fmt.Errorf("message %d stored as seq %d", i, ack.Sequence))
						return
					}
					break
				}
				select {
				case <-p.stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond): // pacing the retry while a leader is elected
				}
			}
			p.pubAt[i].Store(time.Now().UnixNano())
			p.jsLast.Store(int64(i))
		}
	})
	p.wg.Go(func() {
		tick := time.NewTicker(faultRate)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-tick.C:
			case <-p.stop:
				return
			}
			if err := tp.svc.Publish(faultCoreSubj, []byte(`{"n":`+strconv.Itoa(i)+`}`)); err != nil {
				p.fail(fmt.Errorf("core publish %d: %w", i, err))
				return
			}
			p.coreN.Store(int64(i))
		}
	})
	return p
}

func (p *faultPublisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

// halt stops both publishers and waits for them; idempotent.
func (p *faultPublisher) halt() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// faultFrame is any bridge → client envelope the suite reads.
type faultFrame struct {
	Op   string          `json:"op"`
	Ref  string          `json:"ref"`
	Sid  string          `json:"sid"`
	Code string          `json:"code"`
	Msg  string          `json:"message"`
	Nats string          `json:"nats"`
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data"`
}

type statusEvent struct {
	at   time.Time
	nats string
}

type pubAnswer struct {
	id   string
	sent time.Time
	took time.Duration
	code string // "ok" or the err code
}

// faultClient is a browser-style client on /ws: a core subscription to
// fcore.x and a JetStream one to fjs.x that resumes with {"after": last
// seq} as the bundled client does, plus a pub with id every 100ms. It
// records everything the checks need; it reconnects when a session ends,
// and records that the session ended.
type faultClient struct {
	id      int
	addr    string
	pubs    bool // send pubs with id
	oneShot bool // do not reconnect
	pubAt   []atomic.Int64

	mu        sync.Mutex
	localPort int
	ended     []string // sessions that ended while the test still ran them
	hellos    []string // each hello's nats field
	status    []statusEvent
	subErrs   []string
	lastSeq   uint64
	gap       string
	dups      int
	jsAt      []int64 // unix ns each seq arrived, by seq
	jsCount   int
	coreFirst int // first core counter seen
	coreLast  int
	coreAt    []int64 // unix ns of each core delivery, in order
	pubN      int
	pending   map[string]time.Time
	answers   []pubAnswer
}

// startFaultClients runs n clients until the test ends; configure, if not
// nil, adjusts each before it starts.
func startFaultClients(t *testing.T, ctx context.Context, addr string, n int, pubAt []atomic.Int64, configure func(*faultClient)) []*faultClient {
	t.Helper()
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	clients := make([]*faultClient, n)
	for i := range clients {
		c := &faultClient{id: i, addr: addr, pubs: true, pubAt: pubAt,
			jsAt: make([]int64, len(pubAt)), pending: map[string]time.Time{}}
		if configure != nil {
			configure(c)
		}
		clients[i] = c
		wg.Go(func() { c.run(cctx) })
	}
	return clients
}

func (c *faultClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.ended = append(c.ended, time.Now().Format("15:04:05.000")+" "+err.Error())
		c.mu.Unlock()
		if c.oneShot {
			return
		}
		foPause(ctx, 200*time.Millisecond)
	}
}

func (c *faultClient) session(ctx context.Context) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.mu.Lock()
			c.localPort = conn.LocalAddr().(*net.TCPAddr).Port
			c.mu.Unlock()
		}
		return conn, err
	}}}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ws, _, err := websocket.Dial(dctx, "ws://"+c.addr+"/ws", &websocket.DialOptions{HTTPClient: hc})
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait(); ws.CloseNow() }()

	write := func(v any) error {
		b, _ := json.Marshal(v)
		wctx, cancel := context.WithTimeout(sctx, 5*time.Second)
		defer cancel()
		return ws.Write(wctx, websocket.MessageText, b)
	}
	for {
		_, b, err := ws.Read(sctx)
		if err != nil {
			return err
		}
		var f faultFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("bridge sent invalid JSON %q: %v", b, err)
		}
		now := time.Now()
		switch f.Op {
		case "hello":
			c.mu.Lock()
			c.hellos = append(c.hellos, f.Nats)
			from := any("all")
			if c.lastSeq > 0 {
				from = map[string]uint64{"after": c.lastSeq}
			}
			c.mu.Unlock()
			if err := write(map[string]any{"op": "sub", "id": "c", "subject": faultCoreSubj}); err != nil {
				return err
			}
			if err := write(map[string]any{"op": "sub", "id": "j", "subject": faultJSSubj, "from": from}); err != nil {
				return err
			}
			if c.pubs {
				wg.Go(func() { c.pubLoop(sctx, write) })
			}
		case "status":
			c.mu.Lock()
			c.status = append(c.status, statusEvent{now, f.Nats})
			c.mu.Unlock()
		case "ok", "err":
			if strings.HasPrefix(f.Ref, "p") {
				c.answer(f.Ref, f.Op, f.Code, now)
				continue
			}
			if f.Op == "err" {
				c.mu.Lock()
				c.subErrs = append(c.subErrs, now.Format("15:04:05.000")+" "+f.Ref+" "+f.Code+": "+f.Msg)
				c.mu.Unlock()
				if f.Ref == "c" || f.Ref == "j" {
					return fmt.Errorf("sub %s: %s: %s", f.Ref, f.Code, f.Msg) // resubscribe on a new session
				}
			}
		case "msg":
			switch f.Sid {
			case "j":
				c.deliverJS(f.Seq, now)
			case "c":
				var m struct{ N int }
				_ = json.Unmarshal(f.Data, &m)
				c.deliverCore(m.N, now)
			}
		}
	}
}

func (c *faultClient) pubLoop(ctx context.Context, write func(any) error) {
	tick := time.NewTicker(faultPubEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		c.pubN++
		id := "p" + strconv.Itoa(c.pubN)
		c.pending[id] = time.Now()
		c.mu.Unlock()
		subject := "fpub.c" + strconv.Itoa(c.id)
		if err := write(map[string]any{"op": "pub", "subject": subject, "data": map[string]string{"id": id}, "id": id}); err != nil {
			return
		}
	}
}

func (c *faultClient) answer(id, op, code string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, ok := c.pending[id]
	if !ok {
		return
	}
	delete(c.pending, id)
	if op == "ok" {
		code = "ok"
	}
	c.answers = append(c.answers, pubAnswer{id: id, sent: sent, took: now.Sub(sent), code: code})
}

func (c *faultClient) deliverJS(seq uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case seq <= c.lastSeq:
		c.dups++
		return
	case seq != c.lastSeq+1 && c.gap == "":
		c.gap = fmt.Sprintf("after seq %d came %d", c.lastSeq, seq)
	}
	c.lastSeq = seq
	c.jsCount++
	if seq < uint64(len(c.jsAt)) {
		c.jsAt[seq] = now.UnixNano()
	}
}

func (c *faultClient) deliverCore(n int, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coreFirst == 0 {
		c.coreFirst = n
	}
	c.coreLast = max(c.coreLast, n)
	c.coreAt = append(c.coreAt, now.UnixNano())
}

// coreLost is how many core messages from the first one the client saw
// up to published never reached it; it runs under c.mu.
func (c *faultClient) coreLost(published int) int {
	if c.coreFirst == 0 {
		return 0
	}
	return published - c.coreFirst + 1 - len(c.coreAt)
}

func (c *faultClient) counts() (js, core int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jsCount, len(c.coreAt)
}

// caughtUp reports whether the client has JetStream seq js and core
// message core.
func (c *faultClient) caughtUp(js uint64, core int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq >= js && c.coreLast >= core
}

func (c *faultClient) seq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// upAfter returns the first status down at or after from and the first
// status up after it (zero when missing).
func (c *faultClient) upAfter(from time.Time) (down, up time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.status {
		switch {
		case e.at.Before(from):
		case e.nats == "down" && down.IsZero():
			down = e.at
		case e.nats == "up" && !down.IsZero():
			return down, e.at
		}
	}
	return down, time.Time{}
}

// probeSample is one request to an endpoint.
type probeSample struct {
	path      string
	start     time.Time
	took      time.Duration
	code      int
	err       error
	connected string // wsbridge_nats_connected in a /metrics body
	conns     string // wsbridge_connections
}

// prober requests /healthz, /readyz and /metrics, each on its own
// goroutine and a new connection, every 100ms, with a 3s timeout so a
// hang is measured rather than cut at the 1s bound.
type prober struct {
	mu      sync.Mutex
	samples []probeSample
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func startProber(t *testing.T, addr string) *prober {
	p := &prober{stop: make(chan struct{})}
	t.Cleanup(p.halt)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		p.wg.Go(func() {
			hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			defer hc.CloseIdleConnections()
			for {
				s := probeSample{path: path, start: time.Now()}
				resp, err := hc.Get("http://" + addr + path)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					s.code = resp.StatusCode
					s.connected = metricValue(string(body), "wsbridge_nats_connected")
					s.conns = metricValue(string(body), "wsbridge_connections")
				}
				s.took, s.err = time.Since(s.start), err
				p.mu.Lock()
				p.samples = append(p.samples, s)
				p.mu.Unlock()
				select {
				case <-p.stop:
					return
				case <-time.After(100 * time.Millisecond): // pacing
				}
			}
		})
	}
	return p
}

func (p *prober) halt() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *prober) all() []probeSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.samples)
}

// metricValue returns the value of an unlabelled metric in an exposition
// body, or "".
func metricValue(body, name string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkEndpoints asserts every probe answered within endpointBound and
// logs the worst latency per path.
func checkEndpoints(t *testing.T, samples []probeSample) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		var worst time.Duration
		var slow, failed, n int
		var first string
		for _, s := range samples {
			if s.path != path {
				continue
			}
			n++
			worst = max(worst, s.took)
			switch {
			case s.err != nil:
				failed++
				if first == "" {
					first = fmt.Sprintf("%s: %v after %v", s.start.Format("15:04:05.000"), s.err, s.took.Round(time.Millisecond))
				}
			case s.took > endpointBound:
				slow++
				if first == "" {
					first = fmt.Sprintf("%s: %d after %v", s.start.Format("15:04:05.000"), s.code, s.took.Round(time.Millisecond))
				}
			}
		}
		t.Logf("%s: %d requests, worst %v, %d over %v, %d failed", path, n, worst.Round(time.Millisecond), slow, endpointBound, failed)
		if slow+failed > 0 {
			t.Errorf("%s did not answer within %v %d times of %d (first %s)", path, endpointBound, slow+failed, n, first)
		}
		if path == "/healthz" {
			for _, s := range samples {
				if s.path == path && s.err == nil && s.code != http.StatusOK {
					t.Errorf("/healthz answered %d at %s", s.code, s.start.Format("15:04:05.000"))
					break
				}
			}
		}
	}
}

// faultSpec is one NATS-side fault.
type faultSpec struct {
	name string
	// inject starts the fault and returns what ends it.
	inject func(t *testing.T, tp *faultTopology) (heal func())
	hold   time.Duration // fault length; 0: it lasts to the end of the case
	// isolated: no NATS node is reachable during the fault, so /readyz
	// must say 503 from detection until the heal.
	isolated bool
	// mustMove: the bridge has to end up on n1 or n2.
	mustMove bool
}

// TestFaultNATSLink runs the NATS-side faults of issue 12 against the
// topology above, with 4 clients and 50 msg/s of core and JetStream
// traffic each, and BRIDGE_PING_INTERVAL=5s so a worker stalled by NATS
// would cut healthy clients within the case.
func TestFaultNATSLink(t *testing.T) {
	requireNetns(t)
	natsPorts := func(tp *faultTopology, nodes ...int) string {
		var ps []string
		for _, i := range nodes {
			ps = append(ps, strconv.Itoa(tp.ports[i]))
		}
		return "{ " + strings.Join(ps, ", ") + " }"
	}
	cases := []faultSpec{
		{
			name: "link blackholed 40s then healed",
			inject: func(t *testing.T, tp *faultTopology) func() {
				ps := natsPorts(tp, 0, 1, 2)
				return tp.net.drop(t, "tcp dport "+ps, "tcp sport "+ps)
			},
			hold:     40 * time.Second,
			isolated: true,
		},
		{
			name: "link to n0 blackholed for good",
			inject: func(t *testing.T, tp *faultTopology) func() {
				ps := natsPorts(tp, 0)
				return tp.net.drop(t, "tcp dport "+ps, "tcp sport "+ps)
			},
			mustMove: true,
		},
		{
			name: "n0 frozen 30s by SIGSTOP",
			inject: func(t *testing.T, tp *faultTopology) func() {
				if err := tp.n0.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				var once sync.Once
				heal := func() { once.Do(func() { _ = tp.n0.cmd.Process.Signal(syscall.SIGCONT) }) }
				t.Cleanup(heal)
				return heal
			},
			hold:     30 * time.Second,
			mustMove: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runNATSFault(t, tc) })
	}
}

func runNATSFault(t *testing.T, spec faultSpec) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	tp := newFaultTopology(t, ctx, strings.Fields(spec.name)[0], "BRIDGE_PING_INTERVAL=5s")
	pub := startFaultPublisher(t, ctx, tp)
	clients := startFaultClients(t, ctx, tp.bridge.addr, 4, pub.pubAt, nil)
	var received sync.Map // "fpub.cN/pM" of every client pub that reached NATS
	if _, err := tp.svc.Subscribe("fpub.>", func(m *nats.Msg) {
		var d struct{ ID string }
		_ = json.Unmarshal(m.Data, &d)
		received.Store(m.Subject+"/"+d.ID, true)
	}); err != nil {
		t.Fatal(err)
	}
	probes := startProber(t, tp.bridge.addr)
	if !pollUntil(ctx, 30*time.Second, func() bool {
		for _, c := range clients {
			if js, core := c.counts(); js < 25 || core < 25 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("no steady traffic before the fault\n%s", tailLines(tp.bridge.logs.String(), 30))
	}

	heal := spec.inject(t, tp)
	tFault := time.Now() // once every rule is in place
	t.Logf("fault at %s (JetStream seq %d)", tFault.Format("15:04:05.000"), pub.jsLast.Load())
	allUp := func() bool {
		for _, c := range clients {
			if _, up := c.upAfter(tFault); up.IsZero() {
				return false
			}
		}
		return true
	}
	var tHeal time.Time
	if spec.hold > 0 {
		foPause(ctx, time.Until(tFault.Add(spec.hold))) // the fault's length, not a wait for a condition
		heal()
		tHeal = time.Now()
		t.Logf("healed at +%v", tHeal.Sub(tFault).Round(time.Millisecond))
		pollUntil(ctx, 20*time.Second, allUp)
	} else {
		pollUntil(ctx, detectBound+15*time.Second, allUp)
	}
	on := tp.bridgeOn()
	// Two more seconds of live traffic, so the feed's return is measured
	// on messages published after the node is back.
	target := uint64(pub.jsLast.Load()) + 100
	pollUntil(ctx, 20*time.Second, func() bool {
		for _, c := range clients {
			if c.seq() < target {
				return false
			}
		}
		return true
	})
	pub.halt()
	want := tp.lastSeq(t, ctx)
	pollUntil(ctx, 20*time.Second, func() bool {
		for _, c := range clients {
			if !c.caughtUp(want, int(pub.coreN.Load())) {
				return false
			}
		}
		return true
	})
	probes.halt()
	tEnd := time.Now()
	pub.mu.Lock()
	if pub.err != nil {
		t.Errorf("publisher: %v", pub.err)
	}
	pub.mu.Unlock()

	t.Logf("bridge on %q after the fault; stream has %d messages; core published %d", on, want, pub.coreN.Load())
	if spec.mustMove && on == "" {
		t.Errorf("the bridge is not connected to n1 or n2 after the fault (BRIDGE_NATS_URL lists them)")
	}
	var downs, ups []time.Time
	for _, c := range clients {
		down, up := checkFaultClient(t, c, tFault, tHeal, tEnd, want, int(pub.coreN.Load()), &received)
		if !down.IsZero() {
			downs = append(downs, down)
		}
		if !up.IsZero() {
			ups = append(ups, up)
		}
	}
	samples := probes.all()
	checkEndpoints(t, samples)
	checkReadyz(t, samples, spec, tFault, tHeal, downs, ups)
	if t.Failed() {
		t.Logf("bridge log tail:\n%s", tailLines(tp.bridge.logs.String(), 40))
	}
}

// checkFaultClient asserts one client's view of a NATS fault and logs its
// figures; it returns its status down and up times (zero when missing).
func checkFaultClient(t *testing.T, c *faultClient, tFault, tHeal, tEnd time.Time, want uint64, coreN int, received *sync.Map) (down, up time.Time) {
	t.Helper()
	down, up = c.upAfter(tFault)
	c.mu.Lock()
	defer c.mu.Unlock()
	name := "client " + strconv.Itoa(c.id)
	if len(c.hellos) == 0 || c.hellos[0] != "up" {
		t.Errorf("%s: hello nats = %q, want \"up\"", name, c.hellos)
	}
	if len(c.ended) > 0 {
		t.Errorf("%s: a healthy client's connection ended %d times: %v", name, len(c.ended), c.ended)
	}
	if len(c.subErrs) > 0 {
		t.Logf("%s: sub errors: %v", name, c.subErrs)
	}
	for _, e := range c.status {
		if e.at.Before(tFault) {
			t.Errorf("%s: status %s before the fault", name, e.nats)
			break
		}
	}
	switch {
	case down.IsZero():
		t.Errorf("%s: no {\"op\":\"status\",\"nats\":\"down\"} frame (status frames: %d)", name, len(c.status))
	case down.Sub(tFault) > detectBound:
		t.Errorf("%s: status down %v after the fault, want within %v", name, down.Sub(tFault).Round(time.Millisecond), detectBound)
	}
	if !down.IsZero() && up.IsZero() {
		t.Errorf("%s: status down but never up again", name)
	}

	// JetStream: every seq once, in order.
	switch {
	case c.gap != "":
		t.Errorf("%s: JetStream gap: %s", name, c.gap)
	case c.lastSeq != want:
		t.Errorf("%s: JetStream stopped at seq %d of %d", name, c.lastSeq, want)
	}
	if c.dups > 0 {
		t.Errorf("%s: %d JetStream frames at or below the last seq (duplicates)", name, c.dups)
	}
	var stall, stallAt time.Duration
	for s := 2; s <= int(c.lastSeq) && s < len(c.jsAt); s++ {
		if c.jsAt[s] > 0 && c.jsAt[s-1] > 0 {
			if g := time.Duration(c.jsAt[s] - c.jsAt[s-1]); g > stall {
				stall, stallAt = g, time.Duration(c.jsAt[s-1]-tFault.UnixNano())
			}
		}
	}
	back := up
	if back.IsZero() {
		back = tHeal
	}
	var feedLag time.Duration
	if !back.IsZero() {
		for s := 1; s < len(c.jsAt) && s <= int(c.lastSeq); s++ {
			at := c.jsAt[s]
			if at <= back.UnixNano() {
				continue
			}
			ready := max(c.pubAt[s].Load(), back.UnixNano())
			feedLag = max(feedLag, time.Duration(at-ready))
		}
		if feedLag > feedBackBound {
			t.Errorf("%s: JetStream delivery lagged %v after NATS was back, want within %v", name, feedLag.Round(time.Millisecond), feedBackBound)
		}
	}
	// Core: a stall is expected; it must end once NATS is back.
	var coreBack time.Duration = -1
	if !back.IsZero() {
		for _, at := range c.coreAt {
			if at > back.UnixNano() {
				coreBack = time.Duration(at - back.UnixNano())
				break
			}
		}
		if coreBack < 0 || coreBack > feedBackBound {
			t.Errorf("%s: core delivery resumed %v after NATS was back (-1: never)", name, coreBack.Round(time.Millisecond))
		}
	}

	// Pubs with id: each answered within pubBound, ok or unavailable.
	codes := map[string]int{}
	var slowest time.Duration
	var slow, lost int
	var firstSlow string
	for _, a := range c.answers {
		codes[a.code]++
		slowest = max(slowest, a.took)
		if a.took > pubBound {
			slow++
			if firstSlow == "" {
				firstSlow = fmt.Sprintf("%s sent +%v answered %s after %v", a.id, a.sent.Sub(tFault).Round(time.Millisecond), a.code, a.took.Round(time.Millisecond))
			}
		}
		if a.code == "ok" && a.sent.Before(tEnd.Add(-2*time.Second)) {
			if _, ok := received.Load("fpub.c" + strconv.Itoa(c.id) + "/" + a.id); !ok {
				lost++
			}
		}
	}
	unanswered := 0
	for _, sent := range c.pending {
		if tEnd.Sub(sent) > pubBound {
			unanswered++
		}
	}
	if slow+unanswered > 0 {
		t.Errorf("%s: %d pubs answered after more than %v, %d never answered (first slow: %q)", name, slow, pubBound, unanswered, firstSlow)
	}
	for code, n := range codes {
		if code != "ok" && code != "unavailable" {
			t.Errorf("%s: %d pubs answered %q, want ok or unavailable", name, n, code)
		}
	}
	fmtT := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return "+" + at.Sub(tFault).Round(time.Millisecond).String()
	}
	fmtD := func(d time.Duration) string {
		if back.IsZero() || d < 0 {
			return "n/a"
		}
		return d.Round(time.Millisecond).String()
	}
	t.Logf("%s: down %s, up %s; JetStream %d/%d, longest stall %v (from +%v), lag after back %s; core lost %d of %d, first after back %s; pubs %v, slowest %v, %d ok'd but never reached NATS",
		name, fmtT(down), fmtT(up), c.lastSeq, want, stall.Round(time.Millisecond), stallAt.Round(time.Millisecond),
		fmtD(feedLag), c.coreLost(coreN), coreN, fmtD(coreBack), codes, slowest.Round(time.Millisecond), lost)
	return down, up
}

// checkReadyz asserts /readyz said 200 before the fault and 503 while
// NATS was down: inside every client-seen down window, and, when the
// bridge had no NATS node at all, from detection to the heal.
func checkReadyz(t *testing.T, samples []probeSample, spec faultSpec, tFault, tHeal time.Time, downs, ups []time.Time) {
	t.Helper()
	var first503, last503 time.Time
	var disconnected bool
	for _, s := range samples {
		if s.path == "/metrics" && s.connected == "0" {
			disconnected = true
		}
		if s.path != "/readyz" || s.err != nil {
			continue
		}
		end := s.start.Add(s.took)
		if end.Before(tFault) && s.code != http.StatusOK {
			t.Errorf("/readyz %d before the fault", s.code)
		}
		if s.code == http.StatusServiceUnavailable {
			if first503.IsZero() {
				first503 = s.start
			}
			last503 = s.start
		}
	}
	if len(downs) > 0 && len(ups) == len(downs) {
		from := slices.MaxFunc(downs, time.Time.Compare).Add(250 * time.Millisecond)
		to := slices.MinFunc(ups, time.Time.Compare).Add(-250 * time.Millisecond)
		for _, s := range samples {
			if s.path == "/readyz" && s.err == nil && s.start.After(from) && s.start.Add(s.took).Before(to) && s.code != http.StatusServiceUnavailable {
				t.Errorf("/readyz %d at +%v, while clients were told NATS is down", s.code, s.start.Sub(tFault).Round(time.Millisecond))
				break
			}
		}
	}
	if spec.isolated {
		from, to := tFault.Add(detectBound), tHeal
		for _, s := range samples {
			if s.path == "/readyz" && s.err == nil && s.start.After(from) && s.start.Before(to) && s.code != http.StatusServiceUnavailable {
				t.Errorf("/readyz %d at +%v with no NATS node reachable, want 503", s.code, s.start.Sub(tFault).Round(time.Millisecond))
				break
			}
		}
	}
	fmtT := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return "+" + at.Sub(tFault).Round(time.Millisecond).String()
	}
	t.Logf("/readyz 503 first %s, last %s; /metrics showed wsbridge_nats_connected 0: %v", fmtT(first503), fmtT(last503), disconnected)
}

// TestFaultClientBlackholed: one client's traffic is dropped both ways;
// the bridge closes it after two ping intervals (plus one check period)
// and the other clients see nothing of it.
func TestFaultClientBlackholed(t *testing.T) {
	requireNetns(t)
	const ping = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tp := newFaultTopology(t, ctx, "client", "BRIDGE_PING_INTERVAL="+ping.String())
	pub := startFaultPublisher(t, ctx, tp)
	clients := startFaultClients(t, ctx, tp.bridge.addr, 4, pub.pubAt, nil)
	victim := startFaultClients(t, ctx, tp.bridge.addr, 1, pub.pubAt, func(c *faultClient) {
		c.id, c.pubs, c.oneShot = 4, false, true
	})[0]
	probes := startProber(t, tp.bridge.addr)
	all := append(slices.Clone(clients), victim)
	if !pollUntil(ctx, 30*time.Second, func() bool {
		for _, c := range all {
			if js, core := c.counts(); js < 25 || core < 25 {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("no steady traffic before the fault")
	}
	metric := func(name string) string {
		c := &http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get("http://" + tp.bridge.addr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return metricValue(string(b), name)
	}
	const closed1001 = `wsbridge_connections_closed_total{code="1001"}`
	if n := metric("wsbridge_connections"); n != "5" {
		t.Fatalf("wsbridge_connections = %q before the fault, want 5", n)
	}
	before := metric(closed1001)
	victim.mu.Lock()
	vport := victim.localPort
	victim.mu.Unlock()
	_, bport, _ := net.SplitHostPort(tp.bridge.addr)
	tp.net.drop(t, fmt.Sprintf("tcp sport %d tcp dport %s", vport, bport), fmt.Sprintf("tcp sport %s tcp dport %d", bport, vport))
	tFault := time.Now()

	// The bridge decides at the first heartbeat tick after two silent
	// intervals (counted as a 1001 close), then waits closeTimeout (5s)
	// for a close reply that cannot come before it lets the socket go.
	decideBound := 3*ping + 2*time.Second
	releaseBound := decideBound + 5*time.Second + 2*time.Second
	if pollUntil(ctx, decideBound+10*time.Second, func() bool { return metric(closed1001) != before }) {
		d := time.Since(tFault)
		t.Logf("blackholed client closed (1001) after %v (ping interval %v)", d.Round(time.Millisecond), ping)
		if d > decideBound {
			t.Errorf("blackholed client closed after %v, want within %v", d.Round(time.Millisecond), decideBound)
		}
	} else {
		t.Errorf("no 1001 close counted %v after the fault", time.Since(tFault).Round(time.Millisecond))
	}
	if pollUntil(ctx, releaseBound+10*time.Second, func() bool { return metric("wsbridge_connections") == "4" }) {
		d := time.Since(tFault)
		t.Logf("blackholed connection released after %v", d.Round(time.Millisecond))
		if d > releaseBound {
			t.Errorf("blackholed connection released after %v, want within %v", d.Round(time.Millisecond), releaseBound)
		}
	} else {
		t.Errorf("the blackholed client is still counted %v after the fault", time.Since(tFault).Round(time.Millisecond))
	}
	target := uint64(pub.jsLast.Load()) + 100
	pollUntil(ctx, 20*time.Second, func() bool {
		for _, c := range clients {
			if c.seq() < target {
				return false
			}
		}
		return true
	})
	pub.halt()
	want := tp.lastSeq(t, ctx)
	pollUntil(ctx, 20*time.Second, func() bool {
		for _, c := range clients {
			if !c.caughtUp(want, int(pub.coreN.Load())) {
				return false
			}
		}
		return true
	})
	probes.halt()
	tEnd := time.Now()
	for _, c := range clients {
		c.mu.Lock()
		name := "client " + strconv.Itoa(c.id)
		if len(c.ended) > 0 {
			t.Errorf("%s: connection ended: %v", name, c.ended)
		}
		if len(c.status) > 0 {
			t.Errorf("%s: status frames with NATS healthy: %v", name, c.status)
		}
		if c.gap != "" || c.lastSeq != want || c.dups > 0 {
			t.Errorf("%s: JetStream %d/%d, gap %q, %d dups", name, c.lastSeq, want, c.gap, c.dups)
		}
		if n := c.coreLost(int(pub.coreN.Load())); n > 0 {
			t.Errorf("%s: lost %d core messages with NATS healthy", name, n)
		}
		var slowest time.Duration
		for _, a := range c.answers {
			slowest = max(slowest, a.took)
			if a.code != "ok" {
				t.Errorf("%s: pub %s answered %s with NATS healthy", name, a.id, a.code)
				break
			}
		}
		unanswered := 0
		for _, sent := range c.pending {
			if tEnd.Sub(sent) > pubBound {
				unanswered++
			}
		}
		if slowest > pubBound || unanswered > 0 {
			t.Errorf("%s: slowest pub answer %v, %d unanswered", name, slowest.Round(time.Millisecond), unanswered)
		}
		t.Logf("%s: JetStream %d/%d, core %d lost, %d pubs, slowest answer %v", name, c.lastSeq, want, c.coreLost(int(pub.coreN.Load())), len(c.answers), slowest.Round(time.Millisecond))
		c.mu.Unlock()
	}
	checkEndpoints(t, probes.all())
}

// fdMetric reads one unlabelled metric from the bridge's /metrics, or
// says why it could not.
func fdMetric(addr, name string) string {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return metricValue(string(b), name)
}

// TestFaultDescriptorExhaustion runs the binary with 300 descriptors and
// opens 600 WebSocket connections at once: the node must keep running,
// keep serving the clients it has, say so in its log, and accept again
// once the flood leaves.
func TestFaultDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("descriptor exhaustion takes about 20s")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		if os.Getenv("WSBRIDGE_REQUIRE_NETNS") == "1" {
			t.Fatal("prlimit (util-linux) not found")
		}
		t.Skip("prlimit (util-linux) not found")
	}
	const (
		limit = 300
		flood = 600
	)
	ns := testutil.StartNATS(t, false, nil)
	p := startWrapped(t, []string{prlimit, "--nofile=" + strconv.Itoa(limit) + ":" + strconv.Itoa(limit)},
		"BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_HANDSHAKE_TIMEOUT=3s")
	svc := testutil.NATSClient(t, ns)

	existing := make([]*wsClient, 3)
	for i := range existing {
		existing[i] = dial(t, p.addr)
		existing[i].subscribe("s", "fd.x", "")
	}
	served := func(round int) error {
		data := `{"round":` + strconv.Itoa(round) + `}`
		if err := svc.Publish("fd.x", []byte(data)); err != nil {
			return err
		}
		for i, c := range existing {
			f, err := c.tryRecv(5 * time.Second)
			if err != nil {
				return fmt.Errorf("existing client %d: %v", i, err)
			}
			if f.Op != "msg" || string(f.Data) != data {
				return fmt.Errorf("existing client %d got %s, want the message %s", i, f.raw, data)
			}
		}
		c := existing[0]
		c.send(`{"op":"pub","subject":"fd.y","data":1,"id":"p` + strconv.Itoa(round) + `"}`)
		if f, err := c.tryRecv(5 * time.Second); err != nil || f.Op != "ok" {
			return fmt.Errorf("pub with id: %s %v", f.raw, err)
		}
		return nil
	}
	if err := served(1); err != nil {
		t.Fatal(err)
	}

	// The flood: 600 connects at once, each held until released.
	var (
		mu       sync.Mutex
		held     []*websocket.Conn
		failures = map[string]int{}
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range flood {
		wg.Go(func() {
			dctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(dctx, "ws://"+p.addr+"/ws", nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				msg := err.Error()
				if i := strings.LastIndex(msg, ": "); i >= 0 {
					msg = msg[i+2:]
				}
				failures[msg]++
				return
			}
			held = append(held, c)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range held {
			c.CloseNow()
		}
	})
	// An upgrade is not a connection served: read each one's hello.
	hellos, ends := 0, map[string]int{}
	for _, c := range held {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, b, err := c.Read(rctx)
			if err == nil && strings.Contains(string(b), `"op":"hello"`) {
				// and it is still served
				if err = c.Write(rctx, websocket.MessageText, []byte(`{"op":"ping","id":"x"}`)); err == nil {
					_, b, err = c.Read(rctx)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && strings.Contains(string(b), `"op":"pong"`):
				hellos++
			case err != nil:
				ends[err.Error()]++
			default:
				ends["frame "+string(b)]++
			}
		})
	}
	wg.Wait()
	t.Logf("flood: %d of %d upgraded in %v, %d of them answered a ping after their hello (the others: %v); failures: %v; wsbridge_connections %s",
		len(held), flood, time.Since(start).Round(time.Millisecond), hellos, ends, failures, fdMetric(p.addr, "wsbridge_connections"))
	if limits, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/limits"); err == nil {
		for _, line := range strings.Split(string(limits), "\n") {
			if strings.HasPrefix(line, "Max open files") {
				if f := strings.Fields(line); len(f) < 4 || f[3] != strconv.Itoa(limit) {
					t.Fatalf("the bridge runs with %q, want a limit of %d", line, limit)
				}
			}
		}
	}
	if hellos >= flood {
		t.Errorf("all %d connections served under a limit of %d descriptors: the flood did not exhaust them", flood, limit)
	}
	if dropped := len(held) - hellos; dropped > 0 {
		// Allowed ("refuses or drops new sockets"), but the client saw a
		// 101 first; report it so the choice stays visible.
		t.Logf("%d connections were upgraded (101) and then dropped", dropped)
	}
	if dead, err := p.exited(); dead {
		t.Fatalf("the bridge died during the flood: %v\n%s", err, tailLines(p.logs.String(), 30))
	}
	if err := served(2); err != nil {
		t.Errorf("existing clients not served during the flood: %v", err)
	}
	logs := strings.ToLower(p.logs.String())
	if !strings.Contains(logs, "too many open files") && !strings.Contains(logs, "descriptor") {
		t.Errorf("no log line about running out of descriptors")
	}

	for _, c := range held {
		c.CloseNow()
	}
	held = nil
	start = time.Now()
	var lastErr error
	if !pollUntil(context.Background(), 20*time.Second, func() bool {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(dctx, "ws://"+p.addr+"/ws", nil)
		if err != nil {
			lastErr = err
			return false
		}
		defer c.CloseNow()
		_, b, err := c.Read(dctx)
		if err != nil || !strings.Contains(string(b), `"op":"hello"`) {
			lastErr = fmt.Errorf("no hello: %s %v", b, err)
			return false
		}
		return true
	}) {
		t.Errorf("no new connection accepted within 20s of the flood leaving: %v", lastErr)
	} else {
		t.Logf("accepting again %v after the flood left", time.Since(start).Round(time.Millisecond))
	}
	if dead, err := p.exited(); dead {
		t.Fatalf("the bridge died: %v\n%s", err, tailLines(p.logs.String(), 30))
	}
	if err := served(3); err != nil {
		t.Errorf("existing clients not served after the flood: %v", err)
	}
}

// runClusterNode starts an in-process cluster node and waits for its
// client port. natstest.RunServer panics after 10 s, which a loaded CI
// machine can take to bring up a clustered JetStream server; this waits
// longer and fails the test instead of panicking.
func runClusterNode(t *testing.T, o *natsserver.Options) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatalf("cluster node %s: %v", o.ServerName, err)
	}
	go s.Start()
	if !s.ReadyForConnections(60 * time.Second) {
		s.Shutdown()
		t.Fatalf("cluster node %s did not accept connections on %s:%d within 60 s", o.ServerName, o.Host, o.Port)
	}
	return s
}
