// Package integration tests wsbridge end to end: a real nats-server on a
// random port over TCP, the bridge on 127.0.0.1:0, and WebSocket clients
// from another library (coder/websocket) so our framing is checked by
// someone else's.
package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// wait bounds any single expected event; tests never sleep, they wait
// for a signal with this deadline.
const wait = testutil.Wait

type testBridge struct {
	*bridge.Server
	Addr string
}

func startBridge(t *testing.T, ns *natsserver.Server, mutate func(*bridge.Config)) *testBridge {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridge.Config{NodeID: "test-node", Logger: testutil.Logger(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := bridge.New(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testBridge{Server: srv, Addr: ln.Addr().String()}
}

// frame is any bridge → client envelope.
type frame struct {
	Op         string              `json:"op"`
	Ref        string              `json:"ref"`
	Sid        string              `json:"sid"`
	Subject    string              `json:"subject"`
	Code       string              `json:"code"`
	Message    string              `json:"message"`
	Data       json.RawMessage     `json:"data"`
	B64        *string             `json:"b64"`
	Headers    map[string][]string `json:"headers"`
	Reply      string              `json:"reply"`
	Node       string              `json:"node"`
	MaxPayload int64               `json:"max_payload"`
	NATS       string              `json:"nats"` // hello, status: "up" or "down"
	Seq        uint64              `json:"seq"`
	Stream     string              `json:"stream"`
	raw        []byte
}

type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

// dial connects to /ws and consumes the hello.
func dial(t *testing.T, addr string) *wsClient {
	t.Helper()
	wc := dialPath(t, addr, "/ws")
	if f := wc.recv(); f.Op != "hello" {
		t.Fatalf("first frame = %s, want hello", f.raw)
	}
	return wc
}

func dialPath(t *testing.T, addr, path string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			w.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

func (w *wsClient) recv() frame {
	w.t.Helper()
	f, err := w.tryRecv(wait)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return f
}

// tryRecv reads the next frame within d, skipping status frames (the
// bridge sends one to every client whenever its NATS link changes): only
// expect("status", "") reads those.
func (w *wsClient) tryRecv(d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		f, err := w.read(ctx)
		if err != nil || f.Op != "status" {
			return f, err
		}
	}
}

func (w *wsClient) read(ctx context.Context) (frame, error) {
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.MessageText {
		return frame{}, fmt.Errorf("got a binary frame on /ws")
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("bridge sent invalid JSON %q: %v", b, err)
	}
	f.raw = b
	return f, nil
}

// expect reads the next frame and checks its op and ref.
func (w *wsClient) expect(op, ref string) frame {
	w.t.Helper()
	var f frame
	if op == "status" {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		var err error
		if f, err = w.read(ctx); err != nil {
			w.t.Fatalf("read: %v", err)
		}
	} else {
		f = w.recv()
	}
	if f.Op != op || f.Ref != ref {
		w.t.Fatalf("got %s, want op=%s ref=%s", f.raw, op, ref)
	}
	return f
}

func (w *wsClient) expectErr(ref, code string) frame {
	w.t.Helper()
	f := w.expect("err", ref)
	if f.Code != code {
		w.t.Fatalf("got %s, want code %s", f.raw, code)
	}
	if f.Message == "" {
		w.t.Fatalf("err without message: %s", f.raw)
	}
	return f
}

func (w *wsClient) subscribe(id, subject, queue string) {
	w.t.Helper()
	cmd := map[string]any{"op": "sub", "id": id, "subject": subject}
	if queue != "" {
		cmd["queue"] = queue
	}
	w.send(cmd)
	w.expect("ok", id)
}

// closeStatus reads until the connection closes and returns the close
// status the bridge sent.
func (w *wsClient) closeStatus() (websocket.StatusCode, string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ce, err := w.readClose(ctx)
	if err != nil {
		w.t.Fatalf("connection ended without a close frame: %v", err)
	}
	return ce.Code, ce.Reason
}

// readClose reads until the connection closes and returns the bridge's
// close frame, or the error that ended the connection without one. Safe
// off the test goroutine.
func (w *wsClient) readClose(ctx context.Context) (websocket.CloseError, error) {
	for {
		_, _, err := w.c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce, nil
		}
		return ce, err
	}
}

type natsMsg = nats.Msg

func newMsg(subject string) *nats.Msg { return nats.NewMsg(subject) }

func itoa(i int) string { return fmt.Sprint(i) }

func ctxWait() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), wait)
}
