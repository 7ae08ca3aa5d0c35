package integration

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// jsEnv is a JetStream-enabled nats-server with stream ORDERS on
// orders.>, a service connection and a bridge.
type jsEnv struct {
	t      *testing.T
	ns     *natsserver.Server
	js     jetstream.JetStream
	stream jetstream.Stream
	b      *testBridge
}

func startJS(t *testing.T, mutate func(*bridge.Config)) *jsEnv {
	t.Helper()
	ns := testutil.StartNATS(t, true, nil)
	e := &jsEnv{t: t, ns: ns}
	e.connect()
	e.b = startBridge(t, ns, mutate)
	return e
}

// connect (re)connects the service side and makes sure ORDERS exists.
func (e *jsEnv) connect() {
	e.t.Helper()
	js, err := jetstream.New(testutil.NATSClient(e.t, e.ns))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.js, e.stream = js, st
}

// publish stores n messages on subject, {"i":from}…, and returns the last
// sequence.
func (e *jsEnv) publish(subject string, from, n int) uint64 {
	e.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	var last uint64
	for i := from; i < from+n; i++ {
		ack, err := e.js.Publish(ctx, subject, fmt.Appendf(nil, `{"i":%d}`, i))
		if err != nil {
			e.t.Fatalf("publish %d: %v", i, err)
		}
		last = ack.Sequence
	}
	return last
}

func (e *jsEnv) consumers() int {
	e.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	info, err := e.stream.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Consumers
}

func (e *jsEnv) waitNoConsumers() {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for e.consumers() != 0 {
		if time.Now().After(deadline) {
			ctx, cancel := ctxWait()
			defer cancel()
			var left []string
			for ci := range e.stream.ListConsumers(ctx).Info() {
				left = append(left, fmt.Sprintf("%s(start %d, %v, delivered %d, pending %d)", ci.Name, ci.Config.OptStartSeq, ci.Config.DeliverPolicy, ci.Delivered.Stream, ci.NumPending))
			}
			e.t.Fatalf("consumers left on ORDERS: %v", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jsSub subscribes with from and waits for the ok.
func (w *wsClient) jsSub(id, subject string, from any) {
	w.t.Helper()
	w.send(map[string]any{"op": "sub", "id": id, "subject": subject, "from": from})
	w.expect("ok", id)
}

// expectSeqs reads msgs for sid and checks their sequences, in order.
func (w *wsClient) expectSeqs(sid string, seqs ...uint64) {
	w.t.Helper()
	for _, want := range seqs {
		f := w.expect("msg", "")
		if f.Sid != sid || f.Seq != want {
			w.t.Fatalf("got %s, want sid %s seq %d", f.raw, sid, want)
		}
	}
}

// expectRange reads msgs with sequences from..to, in order.
func (w *wsClient) expectRange(sid string, from, to uint64) {
	w.t.Helper()
	for s := from; s <= to; s++ {
		w.expectSeqs(sid, s)
	}
}

// quiet checks that nothing but the pong arrives.
func (w *wsClient) quiet() {
	w.t.Helper()
	w.send(`{"op":"ping","id":"quiet"}`)
	if f := w.recv(); f.Op != "pong" {
		w.t.Fatalf("unexpected %s", f.raw)
	}
}

func TestJetStreamFrom(t *testing.T) {
	cases := []struct {
		name string
		from func(e *jsEnv) any
		want []uint64 // of the 5 stored before the sub
	}{
		{"new", func(*jsEnv) any { return "new" }, nil},
		{"all", func(*jsEnv) any { return "all" }, []uint64{1, 2, 3, 4, 5}},
		{"last", func(*jsEnv) any { return "last" }, []uint64{5}},
		{"after", func(*jsEnv) any { return map[string]any{"after": 3} }, []uint64{4, 5}},
		{"after the end", func(*jsEnv) any { return map[string]any{"after": 5} }, nil},
		{"time", func(e *jsEnv) any {
			ctx, cancel := ctxWait()
			defer cancel()
			m, err := e.stream.GetMsg(ctx, 4)
			if err != nil {
				t.Fatal(err)
			}
			return map[string]any{"time": m.Time.Format(time.RFC3339Nano)}
		}, []uint64{4, 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startJS(t, nil)
			e.publish("orders.x", 1, 5)
			c := dial(t, e.b.Addr)
			c.jsSub("s1", "orders.>", tc.from(e))
			c.expectSeqs("s1", tc.want...)
			e.publish("orders.y", 6, 2)
			f := c.expect("msg", "")
			if f.Sid != "s1" || f.Seq != 6 || f.Subject != "orders.y" || string(f.Data) != `{"i":6}` || f.Reply != "" {
				t.Fatalf("live msg = %s", f.raw)
			}
			c.expectSeqs("s1", 7)
			c.quiet()
		})
	}
}

// TestJetStreamWildcardFilter: a pattern narrower than the stream gets
// only its matches, with their stream sequences.
func TestJetStreamWildcardFilter(t *testing.T) {
	e := startJS(t, nil)
	for i := range 6 {
		e.publish([]string{"orders.a.1", "orders.b.1"}[i%2], i, 1) // a at odd seqs
	}
	c := dial(t, e.b.Addr)
	c.jsSub("a", "orders.a.*", "all")
	c.expectSeqs("a", 1, 3, 5)
	e.publish("orders.b.2", 6, 1)
	e.publish("orders.a.2", 7, 1)
	c.expectSeqs("a", 8)
	c.quiet()
}

func TestJetStreamSubErrors(t *testing.T) {
	e := startJS(t, nil)
	c := dial(t, e.b.Addr)
	cases := []struct {
		name, cmd, code, mention string
	}{
		{"no stream", `{"op":"sub","id":"s","subject":"payments.>","from":"all"}`, "no_stream", ""},
		{"no stream covers the pattern", `{"op":"sub","id":"s","subject":">","from":"all"}`, "no_stream", ""},
		{"bad word", `{"op":"sub","id":"s","subject":"orders.>","from":"first"}`, "bad_request", ""},
		{"bad after", `{"op":"sub","id":"s","subject":"orders.>","from":{"after":-1}}`, "bad_request", ""},
		{"bad time", `{"op":"sub","id":"s","subject":"orders.>","from":{"time":"yesterday"}}`, "bad_request", ""},
		{"null", `{"op":"sub","id":"s","subject":"orders.>","from":null}`, "bad_request", ""},
		{"queue", `{"op":"sub","id":"s","subject":"orders.>","queue":"q","from":"all"}`, "bad_request", "queue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.cmd)
			f := c.expectErr("s", tc.code)
			if !strings.Contains(f.Message, tc.mention) {
				t.Fatalf("message %q does not mention %q", f.Message, tc.mention)
			}
		})
	}
	// A failed sub leaves its id free.
	c.jsSub("s", "orders.>", "new")
	c.quiet()
}

// TestJetStreamCatchUpToLive: messages stored while a client catches up
// arrive once, in order, right after the history.
func TestJetStreamCatchUpToLive(t *testing.T) {
	e := startJS(t, nil)
	const before, during = 2000, 2000
	e.publish("orders.x", 1, before)
	c := dial(t, e.b.Addr)
	c.jsSub("s1", "orders.>", "all")
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := ctxWait()
		defer cancel()
		for i := before + 1; i <= before+during; i++ {
			if _, err := e.js.Publish(ctx, "orders.x", fmt.Appendf(nil, `{"i":%d}`, i)); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
		}
	}()
	for s := uint64(1); s <= before+during; s++ {
		f := c.expect("msg", "")
		if f.Seq != s || string(f.Data) != fmt.Sprintf(`{"i":%d}`, s) {
			t.Fatalf("message %d: got %s", s, f.raw)
		}
	}
	<-done
	c.quiet()
}

// TestJetStreamCatchUpBoundaryMoves: a client that reads slowly makes its
// catch-up pause while live messages pile up beyond what the bridge
// buffers for it; the catch-up then runs on to the feed's new position,
// still with no gap and no duplicate.
func TestJetStreamCatchUpBoundaryMoves(t *testing.T) {
	e := startJS(t, func(c *bridge.Config) { c.WriteBuffer = 64 << 10 })
	// ~10 MB of history: more than the socket buffers hold.
	const before, during = 5000, 300
	pad := strings.Repeat("x", 2000)
	ctx, cancel := ctxWait()
	defer cancel()
	// In batches well under nats.go's limit of outstanding async
	// publishes (4,000 by default: past it PublishAsync stalls, then
	// fails), each acknowledged before the next.
	const batch = 500
	for lo := 1; lo <= before; lo += batch {
		acks := make([]jetstream.PubAckFuture, 0, batch)
		for i := lo; i < lo+batch && i <= before; i++ {
			f, err := e.js.PublishAsync("orders.x", fmt.Appendf(nil, `{"i":%d,"p":"%s"}`, i, pad))
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish of %s: %v", f.Msg().Data[:12], err)
			case <-ctx.Done():
				t.Fatal("history not stored")
			}
		}
	}
	c := dial(t, e.b.Addr)
	c.jsSub("s1", "orders.>", "all")
	// The client does not read yet: the catch-up stalls on its queue.
	for i := before + 1; i <= before+during; i++ {
		if _, err := e.js.Publish(ctx, "orders.y", fmt.Appendf(nil, `{"i":%d,"p":"%s"}`, i, pad)); err != nil {
			t.Fatal(err)
		}
	}
	for s := uint64(1); s <= before+during; s++ {
		f := c.expect("msg", "")
		if want := fmt.Sprintf(`{"i":%d,`, s); f.Seq != s || !strings.HasPrefix(string(f.Data), want) {
			t.Fatalf("message %d: got seq %d %.20s", s, f.Seq, f.Data)
		}
	}
	c.quiet()
}

// TestJetStreamResume: a client that reconnects with after=lastSeq gets
// exactly what it missed, then the live tail.
func TestJetStreamResume(t *testing.T) {
	e := startJS(t, nil)
	e.publish("orders.x", 1, 10)
	c := dial(t, e.b.Addr)
	c.jsSub("s1", "orders.>", "all")
	c.expectRange("s1", 1, 10)
	c.c.Close(1000, "bye")
	e.waitNoConsumers()
	e.publish("orders.x", 11, 5) // while away

	c2 := dial(t, e.b.Addr)
	c2.jsSub("s1", "orders.>", map[string]any{"after": 10})
	c2.expectRange("s1", 11, 15)
	e.publish("orders.x", 16, 2)
	c2.expectRange("s1", 16, 17)
	c2.quiet()
}

// TestJetStreamManyResumes: 200 clients resume at once from different
// sequences while new messages keep coming.
func TestJetStreamManyResumes(t *testing.T) {
	e := startJS(t, nil)
	const stored, clients, live = 500, 200, 20
	e.publish("orders.x", 1, stored)
	var wg sync.WaitGroup
	ready := make(chan struct{}, clients)
	start := make(chan struct{})
	for i := range clients {
		c := dial(t, e.b.Addr)
		after := uint64(i * stored / clients)
		wg.Go(func() {
			c.send(map[string]any{"op": "sub", "id": "s", "subject": "orders.>", "from": map[string]any{"after": after}})
			f, err := c.tryRecv(wait)
			if err != nil || f.Op != "ok" {
				t.Errorf("client %d: got %s (%v), want ok", i, f.raw, err)
				ready <- struct{}{}
				return
			}
			ready <- struct{}{}
			<-start
			for s := after + 1; s <= stored+live; s++ {
				f, err := c.tryRecv(wait)
				if err != nil || f.Op != "msg" || f.Seq != s {
					t.Errorf("client %d (after %d): got %s (%v), want seq %d", i, after, f.raw, err, s)
					return
				}
			}
		})
	}
	for range clients {
		<-ready
	}
	close(start)
	e.publish("orders.y", stored+1, live)
	wg.Wait()
}

func TestJetStreamAckedPublish(t *testing.T) {
	e := startJS(t, nil)
	c := dial(t, e.b.Addr)
	c.send(`{"op":"pub","id":"p1","subject":"orders.new","data":{"id":7},"ack":true}`)
	f := c.expect("ok", "p1")
	if f.Stream != "ORDERS" || f.Seq != 1 {
		t.Fatalf("got %s, want stream ORDERS seq 1", f.raw)
	}

	// Re-sent after a reconnect: the stream deduplicates by msg_id.
	pub := `{"op":"pub","id":"p2","subject":"orders.new","data":{"id":8},"ack":true,"msg_id":"order-8"}`
	c.send(pub)
	first := c.expect("ok", "p2")
	c2 := dial(t, e.b.Addr)
	c2.send(pub)
	again := c2.expect("ok", "p2")
	if first.Seq != 2 || again.Seq != first.Seq || !strings.Contains(string(again.raw), `"duplicate":true`) ||
		strings.Contains(string(first.raw), "duplicate") {
		t.Fatalf("first %s, re-send %s: want the same seq, the second marked duplicate", first.raw, again.raw)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	info, err := e.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2", info.State.Msgs)
	}

	c.send(`{"op":"pub","id":"p3","subject":"payments.new","data":1,"ack":true}`)
	c.expectErr("p3", "no_stream")
	c.send(`{"op":"pub","subject":"orders.new","data":1,"ack":true}`)
	c.expectErr("", "bad_request")
}

// TestJetStreamConsumersCleanedUp: the bridge leaves no consumers behind
// after unsub, disconnect or shutdown.
func TestJetStreamConsumersCleanedUp(t *testing.T) {
	e := startJS(t, nil)
	e.publish("orders.x", 1, 3)
	c := dial(t, e.b.Addr)
	c.jsSub("a", "orders.>", "all")
	c.expectRange("a", 1, 3)
	c.jsSub("b", "orders.x", "new")
	testutil.Eventually(t, "a feed consumer while subscribed", func() bool { return e.consumers() > 0 })
	c.send(`{"op":"unsub","id":"a"}`)
	c.expect("ok", "a")
	c.send(`{"op":"unsub","id":"b"}`)
	c.expect("ok", "b")
	e.waitNoConsumers()

	c.jsSub("a", "orders.>", "all")
	c.expectRange("a", 1, 3)
	c2 := dial(t, e.b.Addr)
	c2.jsSub("a", "orders.>", map[string]any{"after": 1})
	c2.expectRange("a", 2, 3)
	c.c.Close(1000, "")
	c2.c.Close(1000, "")
	e.waitNoConsumers()

	// Shutdown with subscriptions open, one of them mid catch-up.
	e.publish("orders.x", 4, 3000)
	c3 := dial(t, e.b.Addr)
	c3.jsSub("a", "orders.>", "new")
	c4 := dial(t, e.b.Addr)
	c4.jsSub("a", "orders.>", "all")
	ctx, cancel := ctxWait()
	defer cancel()
	if err := e.b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitNoConsumers()
}

// TestJetStreamNATSRestart: a stream subscription keeps delivering, with
// no gap and no duplicate, across a nats-server restart on the same port
// and store.
func TestJetStreamNATSRestart(t *testing.T) {
	dir := t.TempDir()
	run := func(port int) *natsserver.Server {
		return testutil.StartNATS(t, true, func(o *natsserver.Options) { o.Port, o.StoreDir = port, dir })
	}
	ns := run(-1)
	port := ns.Addr().(*net.TCPAddr).Port
	e := &jsEnv{t: t, ns: ns}
	e.connect()
	e.b = startBridge(t, ns, nil)
	e.publish("orders.x", 1, 5)
	c := dial(t, e.b.Addr)
	c.jsSub("live", "orders.>", "all")
	c.expectRange("live", 1, 5)

	ns.Shutdown()
	ns.WaitForShutdown()
	testutil.Eventually(t, "bridge notices", func() bool { return !e.b.NATS().IsConnected() })
	e.ns = run(port)
	testutil.Eventually(t, "bridge reconnects", func() bool { return e.b.NATS().IsConnected() })
	e.connect()
	e.publish("orders.x", 6, 5)
	c.expectRange("live", 6, 10)

	// A new client resuming right after the restart.
	c2 := dial(t, e.b.Addr)
	c2.jsSub("r", "orders.>", map[string]any{"after": 7})
	c2.expectRange("r", 8, 10)
	e.publish("orders.x", 11, 1)
	c.expectSeqs("live", 11)
	c2.expectSeqs("r", 11)
	c.quiet()
}

// TestJetStreamNotEnabled: against a NATS without JetStream, JetStream
// operations fail with no_stream at once, not after the request timeout.
func TestJetStreamNotEnabled(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.RequestTimeout = time.Minute })
	c := dial(t, b.Addr)
	c.send(`{"op":"sub","id":"s","subject":"orders.>","from":"all"}`)
	c.expectErr("s", "no_stream")
	c.send(`{"op":"pub","id":"p","subject":"orders.x","data":1,"ack":true}`)
	c.expectErr("p", "no_stream")
	// The node's own requests still work.
	c.send(`{"op":"req","id":"r","subject":"nobody.home","data":1}`)
	c.expectErr("r", "no_responders")
}
