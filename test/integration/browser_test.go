package integration

// Browser tests: headless Chromium loads the demo page and bridge.js from
// the real wsbridge binary and talks to Go services through NATS. They
// need Debian's chromium; without it they skip, unless
// WSBRIDGE_REQUIRE_BROWSER=1 makes that a failure (CI sets it).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"wsbridge/internal/testutil"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// chromiumPath finds a Chromium binary. It skips the test when there is
// none, or fails it when WSBRIDGE_REQUIRE_BROWSER=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WSBRIDGE_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium not found and WSBRIDGE_REQUIRE_BROWSER=1: install Debian's chromium")
	}
	t.Skip("chromium not found: install Debian's chromium to run the browser tests")
	return ""
}

// page is one tab of a fresh headless Chromium. Uncaught exceptions and
// unhandled rejections in it fail the test; console errors are logged.
type page struct {
	t   *testing.T
	ctx context.Context

	// diag, when set, is a JavaScript expression whose value a failed
	// poll reports.
	diag string

	mu         sync.Mutex
	exceptions []string
	console    []string
}

// newPage starts Chromium with a fresh profile and opens one tab. The
// browser is stopped when the test ends.
func newPage(t *testing.T) *page {
	t.Helper()
	path := chromiumPath(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	p := &page{t: t}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(p.onEvent))
	p.ctx = ctx
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not carry a timeout.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1`)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(p.check) // runs before the browser stops
	return p
}

// onEvent runs on chromedp's reader goroutine: record and return.
func (p *page) onEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		p.mu.Lock()
		p.exceptions = append(p.exceptions, fmt.Sprintf("%s (%s:%d)", text, d.URL, d.LineNumber))
		p.mu.Unlock()
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning {
			return
		}
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			switch {
			case a.Description != "":
				parts = append(parts, a.Description)
			case len(a.Value) > 0:
				var str string
				if json.Unmarshal(a.Value, &str) == nil {
					parts = append(parts, str)
				} else {
					parts = append(parts, string(a.Value))
				}
			default:
				parts = append(parts, string(a.Type))
			}
		}
		p.mu.Lock()
		p.console = append(p.console, string(ev.Type)+": "+strings.Join(parts, " "))
		p.mu.Unlock()
	}
}

// check fails the test on uncaught exceptions and logs console errors.
func (p *page) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.console {
		p.t.Logf("page console %s", c)
	}
	for _, e := range p.exceptions {
		p.t.Errorf("uncaught exception in the page: %s", e)
	}
}

// do runs actions in the tab, bounded by d.
func (p *page) do(d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// pageEval evaluates expr in the tab, awaiting a promise it returns.
func pageEval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise, chromedp.EvalAsValue))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// poll waits until expr is truthy in the tab.
func (p *page) poll(what, expr string, d time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		state := ""
		if p.diag != "" {
			dctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
			state, _ = chromedp.Run(dctx, chromedp.Evaluate[string](`JSON.stringify(`+p.diag+`)`))
			cancel()
		}
		p.t.Fatalf("waiting for %s (%s): %v; page state: %s", what, expr, err, state)
	}
}

// openDemo starts the wsbridge binary on ns and loads its demo page,
// waiting until the page's client is connected.
func openDemo(t *testing.T, ns *natsserver.Server) (*process, *page) {
	t.Helper()
	pg := newPage(t)
	proc := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_NODE_ID=browser-node")
	pg.do(wait, chromedp.Navigate("http://"+proc.addr+"/"))
	pg.poll("the demo page to connect", `window.bridge && window.bridge.state === 'connected'`, wait)
	if s := pageEval[string](pg, `document.getElementById('state').textContent`); s != "connected" {
		t.Fatalf("#state = %q, want connected", s)
	}
	if cls := pageEval[string](pg, `document.getElementById('state').className`); cls != "connected" {
		t.Fatalf("#state class = %q, want connected", cls)
	}
	if node := pageEval[string](pg, `window.bridge.hello.node`); node != "browser-node" {
		t.Fatalf("hello.node = %q", node)
	}
	return proc, pg
}

// TestBrowserReceivesServicePublish: a Go service publishes through NATS;
// the page's client and the demo page's message list both get it.
func TestBrowserReceivesServicePublish(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	_, pg := openDemo(t, ns)
	svc := testutil.NATSClient(t, ns)

	// Through the API.
	pageEval[bool](pg, `(async () => {
		window.got = [];
		const sub = window.bridge.subscribe('prices.*', (m) => window.got.push({subject: m.subject, data: m.data, text: m.text()}));
		await sub.ready;
		return true;
	})()`)
	// Through the demo page's form.
	pg.do(wait,
		chromedp.SetValue(chromedp.CSS("#sub-subject"), "prices.*"),
		chromedp.Click(chromedp.CSS("#sub-btn")),
	)
	pg.poll("the subscription chip", `document.querySelectorAll('#subs li').length === 1`, wait)

	// The form's ok is not observable; publish a probe until it shows.
	deadline := time.Now().Add(wait)
	for probed := false; !probed; {
		if time.Now().After(deadline) {
			t.Fatal("the demo page never showed a probe message")
		}
		if err := svc.Publish("prices.probe", []byte(`"probe"`)); err != nil {
			t.Fatal(err)
		}
		probed = pageEval[bool](pg, `new Promise((res) => setTimeout(() =>
			res(!!document.querySelector('#messages li[data-subject="prices.probe"]')), 50))`)
	}

	want := []struct{ subject, payload string }{
		{"prices.eur", `{"bid":1.0842,"ask":1.0844}`},
		{"prices.gbp", `"1.2710"`},
		{"prices.jpy", `[1,2,3]`},
	}
	for _, w := range want {
		if err := svc.Publish(w.subject, []byte(w.payload)); err != nil {
			t.Fatal(err)
		}
	}
	pg.poll("the messages in window.got", `window.got.filter((m) => m.subject !== 'prices.probe').length >= 3`, wait)
	type msg struct {
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
		Text    string          `json:"text"`
	}
	got := pageEval[[]msg](pg, `window.got.filter((m) => m.subject !== 'prices.probe')`)
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Subject != w.subject || got[i].Text != w.payload || !jsonEqual(got[i].Data, []byte(w.payload)) {
			t.Errorf("message %d = %+v, want %s %s", i, got[i], w.subject, w.payload)
		}
	}

	// The demo page's list shows them too, in order, after the probes.
	pg.poll("the demo page's list", `document.querySelectorAll('#messages li[data-subject^="prices."]:not([data-subject="prices.probe"])').length >= 3`, wait)
	type item struct {
		Subject string `json:"subject"`
		Data    string `json:"data"`
	}
	items := pageEval[[]item](pg, `[...document.querySelectorAll('#messages li')]
		.filter((li) => li.dataset.subject !== 'prices.probe')
		.map((li) => ({subject: li.querySelector('.subject').textContent, data: li.querySelector('.data').textContent}))`)
	if len(items) != len(want) {
		t.Fatalf("#messages has %d items, want %d: %+v", len(items), len(want), items)
	}
	for i, w := range want {
		if items[i].Subject != w.subject || items[i].Data != w.payload {
			t.Errorf("#messages item %d = %+v, want %s %s", i, items[i], w.subject, w.payload)
		}
	}
	if s := pageEval[string](pg, `document.getElementById('state').textContent`); s != "connected" {
		t.Fatalf("#state = %q after delivery", s)
	}
	if l := pageEval[string](pg, `document.getElementById('log').textContent`); l != "" {
		t.Fatalf("#log shows an error: %q", l)
	}
}

// TestBrowserPublishesToService: what the page publishes, a nats.go
// subscriber receives byte for byte.
func TestBrowserPublishesToService(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	_, pg := openDemo(t, ns)
	svc := testutil.NATSClient(t, ns)
	in := make(chan *nats.Msg, 16)
	if _, err := svc.ChanSubscribe("orders.>", in); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func() *nats.Msg {
		t.Helper()
		select {
		case m := <-in:
			return m
		case <-time.After(wait):
			t.Fatal("the service received nothing")
			return nil
		}
	}

	cases := []struct {
		name, expr, subject, want string
		header                    [2]string
	}{
		{"json object", `window.bridge.publish('orders.new', {id: 7, items: ["a", "b"], total: 12.5})`,
			"orders.new", `{"id":7,"items":["a","b"],"total":12.5}`, [2]string{}},
		{"string", `window.bridge.publish('orders.note', 'héllo ✓')`, "orders.note", `"héllo ✓"`, [2]string{}},
		{"bytes", `window.bridge.publish('orders.blob', new Uint8Array([0, 1, 254, 255]))`,
			"orders.blob", "\x00\x01\xfe\xff", [2]string{}},
		{"text as bytes", `window.bridge.publish('orders.text', 'plain text', {bytes: true})`,
			"orders.text", "plain text", [2]string{}},
		{"headers", `window.bridge.publish('orders.traced', null, {headers: {'X-Trace': 'abc'}})`,
			"orders.traced", "null", [2]string{"X-Trace", "abc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pageEval[bool](pg, `(async () => { await `+tc.expr+`; return true; })()`)
			m := next()
			if m.Subject != tc.subject || string(m.Data) != tc.want {
				t.Fatalf("service got %s %q, want %s %q", m.Subject, m.Data, tc.subject, tc.want)
			}
			if tc.header[0] != "" && m.Header.Get(tc.header[0]) != tc.header[1] {
				t.Fatalf("header %s = %q, want %q", tc.header[0], m.Header.Get(tc.header[0]), tc.header[1])
			}
		})
	}

	t.Run("demo form", func(t *testing.T) {
		pg.do(wait,
			chromedp.SetValue(chromedp.CSS("#pub-subject"), "orders.form"),
			chromedp.SetValue(chromedp.CSS("#pub-data"), `{"from": "form"}`),
			chromedp.Click(chromedp.CSS("#pub-btn")),
		)
		m := next()
		// The page parses the textarea as JSON and sends it re-serialised.
		if m.Subject != "orders.form" || string(m.Data) != `{"from":"form"}` {
			t.Fatalf("service got %s %q", m.Subject, m.Data)
		}
	})
}

// TestBrowserRequestReply: the page's request is answered by a Go service.
func TestBrowserRequestReply(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	_, pg := openDemo(t, ns)
	svc := testutil.NATSClient(t, ns)
	if _, err := svc.Subscribe("svc.quote", func(m *nats.Msg) {
		var req struct {
			Sym string `json:"sym"`
		}
		if err := json.Unmarshal(m.Data, &req); err != nil {
			_ = m.Respond([]byte(`{"error":"bad request"}`))
			return
		}
		_ = m.Respond([]byte(`{"sym":"` + req.Sym + `","px":101.25}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	type reply struct {
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	got := pageEval[reply](pg, `window.bridge.request('svc.quote', {sym: 'ACME'}, {timeout: 2000})
		.then((m) => ({subject: m.subject, data: m.data}))`)
	if got.Subject != "svc.quote" || !jsonEqual(got.Data, []byte(`{"sym":"ACME","px":101.25}`)) {
		t.Fatalf("reply = %s %s", got.Subject, got.Data)
	}

	// Ten in flight at once each get their own answer.
	many := pageEval[[]string](pg, `Promise.all(Array.from({length: 10}, (_, i) =>
		window.bridge.request('svc.quote', {sym: 'S' + i}).then((m) => m.data.sym)))`)
	for i, s := range many {
		if s != "S"+strconv.Itoa(i) {
			t.Fatalf("reply %d = %q", i, s)
		}
	}

	// Nobody listening: the promise rejects with no_responders.
	code := pageEval[string](pg, `window.bridge.request('svc.nobody', null, {timeout: 1000}).then(() => 'resolved', (e) => e.code)`)
	if code != "no_responders" {
		t.Fatalf("request without responders: %q, want no_responders", code)
	}
}

// TestBrowserJetStreamFailover: the page follows a stream through a
// kill -9 of the bridge node it is connected to, resumes on the other
// node and sees every sequence exactly once, in order.
func TestBrowserJetStreamFailover(t *testing.T) {
	const n = 200
	pg := newPage(t)
	ns := testutil.StartNATS(t, true, nil)
	svc := testutil.NATSClient(t, ns)
	js, err := jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}

	a := startFailoverPage(t, pg, ns.ClientURL())
	if nodes := pageEval[[]string](pg, `window.nodes`); !slices.Equal(nodes, []string{"node-a"}) {
		t.Fatalf("connected to %v, want node-a first", nodes)
	}

	// A steady publisher: one message every 10ms, the node dies at n/3.
	killAt := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 1; i <= n; i++ {
			<-tick.C
			pctx, cancel := context.WithTimeout(context.Background(), wait)
			ack, err := js.Publish(pctx, "orders.o"+strconv.Itoa(i%7), []byte(`{"n":`+strconv.Itoa(i)+`}`))
			cancel()
			if err != nil {
				pubErr <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			if ack.Sequence != uint64(i) {
				pubErr <- fmt.Errorf("publish %d stored as seq %d", i, ack.Sequence)
				return
			}
			if i == n/3 {
				close(killAt)
			}
		}
		pubErr <- nil
	}()

	select {
	case <-killAt:
	case err := <-pubErr:
		t.Fatalf("publisher stopped early: %v", err)
	}
	if err := a.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()
	t.Logf("killed node-a after publish %d; the page had %d messages", n/3, pageEval[int](pg, `window.seqs.length`))
	pg.poll("the page to reconnect to node-b", `window.nodes.length === 2 && window.fo.state === 'connected'`, wait)
	t.Logf("page back on %v after %v", pageEval[[]string](pg, `window.nodes`), time.Since(lost).Round(time.Millisecond))

	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	pg.poll(strconv.Itoa(n)+" messages", `window.seqs.length >= `+strconv.Itoa(n), 2*wait)
	seqs := pageEval[[]uint64](pg, `window.seqs`)
	if err := contiguous(seqs, n); err != nil {
		t.Fatalf("page saw %d messages: %v", len(seqs), err)
	}
	if nodes := pageEval[[]string](pg, `window.nodes`); !slices.Equal(nodes, []string{"node-a", "node-b"}) {
		t.Fatalf("hellos from %v, want node-a then node-b", nodes)
	}
	for _, e := range pageEval[[]map[string]string](pg, `window.foErrors`) {
		t.Logf("client error event: %s: %s", e["code"], e["message"]) // the drop itself is reported
	}
}

// startFailoverPage starts wsbridge nodes A and B on natsURL, opens the
// demo page from A and connects a client given both nodes, subscribed to
// orders.> from the start of the stream. The page records the seqs it
// receives (window.seqs), the nodes that greeted it (window.nodes) and
// its error events (window.foErrors: {code, ref, message}). It returns
// node A, the one the tests kill; B is stopped by the test's cleanup.
func startFailoverPage(t *testing.T, pg *page, natsURL string) *process {
	t.Helper()
	// Both nodes accept both origins: in production they sit behind one
	// host name, here each has its own port.
	portA, portB := freePort(t), freePort(t)
	origins := fmt.Sprintf("BRIDGE_ALLOWED_ORIGINS=http://127.0.0.1:%d,http://127.0.0.1:%d", portA, portB)
	a := startProcess(t, "BRIDGE_NATS_URL="+natsURL, "BRIDGE_NODE_ID=node-a",
		"BRIDGE_LISTEN=127.0.0.1:"+strconv.Itoa(portA), origins)
	b := startProcess(t, "BRIDGE_NATS_URL="+natsURL, "BRIDGE_NODE_ID=node-b",
		"BRIDGE_LISTEN=127.0.0.1:"+strconv.Itoa(portB), origins)
	pg.do(wait, chromedp.Navigate("http://"+a.addr+"/"))
	pg.poll("the demo page to connect", `window.bridge && window.bridge.state === 'connected'`, wait)
	status := pageEval[string](pg, fmt.Sprintf(`(async () => {
		const { connect } = await import('/bridge.js');
		window.seqs = [];
		window.nodes = [];
		window.foErrors = [];
		const c = connect(['ws://%s/ws', 'ws://%s/ws'], {minBackoffMs: 50, maxBackoffMs: 500});
		window.fo = c;
		c.on('hello', (h) => window.nodes.push(h.node));
		c.on('error', (e) => window.foErrors.push({code: e.code, ref: e.ref || '', message: e.message}));
		const sub = c.subscribe('orders.>', (m) => window.seqs.push(m.seq), {from: 'all'});
		return sub.ready.then(() => 'ok', (e) => e.code + ': ' + e.message);
	})()`, a.addr, b.addr))
	pg.diag = `{seqs: window.seqs && window.seqs.length, nodes: window.nodes, state: window.fo && window.fo.state, errors: window.foErrors}`
	if status != "ok" {
		t.Fatalf("JetStream subscribe: %s", status)
	}
	return a
}

// contiguous checks that seqs is exactly 1..n.
func contiguous(seqs []uint64, n int) error {
	for i, s := range seqs {
		if s != uint64(i+1) {
			return fmt.Errorf("position %d holds seq %d, want %d (around: %v)", i, s, i+1, seqs[max(0, i-3):min(len(seqs), i+4)])
		}
	}
	if len(seqs) != n {
		return fmt.Errorf("%d messages, want %d", len(seqs), n)
	}
	return nil
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(ax) == string(by)
}

// TestBrowserResubscribeRetriesUnavailable: the page fails over to a node
// whose NATS is down, so its JetStream resubscribe is answered
// unavailable. The client keeps retrying, and once NATS is back the
// stream resumes where it stopped.
func TestBrowserResubscribeRetriesUnavailable(t *testing.T) {
	const n = 100
	pg := newPage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := startCluster(t, 1, nil) // restartable: fixed port and store
	js := clusterStream(t, ctx, cl, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	publish := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			retry(t, ctx, "publishing "+strconv.Itoa(i), func(ctx context.Context) error {
				_, err := js.Publish(ctx, "orders.x", []byte(strconv.Itoa(i)), jetstream.WithMsgID("o-"+strconv.Itoa(i)))
				return err
			})
		}
	}

	a := startFailoverPage(t, pg, cl.urls())
	publish(1, n/2)
	pg.poll("the first half", `window.seqs.length === `+strconv.Itoa(n/2), wait)

	// NATS goes down, then the page's node dies: the page lands on
	// node-b, which greets it but cannot resubscribe.
	cl.stop(0)
	if err := a.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	pg.poll("node-b to refuse the resubscribe", `window.nodes.includes('node-b') &&
		window.foErrors.some((e) => e.code === 'unavailable' && e.ref === 's1')`, wait)

	cl.start(t, 0)
	publish(n/2+1, n)
	pg.poll("the second half", `window.seqs.length >= `+strconv.Itoa(n), 2*wait)
	seqs := pageEval[[]uint64](pg, `window.seqs`)
	if err := contiguous(seqs, n); err != nil {
		t.Fatalf("page saw %d messages: %v", len(seqs), err)
	}
}
