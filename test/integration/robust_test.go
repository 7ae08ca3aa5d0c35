package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// TestSlowConsumerIsCut: a client that stops reading is closed with 1008
// "slow consumer" while a fast client on the same subject gets everything,
// in order.
func TestSlowConsumerIsCut(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.WriteBuffer = 256 << 10 })
	svc := testutil.NATSClient(t, ns)

	slow := testutil.DialWS(t, b.Addr, "/ws")
	slow.ExpectText(`{"op":"hello"`)
	slow.SendText(`{"op":"sub","id":"s","subject":"firehose"}`)
	slow.ExpectText(`{"op":"ok"`)
	fast := dial(t, b.Addr)
	fast.subscribe("s", "firehose", "")

	// ~8 MB (beyond the 4 MB a loopback send buffer can grow to) in batches paced by the fast client, so it is never far
	// behind while the slow one falls beyond its queue and socket buffers.
	const batches, per = 80, 100
	payload := strings.Repeat("x", 1000)
	for bi := range batches {
		for i := bi * per; i < (bi+1)*per; i++ {
			if err := svc.Publish("firehose", fmt.Appendf(nil, `{"i":%d,"p":"%s"}`, i, payload)); err != nil {
				t.Fatal(err)
			}
		}
		for i := bi * per; i < (bi+1)*per; i++ {
			f := fast.expect("msg", "")
			if want := fmt.Sprintf(`{"i":%d,`, i); !strings.HasPrefix(string(f.Data), want) {
				t.Fatalf("fast client: message %d is %.20s", i, f.Data)
			}
		}
	}
	testutil.Eventually(t, "slow consumer closed", func() bool { return b.Stats().Closes[1008] == 1 })
	// The slow client finds whole frames and then the close.
	for {
		f := slow.ReadFrame()
		if f.Op == ws.OpClose {
			if code := int(f.Payload[0])<<8 | int(f.Payload[1]); code != 1008 || string(f.Payload[2:]) != "slow consumer" {
				t.Fatalf("close %d %q, want 1008 slow consumer", code, f.Payload[2:])
			}
			break
		}
		if f.Op != ws.OpText {
			t.Fatalf("unexpected frame %v", f)
		}
	}
}

// TestNATSRestart: subscriptions deliver again after nats-server restarts;
// while it is down pub fails with unavailable and /readyz is 503.
func TestNATSRestart(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	port := ns.Addr().(*net.TCPAddr).Port
	b := startBridge(t, ns, nil)
	c := dial(t, b.Addr)
	c.subscribe("s", "restart.>", "")

	ns.Shutdown()
	ns.WaitForShutdown()
	if f := c.expect("status", ""); f.NATS != "down" {
		t.Fatalf("got %s, want status down", f.raw)
	}
	// The status frame follows the state /readyz reads.
	if code := httpStatus(t, b.Addr, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d while NATS is down, want 503", code)
	}
	c.send(`{"op":"pub","id":"p","subject":"restart.x","data":1}`)
	c.expectErr("p", "unavailable")
	c.send(`{"op":"req","id":"r","subject":"restart.x","data":1}`)
	c.expectErr("r", "unavailable")

	ns2 := testutil.StartNATS(t, false, func(o *natsserver.Options) { o.Port = port })
	if f := c.expect("status", ""); f.NATS != "up" {
		t.Fatalf("got %s, want status up", f.raw)
	}
	if code := httpStatus(t, b.Addr, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d after reconnect", code)
	}
	testutil.Eventually(t, "subscription restored on the new server", func() bool { return natsSubsOf(t, ns2, "restart.>") == 1 })
	svc := testutil.NATSClient(t, ns2)
	if err := svc.Publish("restart.x", []byte(`"back"`)); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("msg", ""); string(f.Data) != `"back"` {
		t.Fatalf("got %s", f.raw)
	}
}

// TestReservedSubjectsNeverDelivered: a client on ">" sees neither other
// clients' request replies nor $-prefixed traffic.
func TestReservedSubjectsNeverDelivered(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	if _, err := svc.Subscribe("svc.echo", func(m *natsMsg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	snoop := dial(t, b.Addr)
	snoop.subscribe("all", ">", "")
	snoop2 := dial(t, b.Addr)
	snoop2.subscribe("all", "*.>", "")

	other := dial(t, b.Addr)
	other.send(`{"op":"req","id":"r","subject":"svc.echo","data":"secret"}`)
	other.expect("reply", "r")
	for _, subj := range []string{"$SYS.ACCOUNT.x", "$JS.API.INFO", "$KV.bucket.key", "_INBOX.abc.def"} {
		if err := svc.Publish(subj, []byte(`"hidden"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Publish("visible.end", []byte(`"end"`)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*wsClient{snoop, snoop2} {
		for {
			f := s.expect("msg", "")
			if strings.HasPrefix(f.Subject, "_INBOX") || strings.HasPrefix(f.Subject, "$") {
				t.Fatalf("reserved subject leaked: %s", f.raw)
			}
			if f.Subject == "visible.end" {
				break
			}
		}
	}
}

func TestHTTPRoutes(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	cases := []struct {
		path string
		want int
	}{
		{"/healthz", 200},
		{"/readyz", 200},
		{"/ws", 426},
		{"/ws/raw", 426},
		{"/nope", 404},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			if got := httpStatus(t, b.Addr, tc.path); got != tc.want {
				t.Fatalf("GET %s = %d, want %d", tc.path, got, tc.want)
			}
		})
	}
	t.Run("426 names the version", func(t *testing.T) {
		resp, err := http.Get("http://" + b.Addr + "/ws")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Fatalf("426 without Sec-WebSocket-Version: 13: %v", resp.Header)
		}
	})
	t.Run("malformed handshake 400", func(t *testing.T) {
		nc, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_, _ = io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
		status := make([]byte, 12)
		if _, err := io.ReadFull(nc, status); err != nil || string(status) != "HTTP/1.1 400" {
			t.Fatalf("got %q %v, want 400", status, err)
		}
	})
	t.Run("keep-alive HTTP", func(t *testing.T) {
		for range 3 {
			if got := httpStatus(t, b.Addr, "/healthz"); got != 200 {
				t.Fatal(got)
			}
		}
	})
}

func httpStatus(t *testing.T, addr, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestShutdownClosesClientsWith1001 drives Shutdown in-process; the
// SIGTERM path of the real binary is in process_test.go.
func TestShutdownClosesClientsWith1001(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	c := dial(t, b.Addr)
	c.subscribe("s", "x", "")
	// A client that never answers the close keeps the node draining for
	// the close timeout: long enough to look at it.
	stuck := testutil.DialWS(t, b.Addr, "/ws")
	stuck.ExpectText(`{"op":"hello"`)
	// The hello goes out with the 101, before the connection is
	// registered: a Shutdown that came first would not wait for it.
	testutil.Eventually(t, "both connections registered", func() bool { return b.Stats().Connections == 2 })
	ctx, cancel := ctxWait()
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(ctx) }()
	if code, reason := c.closeStatus(); code != websocket.StatusGoingAway || reason == "" {
		t.Fatalf("close %d %q, want 1001 with a reason", code, reason)
	}
	t.Run("draining node", func(t *testing.T) {
		if code := httpStatus(t, b.Addr, "/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d while draining, want 503", code)
		}
		if code := httpStatus(t, b.Addr, "/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz = %d while draining, want 200", code)
		}
		ctx, cancel := ctxWait()
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws://"+b.Addr+"/ws", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("upgrade while draining: %v %v, want 503", resp, err)
		}
	})
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// panicAuth's identities panic when asked about "boom.*": a stand-in for
// any bug reached while serving one connection.
type panicAuth struct{}

func (panicAuth) Authenticate(string) (bridge.Identity, error) { return panicIdent{}, nil }

type panicIdent struct{ denyIdent }

func (panicIdent) CanPublish(s string) bool {
	if strings.HasPrefix(s, "boom.") {
		panic("injected failure")
	}
	return true
}

// TestPanicClosesOnlyThatConnection: a panic while serving one client
// closes it with 1011; the process and the other clients carry on.
func TestPanicClosesOnlyThatConnection(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.Auth = panicAuth{} })
	victim, bystander := dial(t, b.Addr), dial(t, b.Addr)
	bystander.subscribe("s", "ok.x", "")
	victim.send(`{"op":"pub","subject":"boom.x","data":1}`)
	if code, reason := victim.closeStatus(); code != websocket.StatusInternalError || reason == "" {
		t.Fatalf("close %d %q, want 1011 with a reason", code, reason)
	}
	bystander.send(`{"op":"ping","id":"still"}`)
	bystander.expect("pong", "still")
	again := dial(t, b.Addr)
	again.send(`{"op":"pub","subject":"ok.x","data":2,"id":"p"}`)
	again.expect("ok", "p")
	if f := bystander.expect("msg", ""); string(f.Data) != "2" {
		t.Fatalf("got %s", f.raw)
	}
}

// TestHalfCloseStillAnswered: a client that sends its last command and
// half-closes (like a shell pipe into a WebSocket tool) gets the answer.
func TestHalfCloseStillAnswered(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	r := testutil.DialWS(t, b.Addr, "/ws")
	r.ExpectText(`{"op":"hello"`)
	r.SendText(`{"op":"ping","id":"last"}`)
	if err := r.NetConn().(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.ExpectText(`{"op":"pong","ref":"last"}`)
}

// TestUpgradeAfterKeepAliveRequest: a proxy that reuses an upstream
// connection sends the upgrade as a later request on it.
func TestUpgradeAfterKeepAliveRequest(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	r := testutil.Dial(t, b.Addr, 0)
	r.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp := r.ReadResponse()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %s", resp.Status)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.Upgrade("/ws") // on the same, kept-alive connection
	r.ExpectText(`{"op":"hello"`)
	r.SendText(`{"op":"ping","id":"k"}`)
	r.ExpectText(`{"op":"pong","ref":"k"}`)
}

// TestTLSUpgradeAfterKeepAliveRequest: the keep-alive upgrade path over
// TLS, where the hijacked connection is a tls.Conn behind the replay
// wrapper.
func TestTLSUpgradeAfterKeepAliveRequest(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b, _, cert, _ := tlsBridge(t, ns)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	nc, err := tls.Dial("tcp", b.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	r := testutil.NewRawConn(t, nc)
	r.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp := r.ReadResponse()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz over TLS: %s", resp.Status)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.Upgrade("/ws") // on the same, kept-alive TLS connection
	r.ExpectText(`{"op":"hello"`)
	r.SendText(`{"op":"ping","id":"t"}`)
	r.ExpectText(`{"op":"pong","ref":"t"}`)
}

// TestHeartbeat: the server pings every PingInterval; a client silent for
// two intervals is closed, one that answers pings is kept.
func TestHeartbeat(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.PingInterval = 100 * time.Millisecond })
	alive := dial(t, b.Addr) // coder/websocket answers pings while it reads
	go func() {
		for {
			if _, err := alive.tryRecv(wait); err != nil {
				return
			}
		}
	}()
	silent := testutil.DialWS(t, b.Addr, "/ws")
	silent.ExpectText(`{"op":"hello"`)
	for {
		f := silent.ReadFrame() // pings, never answered
		if f.Op == ws.OpPing {
			continue
		}
		if f.Op != ws.OpClose || len(f.Payload) < 3 || int(f.Payload[0])<<8|int(f.Payload[1]) != 1001 {
			t.Fatalf("silent client: %v, want close 1001 with a reason", f)
		}
		break
	}
	// The close is counted after its frame is queued: the client may read
	// the frame first.
	testutil.Eventually(t, "the silent client's 1001 counted", func() bool { return b.Stats().Closes[1001] >= 1 })
	if b.Stats().Closes[1001] != 1 {
		t.Fatalf("closes = %v, want exactly one 1001", b.Stats().Closes)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	if err := alive.c.Ping(ctx); err != nil {
		t.Fatalf("the client answering pings was closed: %v", err)
	}
}
