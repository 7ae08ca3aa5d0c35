package integration

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/gobwas/ws"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
	"wsbridge/netpoll"
)

// TestInterestAggregation: 500 clients on one subject cost NATS one
// subscription, and none once they leave.
func TestInterestAggregation(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	base := b.NATS().NumSubscriptions() // the request inbox

	const n = 500
	clients := make([]*testutil.RawConn, n)
	for i := range clients {
		c := testutil.DialWS(t, b.Addr, "/ws")
		c.ExpectText(`{"op":"hello"`)
		c.SendText(`{"op":"sub","id":"p","subject":"prices.EURUSD"}`)
		c.ExpectText(`{"op":"ok","ref":"p"}`)
		clients[i] = c
	}
	if got := b.NATS().NumSubscriptions() - base; got != 1 {
		t.Fatalf("bridge holds %d NATS subscriptions for one subject, want 1", got)
	}
	if got := natsSubsOf(t, ns, "prices.EURUSD"); got != 1 {
		t.Fatalf("nats-server sees %d subscriptions on prices.EURUSD, want 1", got)
	}
	if err := svc.Publish("prices.EURUSD", []byte(`1.0842`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.ExpectText(`{"op":"msg","sid":"p","subject":"prices.EURUSD","data":1.0842}`)
	}
	for _, c := range clients {
		_ = c.Close()
	}
	testutil.Eventually(t, "all connections gone", func() bool { return b.Stats().Connections == 0 })
	testutil.Eventually(t, "NATS subscription removed", func() bool { return natsSubsOf(t, ns, "prices.EURUSD") == 0 })
	if got := b.NATS().NumSubscriptions(); got != base {
		t.Fatalf("bridge still holds %d subscriptions", got-base)
	}
}

// TestIdleConnectionsHoldNoGoroutine: goroutines do not grow with 2,000 idle
// subscribed connections (the clients are raw sockets, so every goroutine
// counted is the bridge's).
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if netpoll.Portable {
		t.Skip("portable backend: a reader and a writer goroutine per connection by design (README.md, Portable backend)")
	}
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	warm := testutil.DialWS(t, b.Addr, "/ws")
	warm.ExpectText(`{"op":"hello"`)
	before := runtime.NumGoroutine()

	const n = 2000
	for i := range n {
		c := testutil.DialWS(t, b.Addr, "/ws")
		c.ExpectText(`{"op":"hello"`)
		c.SendText(fmt.Sprintf(`{"op":"sub","id":"s","subject":"idle.%d"}`, i%10))
		c.ExpectText(`{"op":"ok"`)
	}
	if got := b.Stats().Connections; got != n+1 {
		t.Fatalf("%d connections, want %d", got, n+1)
	}
	after := runtime.NumGoroutine()
	// NATS adds one delivery goroutine per distinct subject (10 here),
	// never one per connection.
	if after-before > 20 {
		t.Fatalf("goroutines grew from %d to %d with %d idle connections", before, after, n)
	}
}

// TestStalledClientsDoNotDelayLive: clients that send half a frame, or
// trickle a frame byte by byte, and stall never hold a worker.
func TestStalledClientsDoNotDelayLive(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.Workers = 2 })
	frame := testutil.MaskedFrame(true, ws.OpText, []byte(`{"op":"ping","id":"stalled"}`))
	for i := range 200 {
		c := testutil.DialWS(t, b.Addr, "/ws")
		c.ExpectText(`{"op":"hello"`)
		switch i % 3 {
		case 0:
			c.Write(frame[:1]) // half a header
		case 1:
			c.Write(frame[:8]) // header and part of the payload
		default:
			c.Write(frame[:len(frame)-1]) // all but the last byte
		}
	}
	live := dial(t, b.Addr)
	for i := range 50 {
		id := fmt.Sprint("live", i)
		live.send(`{"op":"ping","id":"` + id + `"}`)
		live.expect("pong", id)
	}
	// A trickler finishes its frame one byte per write and gets its answer.
	tr := testutil.DialWS(t, b.Addr, "/ws")
	tr.ExpectText(`{"op":"hello"`)
	for i := range frame {
		tr.Write(frame[i : i+1])
		live.send(`{"op":"ping","id":"between"}`)
		live.expect("pong", "between")
	}
	tr.ExpectText(`{"op":"pong","ref":"stalled"}`)
}

// natsSubsOf counts the server's subscriptions whose subject is exactly
// subject (a pattern counts as itself).
func natsSubsOf(t *testing.T, ns *natsserver.Server, subject string) int {
	t.Helper()
	sz, err := ns.Subsz(&natsserver.SubszOptions{Subscriptions: true, Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range sz.Subs {
		if d.Subject == subject {
			n++
		}
	}
	return n
}
