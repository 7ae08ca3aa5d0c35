package integration

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// dialFrom dials u from the local address ip.
func dialFrom(ip string) *websocket.DialOptions {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: wait}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
}

func TestLimitMaxConnections(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.MaxConnections = 3 })
	ws := "ws://" + b.Addr + "/ws"
	var open []*wsClient
	for range 3 {
		open = append(open, mustConnect(t, ws, nil))
	}
	expectRefused(t, ws, nil, http.StatusServiceUnavailable, "")
	if got := b.Stats().Refusals[http.StatusServiceUnavailable]; got != 1 {
		t.Fatalf("Refusals[503] = %d, want 1", got)
	}
	open[0].c.Close(websocket.StatusNormalClosure, "bye")
	testutil.Eventually(t, "a slot to free", func() bool { return tryConnect(t, ws, nil) })
}

func TestLimitMaxConnectionsPerIP(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.MaxConnectionsPerIP = 2 })
	ws := "ws://" + b.Addr + "/ws"
	first := mustConnect(t, ws, dialFrom("127.0.0.1"))
	mustConnect(t, ws, dialFrom("127.0.0.1"))
	expectRefused(t, ws, dialFrom("127.0.0.1"), http.StatusTooManyRequests, "")
	other := mustConnect(t, ws, dialFrom("127.0.0.2"))
	other.send(`{"op":"ping","id":"p"}`)
	other.expect("pong", "p")
	if got := b.Stats().Refusals[http.StatusTooManyRequests]; got != 1 {
		t.Fatalf("Refusals[429] = %d, want 1", got)
	}
	first.c.Close(websocket.StatusNormalClosure, "bye")
	testutil.Eventually(t, "the address's slot to free", func() bool { return tryConnect(t, ws, dialFrom("127.0.0.1")) })
}

func TestLimitMaxSubscriptions(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.MaxSubscriptions = 2 })
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.subscribe("s1", "a", "")
	c.subscribe("s2", "b", "q")
	c.send(`{"op":"sub","id":"s3","subject":"c"}`)
	c.expectErr("s3", "too_many_subscriptions")
	c.send(`{"op":"unsub","id":"s1"}`)
	c.expect("ok", "s1")
	c.subscribe("s3", "c", "")
}

func TestRateLimitBurstGetsErrors(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	svc := testutil.NATSClient(t, ns)
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.RateLimit, c.RateBurst = 5, 5 })
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.subscribe("s", "rl.x", "") // takes one token
	for i := range 20 {
		c.send(map[string]any{"op": "ping", "id": "p" + itoa(i)})
	}
	pongs, limited := 0, 0
	for range 20 {
		f := c.recv()
		switch {
		case f.Op == "pong":
			pongs++
		case f.Op == "err" && f.Code == "rate_limited" && f.Ref == "" && f.Message != "":
			limited++
		default:
			t.Fatalf("got %s", f.raw)
		}
	}
	if pongs != 4 || limited != 16 {
		t.Fatalf("%d pongs and %d rate_limited, want 4 and 16", pongs, limited)
	}
	// Outbound traffic is not limited and the connection is still open.
	if err := svc.Publish("rl.x", []byte(`"after"`)); err != nil {
		t.Fatal(err)
	}
	f, err := c.tryRecv(wait)
	if err != nil {
		t.Fatalf("connection closed after a burst of 20: %v", err)
	}
	if f.Op != "msg" || f.Subject != "rl.x" {
		t.Fatalf("got %s", f.raw)
	}
}

func TestRateLimitFloodCloses1008(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.RateLimit, c.RateBurst = 5, 5 })
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	ctx, cancel := ctxWait()
	defer cancel()
	for i := range 200 {
		if err := c.c.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","id":"p`+itoa(i)+`"}`)); err != nil {
			break // the bridge already closed us
		}
	}
	if code, reason := c.closeStatus(); code != websocket.StatusPolicyViolation || !strings.Contains(reason, "rate") {
		t.Fatalf("close %d %q, want 1008 rate limit", code, reason)
	}
	testutil.Eventually(t, "the close to be counted", func() bool { return b.Stats().Closes[1008] >= 1 })
}

func TestLimitStatsCountRefusals(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), []string{"https://app.example.com"}, func(c *bridge.Config) { c.MaxConnectionsPerIP = 1 })
	ws := "ws://" + b.Addr + "/ws"
	tok := userToken(t, "alice", &perms{Pub: permDir{Allow: []string{"a"}}, Sub: permDir{Allow: []string{"a"}}})
	expectRefused(t, ws, nil, http.StatusUnauthorized, "")
	expectRefused(t, ws, bearer("garbage"), http.StatusUnauthorized, "")
	expectRefused(t, ws, withHeader("Origin", "https://evil.test", "Authorization", "Bearer "+tok), http.StatusForbidden, tok)
	expectRefused(t, "ws://"+b.Addr+"/ws/raw?sub=b&token="+tok, nil, http.StatusForbidden, tok)
	expectRefused(t, "ws://"+b.Addr+"/ws/raw?sub=a..b&token="+tok, nil, http.StatusBadRequest, tok)
	connectAs(t, b.Addr, tok)
	expectRefused(t, ws, bearer(tok), http.StatusTooManyRequests, tok)
	want := map[int]uint64{400: 1, 401: 2, 403: 2, 429: 1}
	got := b.Stats().Refusals
	if len(got) != len(want) {
		t.Fatalf("Refusals = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Refusals = %v, want %v", got, want)
		}
	}
	if s := b.Stats(); s.Connections != 1 {
		t.Fatalf("Connections = %d, want 1", s.Connections)
	}
}

// A client that sends a message and closes the socket at once must give
// its slot back promptly: epoll is edge-triggered, so the data and the FIN
// can come as one event.
func TestLimitSlotFreedWhenClientSendsAndQuits(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.MaxConnectionsPerIP = 1 })
	r := testutil.DialWS(t, b.Addr, "/ws")
	r.ExpectText(`{"op":"hello"`)
	r.Write(testutil.MaskedFrame(true, ws.OpText, []byte(`{"op":"pub","subject":"bye","data":1}`)))
	_ = r.Close()
	// Missing the FIN would hold the slot until the heartbeat (twice the
	// 30 s PingInterval), far beyond testutil.Wait.
	testutil.Eventually(t, "the slot of a client that sent its last message and hung up", func() bool { return b.Stats().Connections == 0 })
	mustConnect(t, "ws://"+b.Addr+"/ws", nil)
}
