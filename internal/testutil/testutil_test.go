package testutil

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// unmask decodes one frame built by this package, checking its header
// against a reference reading (gobwas/ws's).
func unmask(t *testing.T, b []byte) (ws.Header, []byte) {
	t.Helper()
	r := bytes.NewReader(b)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf("ws.ReadHeader(% x): %v", b[:min(len(b), 14)], err)
	}
	p := make([]byte, h.Length)
	if _, err := r.Read(p); err != nil && h.Length > 0 {
		t.Fatal(err)
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return h, p
}

func TestMaskedFrame(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fin     bool
		op      ws.OpCode
		n       int
		headLen int
	}{
		{"empty text", true, ws.OpText, 0, 6},
		{"125 bytes", true, ws.OpText, 125, 6},
		{"126 bytes", true, ws.OpBinary, 126, 8},
		{"65535 bytes", false, ws.OpText, 65535, 8},
		{"65536 bytes", true, ws.OpContinuation, 65536, 14},
		{"rsv1 text", true, ws.OpText | Rsv1, 10, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("ab"), tc.n)[:tc.n]
			b := MaskedFrame(tc.fin, tc.op, payload)
			if len(b) != tc.headLen+tc.n {
				t.Fatalf("frame of %d bytes, want %d", len(b), tc.headLen+tc.n)
			}
			h, p := unmask(t, b)
			if h.Fin != tc.fin || h.OpCode != tc.op&0x0f || !h.Masked || h.Mask != Mask || !bytes.Equal(p, payload) {
				t.Fatalf("header %+v payload %.20q", h, p)
			}
			if tc.op&Rsv1 != 0 && h.Rsv != 4 {
				t.Fatalf("rsv = %d, want RSV1", h.Rsv)
			}
		})
	}
	t.Run("header of a huge frame", func(t *testing.T) {
		h, err := ws.ReadHeader(bytes.NewReader(MaskedHeader(true, ws.OpText, 1<<40)))
		if err != nil || h.Length != 1<<40 || !h.Masked {
			t.Fatalf("header %+v, %v", h, err)
		}
	})
	t.Run("unmasked", func(t *testing.T) {
		h, p := unmask(t, UnmaskedFrame(true, ws.OpPing, []byte("x")))
		if h.Masked || h.OpCode != ws.OpPing || string(p) != "x" {
			t.Fatalf("header %+v payload %q", h, p)
		}
	})
}

func TestFragments(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 20} {
		b := Fragments(ws.OpText, []byte("fragmented message"), n)
		var got []byte
		for i := 0; len(b) > 0; i++ {
			h, p := unmask(t, b)
			b = b[ws.HeaderSize(h)+int(h.Length):]
			wantOp := ws.OpContinuation
			if i == 0 {
				wantOp = ws.OpText
			}
			if h.OpCode != wantOp || h.Fin != (len(b) == 0) {
				t.Fatalf("n=%d: frame %d header %+v", n, i, h)
			}
			got = append(got, p...)
		}
		if string(got) != "fragmented message" {
			t.Fatalf("n=%d: reassembled %q", n, got)
		}
	}
}

func TestClosePayload(t *testing.T) {
	p := ClosePayload(ws.StatusPolicyViolation, "slow")
	if binary.BigEndian.Uint16(p) != 1008 || string(p[2:]) != "slow" {
		t.Fatalf("close payload %q", p)
	}
}

// echoServer is a coder/websocket server that echoes text messages and
// closes with 1008 "bye" after the message "bye".
func echoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nope" {
			http.NotFound(w, r)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if string(b) == "bye" {
				_ = c.Close(websocket.StatusPolicyViolation, "bye")
				return
			}
			if err := c.Write(r.Context(), typ, b); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestRawConn(t *testing.T) {
	addr := echoServer(t)
	t.Run("echo and close", func(t *testing.T) {
		c := DialWS(t, addr, "/ws?x=1", "User-Agent: testutil")
		c.SendText("hello")
		c.ExpectText("hel")
		c.Write(Fragments(ws.OpText, []byte("in pieces"), 3))
		c.ExpectFrame(ws.OpText, "in pieces")
		if !c.QuietUntil(time.Now().Add(20 * time.Millisecond)) {
			t.Fatal("a frame arrived unasked")
		}
		c.SendText("bye")
		if reason := c.ExpectClose(ws.StatusPolicyViolation); reason != "bye" {
			t.Fatalf("reason %q", reason)
		}
		c.FinishClose(ws.StatusPolicyViolation)
	})
	t.Run("small receive buffer", func(t *testing.T) {
		c := Dial(t, addr, 4096)
		c.Upgrade("/")
		c.SendText("x")
		if f := c.ReadFrame(); f.Op != ws.OpText || !f.Fin || f.Rsv != 0 || string(f.Payload) != "x" {
			t.Fatalf("frame %v", f)
		}
	})
	t.Run("refused upgrade", func(t *testing.T) {
		c := Dial(t, addr, 0)
		c.Write([]byte(UpgradeRequest("/nope")))
		resp := c.ReadResponse()
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %s, want 404", resp.Status)
		}
	})
}

func TestStartNATS(t *testing.T) {
	ns := StartNATS(t, true, func(o *server.Options) { o.MaxPayload = 2048 })
	nc := NATSClient(t, ns, nats.Name("testutil"))
	if got := nc.MaxPayload(); got != 2048 {
		t.Fatalf("max payload %d, want the mutated 2048", got)
	}
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream not enabled: %v", err)
	}
	base := ns.NumSubscriptions()
	if _, err := nc.SubscribeSync("x"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, "the subscription registered", func() bool { return ns.NumSubscriptions() > base })
	Logger(t).Debug("not shown unless WSBRIDGE_TEST_DEBUG is set")
}
