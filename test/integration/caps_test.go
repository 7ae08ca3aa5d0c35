package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// Per-connection caps (issue 13): requests and acked publishes in flight,
// catch-ups per connection, and the close-code label bound.

// capsEnv is a JetStream nats-server, a jwt-mode bridge serving its
// metrics, and a token allowing everything.
type capsEnv struct {
	ns      *natsserver.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	b       *testBridge
	metrics string
	tok     string
}

func startCaps(t *testing.T, mutate func(*bridge.Config)) *capsEnv {
	t.Helper()
	ns := testutil.StartNATS(t, true, nil)
	nc := testutil.NATSClient(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) {
		c.Registerer = reg
		c.Handler = mux
		if mutate != nil {
			mutate(c)
		}
	})
	return &capsEnv{ns: ns, nc: nc, js: js, b: b, metrics: "http://" + b.Addr + "/metrics", tok: userToken(t, "capped", allowAll())}
}

// holder subscribes to subject and keeps every message, unanswered, until
// the test answers it.
func holder(t *testing.T, nc *nats.Conn, subject string) <-chan *nats.Msg {
	t.Helper()
	held := make(chan *nats.Msg, 256)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { held <- m }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return held
}

func nextHeld(t *testing.T, held <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-held:
		return m
	case <-time.After(wait):
		t.Fatal("nothing reached the service")
		return nil
	}
}

// TestInflightRequestCap: the 65th request in flight is too_many_requests
// and never reaches NATS; a reply frees a place; requests that time out
// free theirs; closing the connection frees all of them at once, not after
// their 60 s timeouts.
func TestInflightRequestCap(t *testing.T) {
	e := startCaps(t, nil)
	held := holder(t, e.nc, "hold.svc")
	c := connectAs(t, e.b.Addr, e.tok)
	for i := range 64 {
		c.send(map[string]any{"op": "req", "id": "r" + itoa(i), "subject": "hold.svc", "data": "r" + itoa(i), "timeout_ms": 60000})
	}
	var first *nats.Msg
	for i := range 64 {
		m := nextHeld(t, held)
		if i == 0 {
			first = m
		}
	}
	c.send(map[string]any{"op": "req", "id": "r64", "subject": "hold.svc", "data": "r64", "timeout_ms": 60000})
	c.expectErr("r64", "too_many_requests")
	waitMetrics(t, e.metrics, map[string]float64{
		"wsbridge_requests_in_flight":                  64,
		`wsbridge_inflight_refusals_total{kind="req"}`: 1,
		`wsbridge_inflight_refusals_total{kind="ack"}`: 0,
	})

	// A reply frees one place; the refused request never went out, so the
	// next message the service sees is the one sent after the reply.
	var ref string
	if err := json.Unmarshal(first.Data, &ref); err != nil {
		t.Fatal(err)
	}
	if err := first.Respond([]byte(`"done"`)); err != nil {
		t.Fatal(err)
	}
	c.expect("reply", ref)
	c.send(map[string]any{"op": "req", "id": "after", "subject": "hold.svc", "data": "after", "timeout_ms": 60000})
	if m := nextHeld(t, held); string(m.Data) != `"after"` {
		t.Fatalf("the service got %q, want the request sent after the reply (the refused one must not go out)", m.Data)
	}

	// Another client is not limited by this one.
	other := connectAs(t, e.b.Addr, e.tok)
	other.send(map[string]any{"op": "req", "id": "o", "subject": "hold.svc", "data": "o", "timeout_ms": 60000})
	if m := nextHeld(t, held); string(m.Data) != `"o"` {
		t.Fatalf("the service got %q, want the other client's request", m.Data)
	}

	// Closing frees the 64 at once.
	_ = c.c.Close(websocket.StatusNormalClosure, "bye")
	waitMetrics(t, e.metrics, map[string]float64{"wsbridge_requests_in_flight": 1})
	_ = other.c.Close(websocket.StatusNormalClosure, "bye")
	waitMetrics(t, e.metrics, map[string]float64{"wsbridge_requests_in_flight": 0})

	t.Run("timeouts free their places", func(t *testing.T) {
		c := connectAs(t, e.b.Addr, e.tok)
		for i := range 64 {
			c.send(map[string]any{"op": "req", "id": "t" + itoa(i), "subject": "hold.svc", "data": 1, "timeout_ms": 20})
		}
		for range 64 {
			if f := c.recv(); f.Op != "err" || f.Code != "timeout" {
				t.Fatalf("got %s, want err timeout", f.raw)
			}
		}
		c.send(map[string]any{"op": "req", "id": "next", "subject": "hold.svc", "data": 1, "timeout_ms": 20})
		c.expectErr("next", "timeout")
	})
}

// TestInflightAckCap: the 65th acked publish awaiting its PubAck is
// too_many_requests and never reaches NATS; a PubAck frees a place, and
// so does closing. The stream stores with no_ack, and a service stands in
// for its PubAcks, so the test decides when each arrives.
func TestInflightAckCap(t *testing.T) {
	e := startCaps(t, func(c *bridge.Config) { c.RequestTimeout = time.Minute })
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "HOLD", Subjects: []string{"held.>"}, NoAck: true}); err != nil {
		t.Fatal(err)
	}
	held := holder(t, e.nc, "held.>")
	c := connectAs(t, e.b.Addr, e.tok)
	for i := range 64 {
		c.send(map[string]any{"op": "pub", "ack": true, "id": "a" + itoa(i), "subject": "held.x", "data": "a" + itoa(i)})
	}
	var first *nats.Msg
	for i := range 64 {
		if m := nextHeld(t, held); i == 0 {
			first = m
		}
	}
	c.send(map[string]any{"op": "pub", "ack": true, "id": "a64", "subject": "held.x", "data": "a64"})
	c.expectErr("a64", "too_many_requests")
	waitMetrics(t, e.metrics, map[string]float64{
		"wsbridge_acked_publishes_in_flight":           64,
		`wsbridge_inflight_refusals_total{kind="ack"}`: 1,
	})

	// Plain publishes are not acked publishes: they still go.
	c.send(map[string]any{"op": "pub", "id": "plain", "subject": "held.x", "data": "plain"})
	c.expect("ok", "plain")
	if m := nextHeld(t, held); string(m.Data) != `"plain"` {
		t.Fatalf("the service got %q, want the plain pub (the refused acked pub must not go out)", m.Data)
	}

	var ref string
	if err := json.Unmarshal(first.Data, &ref); err != nil {
		t.Fatal(err)
	}
	if err := first.Respond([]byte(`{"stream":"HOLD","seq":1}`)); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("ok", ref); f.Stream != "HOLD" || f.Seq != 1 {
		t.Fatalf("PubAck answered %s", f.raw)
	}
	c.send(map[string]any{"op": "pub", "ack": true, "id": "after", "subject": "held.x", "data": "after"})
	if m := nextHeld(t, held); string(m.Data) != `"after"` {
		t.Fatalf("the service got %q, want the acked pub sent after the PubAck", m.Data)
	}
	waitMetrics(t, e.metrics, map[string]float64{"wsbridge_acked_publishes_in_flight": 64})

	// Another client still has its own 64.
	other := connectAs(t, e.b.Addr, e.tok)
	other.send(map[string]any{"op": "pub", "ack": true, "id": "o", "subject": "held.x", "data": "o"})
	if m := nextHeld(t, held); string(m.Data) != `"o"` {
		t.Fatalf("the service got %q, want the other client's acked pub", m.Data)
	}

	_ = c.c.Close(websocket.StatusNormalClosure, "bye")
	_ = other.c.Close(websocket.StatusNormalClosure, "bye")
	waitMetrics(t, e.metrics, map[string]float64{"wsbridge_acked_publishes_in_flight": 0})
}

// TestInflightAckTimeoutsFree: acked publishes whose PubAck times out
// free their places.
func TestInflightAckTimeoutsFree(t *testing.T) {
	e := startCaps(t, func(c *bridge.Config) { c.RequestTimeout = 50 * time.Millisecond })
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "MUTE", Subjects: []string{"mute.>"}, NoAck: true}); err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, e.b.Addr, e.tok)
	for i := range 64 {
		c.send(map[string]any{"op": "pub", "ack": true, "id": "m" + itoa(i), "subject": "mute.x", "data": 1})
	}
	for range 64 {
		if f := c.recv(); f.Op != "err" || f.Code != "timeout" {
			t.Fatalf("got %s, want err timeout", f.raw)
		}
	}
	c.send(map[string]any{"op": "pub", "ack": true, "id": "next", "subject": "mute.x", "data": 1})
	c.expectErr("next", "timeout")
	waitMetrics(t, e.metrics, map[string]float64{
		"wsbridge_acked_publishes_in_flight":           0,
		`wsbridge_inflight_refusals_total{kind="ack"}`: 0,
	})
}

// stuckClient opens /ws with a small receive buffer, sends subs, and never
// reads again.
func stuckClient(t *testing.T, addr, token string, subs []string) *testutil.RawConn {
	t.Helper()
	r := testutil.Dial(t, addr, 4096)
	r.Upgrade("/ws?token=" + token)
	r.ExpectText(`{"op":"hello"`)
	for _, s := range subs {
		r.SendText(s)
	}
	return r
}

// fillStream stores n messages of about size bytes on subject.
func fillStream(t *testing.T, js jetstream.JetStream, subject string, n, size int) {
	t.Helper()
	data := []byte(`"` + strings.Repeat("x", size) + `"`)
	for i := 0; i < n; {
		for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
			if _, err := js.PublishAsync(subject, data); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(wait):
			t.Fatal("publishing the history timed out")
		}
	}
}

// catchUpAll subscribes c from:"all" and reads n messages of the stream,
// failing unless they all arrive, in order, within d.
func catchUpAll(t *testing.T, c *wsClient, subject string, n int, d time.Duration) {
	t.Helper()
	start := time.Now()
	c.send(map[string]any{"op": "sub", "id": "b", "subject": subject, "from": "all"})
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var next uint64 = 1
	okSeen := false
	for next <= uint64(n) {
		f, err := c.read(ctx)
		if err != nil {
			t.Fatalf("after %v, %d of %d messages (ok seen: %v): %v", time.Since(start), next-1, n, okSeen, err)
		}
		switch {
		case f.Op == "ok" && f.Ref == "b":
			okSeen = true
		case f.Op == "msg" && f.Sid == "b":
			if f.Seq != next {
				t.Fatalf("seq %d, want %d", f.Seq, next)
			}
			next++
		case f.Op == "status":
		default:
			t.Fatalf("got %.200s", f.raw)
		}
	}
	t.Logf("%d messages in %v", n, time.Since(start))
}

// TestCatchupIsolation: client A opens 64 from:"all" subscriptions on a
// 20,000-message stream and stops reading; client B's from:"all" still
// receives all 20,000 within 10 s.
func TestCatchupIsolation(t *testing.T) {
	e := startCaps(t, nil)
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "DEEP", Subjects: []string{"deep.>"}}); err != nil {
		t.Fatal(err)
	}
	fillStream(t, e.js, "deep.x", 20000, 200)

	t.Run("64 subscriptions, default caps", func(t *testing.T) {
		var subs []string
		for i := range 64 {
			subs = append(subs, `{"op":"sub","id":"a`+itoa(i)+`","subject":"deep.>","from":"all"}`)
		}
		stuckClient(t, e.b.Addr, e.tok, subs)
		// A's subscriptions are all in place before B starts.
		waitMetrics(t, e.metrics, map[string]float64{"wsbridge_subscriptions": 64})
		catchUpAll(t, connectAs(t, e.b.Addr, e.tok), "deep.>", 20000, 10*time.Second)
	})
}

// TestCatchupSlotReleased: with the per-connection cap lifted, one client
// that stops reading can start every node-wide catch-up (256), yet a
// catch-up waiting for room in its queue gives its node-wide slot back, so
// another client's catch-up runs.
func TestCatchupSlotReleased(t *testing.T) {
	e := startCaps(t, func(c *bridge.Config) { c.MaxCatchupsPerConn = 1000; c.MaxSubscriptions = 300 })
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "DEEP", Subjects: []string{"deep.>"}}); err != nil {
		t.Fatal(err)
	}
	fillStream(t, e.js, "deep.x", 5000, 200)
	var subs []string
	for i := range 260 {
		subs = append(subs, `{"op":"sub","id":"a`+itoa(i)+`","subject":"deep.>","from":"all"}`)
	}
	stuckClient(t, e.b.Addr, e.tok, subs)
	waitMetrics(t, e.metrics, map[string]float64{atLeast + "wsbridge_jetstream_catchups_total": 255})
	catchUpAll(t, connectAs(t, e.b.Addr, e.tok), "deep.>", 5000, wait)
}

// TestCloseCodeLabelBound: a peer's close code outside 1000–1015 is
// counted under code="other", never as a label of its own.
func TestCloseCodeLabelBound(t *testing.T) {
	e := startCaps(t, nil)
	for _, code := range []websocket.StatusCode{4321, 3999, 4000} {
		c := connectAs(t, e.b.Addr, e.tok)
		_ = c.c.Close(code, "mine")
	}
	c := connectAs(t, e.b.Addr, e.tok)
	_ = c.c.Close(websocket.StatusGoingAway, "bye")
	m := waitMetrics(t, e.metrics, map[string]float64{
		`wsbridge_connections_closed_total{code="other"}`: 3,
		`wsbridge_connections_closed_total{code="1001"}`:  1,
	})
	for series := range m {
		if strings.HasPrefix(series, "wsbridge_connections_closed_total{") {
			code := strings.TrimSuffix(strings.TrimPrefix(series, `wsbridge_connections_closed_total{code="`), `"}`)
			if code != "other" && (len(code) != 4 || code < "1000" || code > "1015") {
				t.Errorf("label %s: a peer's code became a label value", series)
			}
		}
	}
}
