package integration

// Browser tests of the demo page as a newcomer uses it, of bridge.js
// imported from another origin, and of the bundled client's reactions to
// the bridge's NATS state, to a rebalance close and to an acked publish
// whose outcome is unknown. They use the real binary and headless
// Chromium (see browser_test.go for the setup and the skip rules).

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/client"
	"wsbridge/internal/testutil"
)

// TestDemoPageTeaches walks the demo page as its instructions say, on the
// default setup (embedded NATS): the hints name the embedded server's
// address, messages show their subscription and stream seq, plain text
// goes out as text, and the request form gets a Go service's reply.
func TestDemoPageTeaches(t *testing.T) {
	pg := newPage(t)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
	proc := startProcess(t, "BRIDGE_NATS_URL=", "BRIDGE_NODE_ID=demo-node",
		"BRIDGE_EMBEDDED_NATS_LISTEN="+strings.TrimPrefix(natsURL, "nats://"), "BRIDGE_DATA_DIR="+t.TempDir())
	svc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("embedded NATS at %s: %v\n%s", natsURL, err, proc.logs)
	}
	t.Cleanup(svc.Close)
	js, err := jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}

	pg.do(wait, chromedp.Navigate("http://"+proc.addr+"/"))
	pg.poll("the demo page to connect", `window.bridge && window.bridge.state === 'connected'`, wait)
	pg.diag = `{state: window.bridge.state, nats: document.getElementById('nats').textContent,
		log: document.getElementById('log').textContent, req: document.getElementById('req-result').textContent,
		subs: [...document.querySelectorAll('#subs li')].map((li) => li.textContent + ' ' + (li.dataset.ready || '')),
		messages: [...document.querySelectorAll('#messages li')].map((li) => li.textContent)}`
	text := func(sel string) string {
		t.Helper()
		return pageEval[string](pg, `document.querySelector(`+strconv.Quote(sel)+`).textContent`)
	}

	// The instructions: hints with the embedded server's address, where
	// the docs are, the client's version and the node.
	hints := map[string]string{
		"#hint-pub":    "nats -s " + natsURL + ` pub orders.new '{"id":1}'`,
		"#hint-reply":  "nats -s " + natsURL + " reply svc.echo --echo",
		"#hint-stream": "nats -s " + natsURL + " stream add ORDERS --subjects 'orders.>' --defaults",
		"#version":     client.Version(),
		"#node":        "demo-node",
	}
	for sel, want := range hints {
		if got := text(sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	for _, want := range []string{"docs/PROTOCOL.md", "docs/CLIENT.md", "/bridge.d.ts", "window.bridge"} {
		if !strings.Contains(text("#docs"), want) {
			t.Errorf("#docs does not mention %s: %q", want, text("#docs"))
		}
	}
	if !pageEval[bool](pg, `!!document.querySelector('#docs a[href="/bridge.d.ts"]') && !!document.querySelector('link[rel=icon][href="/favicon.ico"]')`) {
		t.Error("the page lacks its link to /bridge.d.ts or its icon link")
	}
	resp, err := http.Get("http://" + proc.addr + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/x-icon" {
		t.Errorf("/favicon.ico: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// Three subscriptions through the form: core and JetStream on
	// orders.>, core on notes.>.
	subscribe := func(subject, from, sid string) {
		t.Helper()
		pg.do(wait,
			chromedp.SetValue(chromedp.CSS("#sub-subject"), subject),
			chromedp.SetValue(chromedp.CSS("#sub-from"), from),
			chromedp.Click(chromedp.CSS("#sub-btn")),
		)
		pg.poll("subscription "+sid, `!!document.querySelector('#subs li[data-sid="`+sid+`"][data-ready]')`, wait)
		if got := text(`#subs li[data-sid="` + sid + `"] .sid`); got != sid {
			t.Errorf("chip of %s shows sid %q", sid, got)
		}
	}
	subscribe("orders.>", "", "s1")
	subscribe("orders.>", "all", "s2")
	subscribe("notes.>", "", "s3")

	for i := 1; i <= 3; i++ {
		if _, err := js.Publish(ctx, "orders.new", []byte(`{"id":`+strconv.Itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	pg.poll("three messages on each orders subscription", `document.querySelectorAll('#messages li[data-sid="s1"]').length === 3 &&
		document.querySelectorAll('#messages li[data-sid="s2"]').length === 3`, wait)
	type item struct {
		Sid  string `json:"sid"`
		Seq  string `json:"seq"`
		Data string `json:"data"`
	}
	items := pageEval[[]item](pg, `[...document.querySelectorAll('#messages li')].map((li) => ({
		sid: li.querySelector('.sid').textContent,
		seq: li.querySelector('.seq') ? li.querySelector('.seq').textContent : '',
		data: li.querySelector('.data').textContent}))`)
	var core, stream []item
	for _, it := range items {
		switch it.Sid {
		case "s1":
			core = append(core, it)
		case "s2":
			stream = append(stream, it)
		}
	}
	for i := range 3 {
		want := `{"id":` + strconv.Itoa(i+1) + `}`
		if i >= len(core) || core[i].Seq != "" || core[i].Data != want {
			t.Errorf("core message %d = %+v, want no seq and %s", i, core, want)
		}
		if i >= len(stream) || stream[i].Seq != "#"+strconv.Itoa(i+1) || stream[i].Data != want {
			t.Errorf("JetStream message %d = %+v, want #%d and %s", i, stream, i+1, want)
		}
	}

	// Plain text goes out as its bytes, JSON as JSON.
	notes := make(chan *nats.Msg, 4)
	if _, err := svc.ChanSubscribe("notes.>", notes); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ subject, typed, want string }{
		{"notes.plain", "hello plain text", "hello plain text"},
		{"notes.json", `{"n": 1}`, `{"n":1}`},
	} {
		pg.do(wait,
			chromedp.SetValue(chromedp.CSS("#pub-subject"), tc.subject),
			chromedp.SetValue(chromedp.CSS("#pub-data"), tc.typed),
			chromedp.Click(chromedp.CSS("#pub-btn")),
		)
		select {
		case m := <-notes:
			if m.Subject != tc.subject || string(m.Data) != tc.want {
				t.Errorf("typed %q: the service got %s %q, want %s %q", tc.typed, m.Subject, m.Data, tc.subject, tc.want)
			}
		case <-time.After(wait):
			t.Fatalf("typed %q: the service got nothing", tc.typed)
		}
	}
	pg.poll("the plain text in the list", `[...document.querySelectorAll('#messages li[data-sid="s3"] .data')].some((d) => d.textContent === 'hello plain text')`, wait)

	// An acked publish from the form reports where the stream stored it.
	pageEval[bool](pg, `document.getElementById('pub-ack').checked = true`)
	pg.do(wait,
		chromedp.SetValue(chromedp.CSS("#pub-subject"), "orders.acked"),
		chromedp.SetValue(chromedp.CSS("#pub-data"), `{"id":4}`),
		chromedp.Click(chromedp.CSS("#pub-btn")),
	)
	pg.poll("the stored seq in the log", `document.getElementById('log').textContent === 'stored in ORDERS #4'`, wait)
	pg.poll("seq 4 on the JetStream subscription", `!!document.querySelector('#messages li[data-sid="s2"][data-seq="4"]')`, wait)

	// The request form, answered by a Go service.
	if _, err := svc.Subscribe("svc.echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("got "), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ subject, typed, want string }{
		{"svc.echo", `{"sym": "ACME"}`, `reply from svc.echo: got {"sym":"ACME"}`},
		{"svc.echo", "ping", "reply from svc.echo: got ping"},
		{"svc.nobody", "ping", "request svc.nobody: no_responders: "},
	} {
		pg.do(wait,
			chromedp.SetValue(chromedp.CSS("#req-subject"), tc.subject),
			chromedp.SetValue(chromedp.CSS("#req-data"), tc.typed),
			chromedp.Click(chromedp.CSS("#req-btn")),
		)
		pg.poll("the answer to "+tc.typed, `document.getElementById('req-result').textContent.startsWith(`+strconv.Quote(tc.want)+`)`, wait)
	}
	if l := text("#log"); l != "stored in ORDERS #4" {
		t.Errorf("#log = %q", l)
	}
}

// TestDemoPageShowsNATSState: the page shows the bridge's NATS connection
// going down and coming back, and an acked publish made while it is down
// is stored once it is back, exactly once. It needs the bridge to report
// its NATS state (hello's "nats" and the status op).
func TestDemoPageShowsNATSState(t *testing.T) {
	pg := newPage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := startCluster(t, 1, nil) // restartable: fixed port and store
	js := clusterStream(t, ctx, cl, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	proc := startProcess(t, "BRIDGE_NATS_URL="+cl.urls())
	pg.do(wait, chromedp.Navigate("http://"+proc.addr+"/"))
	pg.poll("the demo page to connect", `window.bridge && window.bridge.state === 'connected'`, wait)
	pg.diag = `{state: window.bridge.state, nats: window.bridge.nats, shown: document.getElementById('nats').textContent,
		hello: window.bridge.hello, events: window.natsEvents}`
	pageEval[bool](pg, `(window.natsEvents = [], window.bridge.on('nats', (s) => window.natsEvents.push(s)), true)`)
	shows := func(s string) string {
		return `document.getElementById('nats').textContent === 'NATS: ` + s + `' &&
			document.getElementById('nats').className === '` + s + `' && window.bridge.nats === '` + s + `'`
	}
	if h := pageEval[string](pg, `window.bridge.hello.nats || ''`); h != "up" {
		t.Fatalf("hello.nats = %q, want up: the bridge must report its NATS state in hello and status frames (issue 12)", h)
	}
	pg.poll("NATS: up", shows("up"), wait)

	cl.stop(0)
	pg.poll("NATS: down", shows("down")+` && window.bridge.state === 'connected'`, wait)
	pageEval[bool](pg, `(window.acked = window.bridge.publish('orders.down', {n: 1}, {ack: true, msgId: 'while-down'})
		.then((a) => a, (e) => ({error: e.code + ': ' + e.message})), true)`)

	cl.start(t, 0)
	pg.poll("NATS: up again", shows("up"), 2*wait)
	type ack struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Error  string `json:"error"`
	}
	got := pageEval[ack](pg, `window.acked`)
	if got.Error != "" || got.Stream != "ORDERS" || got.Seq != 1 {
		t.Fatalf("acked publish made while NATS was down: %+v, want ORDERS seq 1", got)
	}
	s, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("the stream holds %d messages, want 1", info.State.Msgs)
	}
	if ev := pageEval[[]string](pg, `window.natsEvents`); strings.Join(ev, ",") != "down,up" {
		t.Errorf("nats events %v, want down then up", ev)
	}
}

// testSocket is a WebSocket subclass for the page: window.sockets lists
// every socket, window.sent every frame sent, and window.rewrite, when
// set, may replace an incoming frame's text (return a string) before the
// client sees it. window.drop(code, reason) closes the newest socket and
// hands the client a close event with that code and reason, as if the
// bridge had sent it.
const testSocket = `
	window.sockets = [];
	window.sent = [];
	window.TestSocket = class extends WebSocket {
		constructor(url, protocols) { super(url, protocols); window.sockets.push(this); }
		send(text) { window.sent.push(text); super.send(text); }
		get onmessage() { return super.onmessage; }
		set onmessage(fn) {
			super.onmessage = fn && ((e) => {
				const text = window.rewrite ? window.rewrite(e.data) : undefined;
				fn(text === undefined ? e : new MessageEvent('message', {data: text}));
			});
		}
	};
	window.drop = (code, reason) => {
		const ws = window.sockets[window.sockets.length - 1];
		const onclose = ws.onclose;
		window.droppedAt = performance.now();
		ws.close();
		onclose(new CloseEvent('close', {code, reason}));
	};`

// openClientPage starts the binary on a JetStream-enabled nats-server with
// an ORDERS stream on orders.>, loads its demo page and installs
// testSocket.
func openClientPage(t *testing.T) (*process, *page, jetstream.JetStream) {
	t.Helper()
	ns := testutil.StartNATS(t, true, nil)
	js, err := jetstream.New(testutil.NATSClient(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	proc, pg := openDemo(t, ns)
	pageEval[bool](pg, `(() => {`+testSocket+` return true; })()`)
	return proc, pg, js
}

// TestClientRebalanceReconnect: a close with 1012 "rebalance" makes the
// client reconnect within rebalanceJitterMs instead of its backoff, with
// no error event, and resume its JetStream subscription from the last seq
// and its core one; any other drop uses the backoff. The bridge does not
// send 1012 itself yet, so the page fakes the close event.
func TestClientRebalanceReconnect(t *testing.T) {
	proc, pg, js := openClientPage(t)
	svc := js.Conn()
	status := pageEval[string](pg, fmt.Sprintf(`(async () => {
		const { connect } = await import('/bridge.js');
		window.rb = {hellos: [], errors: [], seqs: [], core: []};
		const c = connect('ws://%s/ws', {WebSocket: window.TestSocket, minBackoffMs: 3000, maxBackoffMs: 3000});
		window.rc = c;
		c.on('hello', () => window.rb.hellos.push(performance.now()));
		c.on('error', (e) => window.rb.errors.push(e.code + ' ' + e.closeCode));
		const js = c.subscribe('orders.>', (m) => window.rb.seqs.push(m.seq), {from: 'all'});
		const core = c.subscribe('probe.>', (m) => window.rb.core.push(m.data));
		return Promise.all([js.ready, core.ready]).then(() => 'ok', (e) => e.code + ': ' + e.message);
	})()`, proc.addr))
	if status != "ok" {
		t.Fatalf("subscribing: %s", status)
	}
	pg.diag = `window.rb`
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	publish := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			if _, err := js.Publish(ctx, "orders.x", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1, 5)
	pg.poll("seqs 1-5", `window.rb.seqs.length === 5`, wait)

	// Pin the jitter at 90%: a rebalance waits 900 ms, the backoff 2700.
	pageEval[bool](pg, `(window.realRandom = Math.random, Math.random = () => 0.9, true)`)
	defer pageEval[bool](pg, `(Math.random = window.realRandom, true)`)
	reconnectAfter := func(code int, reason string) float64 {
		t.Helper()
		n := pageEval[int](pg, `window.rb.hellos.length`)
		pageEval[bool](pg, fmt.Sprintf(`(window.drop(%d, %q), true)`, code, reason))
		pg.poll("the reconnect after "+strconv.Itoa(code), `window.rb.hellos.length === `+strconv.Itoa(n+1)+` && window.rc.state === 'connected'`, wait)
		return pageEval[float64](pg, `window.rb.hellos[window.rb.hellos.length - 1] - window.droppedAt`)
	}

	ms := reconnectAfter(1012, "rebalance")
	t.Logf("reconnected %.0f ms after 1012 rebalance", ms)
	if ms < 850 || ms >= 2500 {
		t.Errorf("reconnected %.0f ms after 1012 rebalance, want about 900 (jitter 0.9 × 1000 ms)", ms)
	}
	if errs := pageEval[[]string](pg, `window.rb.errors`); len(errs) != 0 {
		t.Errorf("a rebalance raised error events: %v", errs)
	}
	publish(6, 10)
	pg.poll("seqs 6-10 after the rebalance", `window.rb.seqs.length >= 10`, wait)
	seqs := pageEval[[]uint64](pg, `window.rb.seqs`)
	if err := contiguous(seqs, 10); err != nil {
		t.Fatal(err)
	}
	// The core subscription is back: its ok is not observable, so probe.
	deadline := time.Now().Add(wait)
	for pageEval[int](pg, `window.rb.core.length`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the core subscription never came back after the rebalance")
		}
		if err := svc.Publish("probe.x", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		pageEval[bool](pg, `new Promise((res) => setTimeout(() => res(true), 50))`)
	}

	ms = reconnectAfter(1006, "")
	t.Logf("reconnected %.0f ms after 1006", ms)
	if ms < 2650 {
		t.Errorf("reconnected %.0f ms after 1006, want the backoff: about 2700 (0.9 × 3000 ms)", ms)
	}
	if errs := pageEval[[]string](pg, `window.rb.errors`); strings.Join(errs, ",") != "unavailable 1006" {
		t.Errorf("error events %v, want one for the 1006", errs)
	}
}

// TestClientAckedPublishRetriesTimeout: an acked publish answered timeout
// (outcome unknown) is re-sent unchanged, and the stream's dedup turns the
// re-send into the first one's seq. The page rewrites the bridge's real
// ok into a timeout, so the first send was in fact stored.
func TestClientAckedPublishRetriesTimeout(t *testing.T) {
	proc, pg, js := openClientPage(t)
	type result struct {
		Stream    string   `json:"stream"`
		Seq       uint64   `json:"seq"`
		Duplicate bool     `json:"duplicate"`
		Error     string   `json:"error"`
		Faked     uint64   `json:"faked"`
		Sent      []string `json:"sent"`
	}
	got := pageEval[result](pg, fmt.Sprintf(`(async () => {
		const { connect } = await import('/bridge.js');
		window.rewrite = (text) => {
			const f = JSON.parse(text);
			if (f.op !== 'ok' || f.ref !== 'p1' || window.faked) return undefined;
			window.faked = f;
			return JSON.stringify({op: 'err', ref: 'p1', code: 'timeout', message: 'synthetic: outcome unknown'});
		};
		const c = connect('ws://%s/ws', {WebSocket: window.TestSocket, minBackoffMs: 50, maxBackoffMs: 200});
		const res = await c.publish('orders.t', {n: 1}, {ack: true}).catch((e) => ({error: e.code + ': ' + e.message}));
		c.close();
		return {...res, faked: window.faked ? window.faked.seq : 0,
			sent: window.sent.filter((s) => JSON.parse(s).op === 'pub')};
	})()`, proc.addr))
	if got.Error != "" {
		t.Fatalf("publish rejected: %s", got.Error)
	}
	if got.Faked != 1 || got.Stream != "ORDERS" || got.Seq != 1 || !got.Duplicate {
		t.Errorf("got %+v, want ORDERS seq 1 as a duplicate of the first send (seq 1)", got)
	}
	if len(got.Sent) != 2 || got.Sent[0] != got.Sent[1] {
		t.Errorf("pub frames sent %q, want the same frame twice", got.Sent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("the stream holds %d messages, want 1", info.State.Msgs)
	}
}

// TestBridgeJSCrossOrigin: a page on an origin in BRIDGE_ALLOWED_ORIGINS
// imports /bridge.js from the bridge and connects; a page on another
// origin cannot import it.
func TestBridgeJSCrossOrigin(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>app</title>`))
	})
	app := httptest.NewServer(page)
	t.Cleanup(app.Close)
	other := httptest.NewServer(page)
	t.Cleanup(other.Close)
	ns := testutil.StartNATS(t, false, nil)
	proc := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_ALLOWED_ORIGINS="+app.URL)

	// The headers, as any HTTP client sees them.
	for _, tc := range []struct{ origin, want string }{{app.URL, app.URL}, {other.URL, ""}} {
		req, err := http.NewRequest(http.MethodGet, "http://"+proc.addr+"/bridge.js", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", tc.origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("Origin %s: Access-Control-Allow-Origin %q, Vary %q; want %q, Origin", tc.origin, got, resp.Header.Get("Vary"), tc.want)
		}
	}

	pg := newPage(t)
	load := fmt.Sprintf(`import('http://%s/bridge.js').then(async (m) => {
		const c = m.connect('ws://%s/ws');
		const h = await new Promise((res) => c.on('hello', res));
		c.close();
		const types = await fetch('http://%s/bridge.d.ts').then((r) => r.text());
		return m.VERSION + ' ' + h.op + ' ' + types.includes('NATSState');
	}, (e) => 'refused: ' + e.message)`, proc.addr, proc.addr, proc.addr)
	pg.do(wait, chromedp.Navigate(app.URL))
	if got, want := pageEval[string](pg, load), client.Version()+" hello true"; got != want {
		t.Errorf("from the allowed origin: %q, want %q", got, want)
	}
	pg.do(wait, chromedp.Navigate(other.URL))
	if got := pageEval[string](pg, load); !strings.HasPrefix(got, "refused: ") {
		t.Errorf("from another origin: %q, want the import refused", got)
	}
}
