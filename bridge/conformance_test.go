package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
	"wsbridge/internal/wsframe/wsframetest"

	"github.com/gobwas/ws"
	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
)

// The conformance suite drives a real bridge (and a real nats-server) over
// raw TCP with frames built byte by byte, and checks the exact bytes that
// come back. Case ids follow the sections of the Autobahn|Testsuite; H.*
// (handshake), L.* (limits) and D.* (permessage-deflate) are the bridge's
// own. The frame-level cases live in wsframetest, which wsframe's suite
// runs against the Assembler alone; the handshake ones live here.

// confWait bounds any single expected event; tests never sleep to
// synchronise, they read with this deadline.
const confWait = 10 * time.Second

func startTestNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	s := natstest.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	return s
}

// testServer is a bridge listening on 127.0.0.1:0.
type testServer struct {
	*Server
	addr   string
	client *tls.Config // wss://: how clients dial it; nil for ws://
}

// transport is how a suite reaches the bridge: every case runs over both.
type transport struct {
	name   string
	secure bool
}

var transports = []transport{{"ws", false}, {"wss", true}}

// overTransports runs f once per transport, as subtests named ws and wss.
func overTransports(t *testing.T, f func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}

func startTestBridge(t *testing.T, ns *natsserver.Server, mutate func(*Config)) *testServer {
	t.Helper()
	return startTestBridgeOver(t, ns, transport{}, mutate)
}

// startTestBridgeOver starts a bridge serving tr: with a self-signed
// certificate for wss://.
func startTestBridgeOver(t *testing.T, ns *natsserver.Server, tr transport, mutate func(*Config)) *testServer {
	t.Helper()
	var client *tls.Config
	if tr.secure {
		cfg, cl := testTLSConfigs(t)
		client = cl
		inner := mutate
		mutate = func(c *Config) {
			c.TLS = cfg
			if inner != nil {
				inner(c)
			}
		}
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelError
	if os.Getenv("WSBRIDGE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	cfg := Config{NodeID: "t", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), confWait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: srv, addr: ln.Addr().String(), client: client}
}

// rawClient speaks WebSocket by hand over one TCP connection.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// dialTCP connects without a WebSocket handshake (over wss://, after the
// TLS one). rcvbuf, when not zero, shrinks the socket's receive buffer
// before connecting, so a client that does not read pushes back quickly.
func dialTCP(t *testing.T, srv *testServer, rcvbuf int) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: confWait}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	if srv.client != nil {
		tc := tls.Client(nc, srv.client)
		_ = tc.SetDeadline(time.Now().Add(confWait))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		_ = tc.SetDeadline(time.Time{})
		nc = tc
	}
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

const (
	testKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 §1.3's example
)

func upgradeRequest(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// dialWS connects to /ws, checks the 101 and the hello, and returns the
// client ready for frames.
func dialWS(t *testing.T, srv *testServer) *rawClient {
	t.Helper()
	c := dialTCP(t, srv, 0)
	c.write([]byte(upgradeRequest("/ws")))
	c.expectUpgrade(srv)
	return c
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if err := c.tryWrite(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) tryWrite(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(confWait))
	_, err := c.nc.Write(b)
	return err
}

func (c *rawClient) readResponse() *http.Response {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(confWait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading the handshake response: %v", err)
	}
	return resp
}

// expectUpgrade reads a 101 with the right accept key, then the hello. It
// returns the 101.
func (c *rawClient) expectUpgrade(srv *testServer) *http.Response {
	c.t.Helper()
	resp := c.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.t.Fatalf("handshake: %s %q, want 101", resp.Status, body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != testAccept {
		c.t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, testAccept)
	}
	c.expectFrame(ws.OpText, string(wire.AppendHello(nil, "t", srv.cfg.MaxPayload, srv.maxFrame, true)))
	return resp
}

// serverFrame is one frame from the bridge.
type serverFrame struct {
	op ws.OpCode
	p  []byte
}

// readFrame reads one frame and checks what every server frame must be:
// unmasked (RFC 6455 §5.1), final and without reserved bits (the bridge
// never fragments and negotiates no extension).
func (c *rawClient) readFrame() (serverFrame, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(confWait))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[0]&0xf0 != 0x80 {
		return serverFrame{}, fmt.Errorf("server frame with first byte %#x: want FIN and no RSV", h[0])
	}
	if h[1]&0x80 != 0 {
		return serverFrame{}, errors.New("masked server frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 64<<20 {
		return serverFrame{}, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{ws.OpCode(h[0] & 0x0f), p}, nil
}

func (c *rawClient) mustReadFrame() serverFrame {
	c.t.Helper()
	f, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

func (c *rawClient) expectFrame(op ws.OpCode, p string) {
	c.t.Helper()
	f := c.mustReadFrame()
	if f.op != op || string(f.p) != p {
		c.t.Fatalf("got frame %v %q, want %v %q", f.op, trunc(f.p), op, trunc([]byte(p)))
	}
}

func trunc(p []byte) string {
	if len(p) > 200 {
		return string(p[:200]) + fmt.Sprintf("…(%d bytes)", len(p))
	}
	return string(p)
}

// expectClose reads the bridge's close frame and checks it carries code
// and a non-empty UTF-8 reason. It returns the reason.
func (c *rawClient) expectClose(code ws.StatusCode) string {
	c.t.Helper()
	f := c.mustReadFrame()
	if f.op != ws.OpClose {
		c.t.Fatalf("got frame %v %q, want a close %d", f.op, trunc(f.p), code)
	}
	if len(f.p) < 3 {
		c.t.Fatalf("close payload %q: want a code and a reason", f.p)
	}
	got, reason := ws.StatusCode(binary.BigEndian.Uint16(f.p)), f.p[2:]
	if got != code {
		c.t.Fatalf("close code %d (%q), want %d", got, reason, code)
	}
	if !utf8.Valid(reason) {
		c.t.Fatalf("close reason %q is not UTF-8", reason)
	}
	return string(reason)
}

// expectEnd reads until the bridge closes the TCP connection; nothing may
// arrive after its close frame. A reset counts as closed too.
func (c *rawClient) expectEnd() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(confWait))
	b, err := io.ReadAll(c.br)
	if len(b) > 0 {
		c.t.Fatalf("%d bytes after the close frame: %q", len(b), trunc(b))
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("waiting for the bridge to close TCP: %v", err)
	}
}

// finishClose answers the bridge's close with ours, as a client must
// (RFC 6455 §5.5.1), and waits for the TCP connection to end.
func (c *rawClient) finishClose(code ws.StatusCode) {
	c.t.Helper()
	_ = c.tryWrite(clientFrame(bFin|bClose, closePayload(uint16(code), "")))
	c.expectEnd()
}

// pingCmd is a ping command padded with JSON whitespace to n bytes, so a
// message of any size gets an answer.
func pingCmd(id string, n int) []byte {
	b := []byte(`{"op":"ping","id":"` + id + `"}`)
	if len(b) < n {
		b = append(b, bytes.Repeat([]byte{' '}, n-len(b))...)
	}
	return b
}

func pongCmd(id string) string { return string(wire.AppendPong(nil, id)) }

// expectAlive checks the connection still answers commands.
func (c *rawClient) expectAlive() {
	c.t.Helper()
	c.write(clientFrame(bFin|bText, pingCmd("alive", 0)))
	c.expectFrame(ws.OpText, pongCmd("alive"))
}

// The frame-level cases are wsframetest's, shared with wsframe's own
// suite, which runs them against the Assembler alone; here their messages
// are ping commands, and they go to a live bridge.

func text(s string) serverFrame { return serverFrame{ws.OpText, []byte(s)} }
func pong(p []byte) serverFrame { return serverFrame{ws.OpPong, p} }

// badRequest is the bridge's answer to a text message that is no command.
var badRequest = string(wire.AppendErr(nil, "", wire.Errf(wire.CodeBadRequest, "malformed command: expected a JSON object with string op")))

// answer is the bridge's answer to a text message: the pong of a ping
// command, and a bad_request for anything else (the cases send no other
// command).
func answer(p []byte) serverFrame {
	var cmd struct{ Op, ID string }
	if json.Unmarshal(p, &cmd) == nil && cmd.Op == "ping" {
		return text(pongCmd(cmd.ID))
	}
	return text(badRequest)
}

// bridgeOutcome turns what the frame layer delivers from tc into what the
// bridge sends back on /ws: an answer to each text message, a pong to each
// ping, nothing for a pong, then tc's close; a binary message ends the
// case with 1003 instead, as /ws takes no binary frames.
func bridgeOutcome(tc wsframetest.Case) (want []serverFrame, code ws.StatusCode, echo bool) {
	for _, f := range tc.Want {
		switch f.Op {
		case ws.OpText:
			want = append(want, answer(f.Payload))
		case ws.OpBinary:
			return want, wsframe.CloseBinary.Code, false
		case ws.OpPing:
			want = append(want, pong(f.Payload))
		}
	}
	code, echo = tc.Close()
	return want, code, echo
}

// dialDeflate is dialWS offering permessage-deflate, which the bridge must
// accept.
func dialDeflate(t *testing.T, srv *testServer) *rawClient {
	t.Helper()
	c := dialTCP(t, srv, 0)
	c.write([]byte(strings.TrimSuffix(upgradeRequest("/ws"), "\r\n") + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"))
	resp := c.expectUpgrade(srv)
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions = %q, want permessage-deflate", ext)
	}
	return c
}

// TestConformance runs the RFC 6455 cases against a live bridge.
func TestConformance(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) { conformance(t, ns, tr) })
}

func conformance(t *testing.T, ns *natsserver.Server, tr transport) {
	cases := wsframetest.Cases(pingCmd)
	// One bridge per configuration the cases need.
	type setup struct {
		maxPayload int64
		deflate    bool
	}
	bridges := map[setup]*testServer{}
	for _, tc := range cases {
		s := setup{tc.MaxPayload, tc.Deflate}
		if bridges[s] == nil {
			bridges[s] = startTestBridgeOver(t, ns, tr, func(c *Config) { c.MaxPayload, c.Compression = s.maxPayload, s.deflate })
		}
	}
	for _, tc := range cases {
		t.Run(tc.ID+" "+tc.Name, func(t *testing.T) {
			t.Parallel()
			srv := bridges[setup{tc.MaxPayload, tc.Deflate}]
			var c *rawClient
			if tc.Deflate {
				c = dialDeflate(t, srv)
			} else {
				c = dialWS(t, srv)
			}
			if tc.Chunk == 0 {
				c.write(tc.Send)
			} else {
				for b := tc.Send; len(b) > 0; {
					n := min(tc.Chunk, len(b))
					if err := c.tryWrite(b[:n]); err != nil {
						break // the bridge may have given up on us already
					}
					b = b[n:]
				}
			}
			want, code, echo := bridgeOutcome(tc)
			for _, w := range want {
				c.expectFrame(w.op, string(w.p))
			}
			switch {
			case code == 0:
				c.expectAlive()
			case echo:
				c.expectClose(code)
				c.expectEnd()
			default:
				c.expectClose(code)
				c.finishClose(code)
			}
		})
	}
}

// TestHandshake checks the opening handshake (RFC 6455 §4.2) and the
// statuses the bridge refuses it with.
func TestHandshake(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) { handshakeCases(t, ns, tr) })
}

func handshakeCases(t *testing.T, ns *natsserver.Server, tr transport) {
	srv := startTestBridgeOver(t, ns, tr, nil)
	req := func(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }
	const (
		get     = "GET /ws HTTP/1.1"
		host    = "Host: 127.0.0.1"
		upg     = "Upgrade: websocket"
		conn    = "Connection: Upgrade"
		key     = "Sec-WebSocket-Key: " + testKey
		version = "Sec-WebSocket-Version: 13"
	)
	cases := []struct {
		id, name string
		req      string
		chunk    int
		status   []int  // any of these; 101 means a working connection
		header   string // "Name: value" the response must carry
	}{
		{id: "H.1", name: "valid", req: req(get, host, upg, conn, key, version), status: []int{101}},
		{id: "H.2", name: "query string", req: req("GET /ws?x=1 HTTP/1.1", host, upg, conn, key, version), status: []int{101}},
		{id: "H.3", name: "odd-case header names and values", req: req(get, "hOsT: 127.0.0.1", "uPgRaDe: WebSocket", "cOnNeCtIoN: keep-alive, UPGRADE", "sec-websocket-key: "+testKey, "SEC-WEBSOCKET-VERSION: 13"), status: []int{101}},
		{id: "H.4", name: "request trickled a byte at a time", req: req(get, host, upg, conn, key, version), chunk: 1, status: []int{101}},
		{id: "H.5", name: "POST", req: req("POST /ws HTTP/1.1", host, upg, conn, key, version, "Content-Length: 0"), status: []int{405}},
		{id: "H.6", name: "no Upgrade header", req: req(get, host, conn, key, version), status: []int{426}, header: "Sec-WebSocket-Version: 13"},
		{id: "H.7", name: "plain GET of /ws", req: req(get, host), status: []int{426}, header: "Sec-WebSocket-Version: 13"},
		{id: "H.8", name: "wrong Upgrade", req: req(get, host, "Upgrade: h2c", conn, key, version), status: []int{400}},
		{id: "H.9", name: "no Connection", req: req(get, host, upg, key, version), status: []int{400}},
		{id: "H.10", name: "wrong Connection", req: req(get, host, upg, "Connection: keep-alive", key, version), status: []int{400}},
		{id: "H.11", name: "no Sec-WebSocket-Key", req: req(get, host, upg, conn, version), status: []int{400}},
		{id: "H.12", name: "short Sec-WebSocket-Key", req: req(get, host, upg, conn, "Sec-WebSocket-Key: dG9vc2hvcnQ=", version), status: []int{400}},
		{id: "H.13", name: "Sec-WebSocket-Version 8", req: req(get, host, upg, conn, key, "Sec-WebSocket-Version: 8"), status: []int{426}, header: "Sec-WebSocket-Version: 13"},
		{id: "H.14", name: "no Host", req: req(get, upg, conn, key, version), status: []int{400}},
		{id: "H.15", name: "unknown path", req: req("GET /nope HTTP/1.1", host, upg, conn, key, version), status: []int{404}},
		{id: "H.16", name: "unknown path, plain HTTP", req: req("GET /nope HTTP/1.1", host), status: []int{404}},
	}
	for _, tc := range cases {
		t.Run(tc.id+" "+tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialTCP(t, srv, 0)
			if tc.chunk == 0 {
				c.write([]byte(tc.req))
			} else {
				for i := 0; i < len(tc.req); i += tc.chunk {
					c.write([]byte(tc.req[i:min(i+tc.chunk, len(tc.req))]))
					time.Sleep(time.Millisecond) // pace the trickle so it arrives in pieces
				}
			}
			if tc.status[0] == http.StatusSwitchingProtocols {
				c.expectUpgrade(srv)
				c.expectAlive()
				return
			}
			resp := c.readResponse()
			defer resp.Body.Close()
			if !slicesContains(tc.status, resp.StatusCode) {
				t.Fatalf("status %s, want one of %v", resp.Status, tc.status)
			}
			if tc.header != "" {
				k, v, _ := strings.Cut(tc.header, ": ")
				if got := resp.Header.Get(k); got != v {
					t.Fatalf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestHandshakeTimeout checks that a handshake not completed within
// HandshakeTimeout is dropped without an answer.
func TestHandshakeTimeout(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) { handshakeTimeout(t, ns, tr) })
}

func handshakeTimeout(t *testing.T, ns *natsserver.Server, tr transport) {
	srv := startTestBridgeOver(t, ns, tr, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	cases := []struct {
		name, partial string
	}{
		{"nothing sent", ""},
		{"request line only", "GET /ws HTTP/1.1\r\n"},
		{"headers without the blank line", strings.TrimSuffix(upgradeRequest("/ws"), "\r\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialTCP(t, srv, 0)
			start := time.Now()
			if tc.partial != "" {
				c.write([]byte(tc.partial))
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(confWait))
			b, err := io.ReadAll(c.br)
			if len(b) > 0 {
				t.Fatalf("got %q from an incomplete handshake, want nothing", trunc(b))
			}
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("waiting for the bridge to drop the connection: %v", err)
			}
			if d := time.Since(start); d < 250*time.Millisecond {
				t.Fatalf("dropped after %v, before the 300ms HandshakeTimeout", d)
			}
		})
	}
	// The bridge still serves.
	dialWS(t, srv).expectAlive()
}

// eventually polls cond until it holds or confWait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(confWait)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestHostileIdleConnections opens many connections that never send a
// frame, half of them stuck in the handshake: the bridge keeps serving,
// and drops the stuck ones at HandshakeTimeout.
func TestHostileIdleConnections(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) { hostileIdle(t, ns, tr) })
}

func hostileIdle(t *testing.T, ns *natsserver.Server, tr transport) {
	srv := startTestBridgeOver(t, ns, tr, func(c *Config) { c.HandshakeTimeout = time.Second })
	const n = 100
	idle := make([]*rawClient, n)
	stuck := make([]*rawClient, n)
	for i := range n {
		idle[i] = dialTCP(t, srv, 0)
		idle[i].write([]byte(upgradeRequest("/ws")))
		stuck[i] = dialTCP(t, srv, 0)
		stuck[i].write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
	}
	live := dialWS(t, srv)
	live.expectAlive()
	for _, c := range idle {
		c.expectUpgrade(srv)
	}
	eventually(t, "every idle connection registered", func() bool { return srv.Stats().Connections == n+1 })
	for _, c := range stuck {
		_ = c.nc.SetReadDeadline(time.Now().Add(confWait))
		if b, err := io.ReadAll(c.br); len(b) > 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("stuck handshake: got %q, %v; want the connection dropped", trunc(b), err)
		}
	}
	live.expectAlive()
	idle[0].expectAlive()
}

// TestHostilePingFlood floods pings from a client that never reads: its
// pongs pile up until the bounded write queue overflows and it is closed
// as a slow consumer (1008), while other clients are still answered.
func TestHostilePingFlood(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) { hostilePingFlood(t, ns, tr) })
}

func hostilePingFlood(t *testing.T, ns *natsserver.Server, tr transport) {
	srv := startTestBridgeOver(t, ns, tr, func(c *Config) { c.WriteBuffer = 16 << 10 })
	live := dialWS(t, srv)

	flood := dialTCP(t, srv, 4096)
	payload := bytes.Repeat([]byte{0xa5}, 125)
	batch := bytes.Repeat(clientFrame(bFin|bPing, payload), 100)
	stop := make(chan struct{})
	wrote := make(chan int, 1)
	go func() {
		// The handshake and the pings go out together; nothing is read.
		if flood.tryWrite([]byte(upgradeRequest("/ws"))) != nil {
			wrote <- 0
			return
		}
		pings := 0
		for pings < 1_000_000 {
			select {
			case <-stop:
				wrote <- pings
				return
			default:
			}
			if flood.tryWrite(batch) != nil {
				break
			}
			pings += 100
		}
		wrote <- pings
	}()
	slowClosed := func() bool { return srv.Stats().Closes[int(ws.StatusPolicyViolation)] > 0 }
	eventually(t, "the flooding client closed as a slow consumer", slowClosed)
	live.expectAlive()
	close(stop)
	pings := <-wrote
	t.Logf("%d pings sent before the slow-consumer close", pings)

	resp := flood.readResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("flood handshake: %s", resp.Status)
	}
	flood.expectFrame(ws.OpText, string(srv.helloUp[2:]))
	pongs := 0
	for {
		f := flood.mustReadFrame()
		if f.op == ws.OpPong && bytes.Equal(f.p, payload) {
			pongs++
			continue
		}
		if f.op != ws.OpClose {
			t.Fatalf("got frame %v %q, want pongs then a close", f.op, trunc(f.p))
		}
		code := ws.StatusCode(binary.BigEndian.Uint16(f.p))
		if code != ws.StatusPolicyViolation || string(f.p[2:]) != wsframe.CloseSlow.Reason {
			t.Fatalf("close %d %q, want %d %q", code, f.p[2:], ws.StatusPolicyViolation, wsframe.CloseSlow.Reason)
		}
		break
	}
	if pongs >= pings {
		t.Fatalf("all %d pings answered: the queue never overflowed", pings)
	}
	flood.finishClose(ws.StatusPolicyViolation)
	eventually(t, "the flooding client torn down", func() bool { return srv.Stats().Connections == 1 })
	live.expectAlive()
}

// TestHostileEndlessFragments sends continuation frames that never end:
// the 1009 limit cuts them, measured on the assembled message.
func TestHostileEndlessFragments(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) { hostileEndlessFragments(t, ns, tr) })
}

func hostileEndlessFragments(t *testing.T, ns *natsserver.Server, tr transport) {
	srv := startTestBridgeOver(t, ns, tr, func(c *Config) { c.MaxPayload = 4096 })
	c := dialWS(t, srv)
	chunk := bytes.Repeat([]byte{' '}, 1000)
	done := make(chan int, 1)
	go func() {
		frames := 0
		if c.tryWrite(clientFrame(bText, chunk)) == nil {
			for frames = 1; frames < 1000; frames++ {
				if c.tryWrite(clientFrame(bCont, chunk)) != nil {
					break
				}
			}
		}
		done <- frames
	}()
	c.expectClose(ws.StatusMessageTooBig)
	t.Logf("%d fragments written", <-done)
	c.finishClose(ws.StatusMessageTooBig)
	dialWS(t, srv).expectAlive()
}
