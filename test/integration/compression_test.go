package integration

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// dialDeflate connects to /ws offering permessage-deflate without context
// takeover, and consumes the hello.
func dialDeflate(t *testing.T, addr string) (*wsClient, string) {
	t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{
		CompressionMode:      websocket.CompressionNoContextTakeover,
		CompressionThreshold: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	w := &wsClient{t: t, c: c}
	w.expect("hello", "")
	return w, resp.Header.Get("Sec-WebSocket-Extensions")
}

func TestCompression(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) {
		c.Compression = true
		c.CompressionMin = 64
		c.MaxPayload = 64 << 10
	})
	svc := testutil.NATSClient(t, ns)
	big := `{"text":"` + strings.Repeat("all work and no play ", 200) + `"}`

	t.Run("negotiated without context takeover", func(t *testing.T) {
		_, ext := dialDeflate(t, b.Addr)
		for _, want := range []string{"permessage-deflate", "server_no_context_takeover", "client_no_context_takeover"} {
			if !strings.Contains(ext, want) {
				t.Fatalf("Sec-WebSocket-Extensions %q lacks %s", ext, want)
			}
		}
	})
	t.Run("deliveries and publishes round-trip", func(t *testing.T) {
		c, _ := dialDeflate(t, b.Addr)
		plain := dial(t, b.Addr) // same subject, no compression
		c.subscribe("s", "z.x", "")
		plain.subscribe("s", "z.x", "")
		for _, payload := range []string{big, `{"small":1}`} {
			if err := svc.Publish("z.x", []byte(payload)); err != nil {
				t.Fatal(err)
			}
			for _, cl := range []*wsClient{c, plain} {
				if f := cl.expect("msg", ""); string(f.Data) != payload {
					t.Fatalf("got %.60s…, want %.60s…", f.Data, payload)
				}
			}
		}
		got := make(chan *nats.Msg, 1)
		if _, err := svc.ChanSubscribe("z.in", got); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		c.send(`{"op":"pub","subject":"z.in","data":` + big + `,"id":"p"}`)
		c.expect("ok", "p")
		select {
		case m := <-got:
			if string(m.Data) != big {
				t.Fatal("compressed publish did not arrive intact")
			}
		case <-time.After(wait):
			t.Fatal("nothing published")
		}
	})
	t.Run("large deliveries are compressed, small ones not", func(t *testing.T) {
		r := rawDialExt(t, b.Addr, "permessage-deflate")
		r.ExpectText(`{"op":"hello"`)
		r.SendText(`{"op":"sub","id":"s","subject":"z.raw"}`)
		r.ExpectText(`{"op":"ok"`)
		for _, tc := range []struct {
			payload    string
			compressed bool
		}{{big, true}, {`{"small":1}`, false}} {
			if err := svc.Publish("z.raw", []byte(tc.payload)); err != nil {
				t.Fatal(err)
			}
			f := r.ReadFrame()
			p := f.Payload
			if got := f.Rsv&testutil.Rsv1 != 0; got != tc.compressed {
				t.Fatalf("RSV1 = %v for a %d-byte message, want %v", got, len(tc.payload), tc.compressed)
			}
			if tc.compressed {
				fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
				var err error
				if p, err = io.ReadAll(fr); err != nil {
					t.Fatal(err)
				}
				if len(p) <= len(tc.payload) {
					t.Fatal("inflated frame shorter than its payload")
				}
			}
			if !strings.Contains(string(p), tc.payload) {
				t.Fatalf("frame %.80q does not carry the payload", p)
			}
		}
	})
	t.Run("decompression bomb closes 1009", func(t *testing.T) {
		r := rawDialExt(t, b.Addr, "permessage-deflate; client_no_context_takeover")
		r.ExpectText(`{"op":"hello"`)
		// 1 MiB of spaces deflates to about a kilobyte: far under the frame
		// limit, far over MaxPayload once inflated.
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, flate.BestCompression)
		_, _ = fw.Write(bytes.Repeat([]byte(" "), 1<<20))
		_ = fw.Flush()
		payload := bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
		r.Write(testutil.MaskedFrame(true, ws.OpText|testutil.Rsv1, payload))
		r.ExpectClose(ws.StatusMessageTooBig)
	})
	t.Run("off by default", func(t *testing.T) {
		b2 := startBridge(t, ns, nil)
		_, ext := dialDeflate(t, b2.Addr)
		if ext != "" {
			t.Fatalf("extension %q negotiated with compression off", ext)
		}
	})
}

// rawDialExt is testutil.DialWS offering a WebSocket extension, which
// the bridge must accept.
func rawDialExt(t *testing.T, addr, ext string) *testutil.RawConn {
	t.Helper()
	r := testutil.Dial(t, addr, 0)
	resp := r.Upgrade("/ws", "Sec-WebSocket-Extensions: "+ext)
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(got, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions = %q, want permessage-deflate", got)
	}
	return r
}

// TestCompressionJetStream: JetStream deliveries are compressed for
// clients that negotiated it, once per message.
func TestCompressionJetStream(t *testing.T) {
	e := startJS(t, func(c *bridge.Config) { c.Compression = true; c.CompressionMin = 64 })
	big := `{"text":"` + strings.Repeat("order lines ", 200) + `"}`
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := e.js.Publish(ctx, "orders.big", []byte(big)); err != nil {
		t.Fatal(err)
	}
	r := rawDialExt(t, e.b.Addr, "permessage-deflate")
	r.ExpectText(`{"op":"hello"`)
	r.SendText(`{"op":"sub","id":"s","subject":"orders.>","from":"all"}`)
	r.ExpectText(`{"op":"ok"`)
	// seq 1 from history (catch-up), seq 2 from the shared live feed.
	for seq := 1; seq <= 2; seq++ {
		if seq == 2 {
			if _, err := e.js.Publish(ctx, "orders.big", []byte(big)); err != nil {
				t.Fatal(err)
			}
		}
		f := r.ReadFrame()
		p := f.Payload
		if f.Rsv&testutil.Rsv1 == 0 {
			t.Fatalf("JetStream delivery %d not compressed", seq)
		}
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
		msg, err := io.ReadAll(fr)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(msg), big) || !strings.Contains(string(msg), fmt.Sprintf(`"seq":%d`, seq)) {
			t.Fatalf("inflated frame %.100q lacks the payload or seq %d", msg, seq)
		}
	}
}
