package integration

import (
	"fmt"
	"runtime"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"wsbridge/bridge"
)

// TestInterestAggregation: 500 clients on one subject cost NATS one
// subscription, and none once they leave.
func TestInterestAggregation(t *testing.T) {
	ns := startNATS(t, false)
	b := startBridge(t, ns, nil)
	svc := natsClient(t, ns)
	base := b.NATS().NumSubscriptions() // the request inbox

	const n = 500
	clients := make([]*rawConn, n)
	for i := range clients {
		c := rawDial(t, b.Addr, "/ws")
		c.expectText(`{"op":"hello"`)
		c.sendText(`{"op":"sub","id":"p","subject":"prices.EURUSD"}`)
		c.expectText(`{"op":"ok","ref":"p"}`)
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
		c.expectText(`{"op":"msg","sid":"p","subject":"prices.EURUSD","data":1.0842}`)
	}
	for _, c := range clients {
		c.nc.Close()
	}
	eventually(t, "all connections gone", func() bool { return b.Stats().Connections == 0 })
	eventually(t, "NATS subscription removed", func() bool { return natsSubsOf(t, ns, "prices.EURUSD") == 0 })
	if got := b.NATS().NumSubscriptions(); got != base {
		t.Fatalf("bridge still holds %d subscriptions", got-base)
	}
}

// TestIdleConnectionsHoldNoGoroutine: goroutines do not grow with 2,000 idle
// subscribed connections (the clients are raw sockets, so every goroutine
// counted is the bridge's).
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	ns := startNATS(t, false)
	b := startBridge(t, ns, nil)
	warm := rawDial(t, b.Addr, "/ws")
	warm.expectText(`{"op":"hello"`)
	before := runtime.NumGoroutine()

	const n = 2000
	for i := range n {
		c := rawDial(t, b.Addr, "/ws")
		c.expectText(`{"op":"hello"`)
		c.sendText(fmt.Sprintf(`{"op":"sub","id":"s","subject":"idle.%d"}`, i%10))
		c.expectText(`{"op":"ok"`)
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
	ns := startNATS(t, false)
	b := startBridge(t, ns, func(c *bridge.Config) { c.Workers = 2 })
	frame := maskedFrame(true, 0x1, []byte(`{"op":"ping","id":"stalled"}`))
	for i := range 200 {
		c := rawDial(t, b.Addr, "/ws")
		c.expectText(`{"op":"hello"`)
		switch i % 3 {
		case 0:
			c.write(frame[:1]) // half a header
		case 1:
			c.write(frame[:8]) // header and part of the payload
		default:
			c.write(frame[:len(frame)-1]) // all but the last byte
		}
	}
	live := dial(t, b.Addr)
	for i := range 50 {
		id := fmt.Sprint("live", i)
		live.send(`{"op":"ping","id":"` + id + `"}`)
		live.expect("pong", id)
	}
	// A trickler finishes its frame one byte per write and gets its answer.
	tr := rawDial(t, b.Addr, "/ws")
	tr.expectText(`{"op":"hello"`)
	for i := range frame {
		tr.write(frame[i : i+1])
		live.send(`{"op":"ping","id":"between"}`)
		live.expect("pong", "between")
	}
	tr.expectText(`{"op":"pong","ref":"stalled"}`)
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
