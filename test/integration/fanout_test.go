package integration

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
	"wsbridge/internal/wire"
)

// fanoutSIDs are subscription ids as clients choose them: short, UUIDs,
// ones JSON must escape, and the longest allowed.
var fanoutSIDs = []string{"s1", "0c8f2a4e-4b1d-4e8a-9c3f-2d5e6a7b8c9d", `q"\κόσμε`, strings.Repeat("id", 32)}

// readBytes reads the next message's bytes, as coder/websocket hands them
// over (inflated when compressed).
func (w *wsClient) readBytes() (websocket.MessageType, []byte) {
	w.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return typ, b
}

// envelope is the msg envelope for sid, byte for byte as the bridge
// encodes it whole.
func envelope(sid, subject string, data []byte, h nats.Header, reply string, seq uint64) string {
	f := wire.AppendMsgFrame(nil, sid, subject, wire.AppendBody(nil, data, h, reply), seq)
	hdr := 2
	switch f[1] & 0x7f {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	return string(f[hdr:])
}

// dialRawDeflate connects to /ws/raw offering permessage-deflate.
func dialRawDeflate(t *testing.T, addr, query string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws/raw?"+query, &websocket.DialOptions{
		CompressionMode:      websocket.CompressionNoContextTakeover,
		CompressionThreshold: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

// TestCompressionDistinctIDs: compressing and plain clients that each name
// their subscriptions differently get, through coder/websocket, exactly
// the envelope built whole for each sid — and raw clients the payload —
// while the bridge compresses each message once and adds per sid only a
// stored block with the envelope's prefix.
func TestCompressionDistinctIDs(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) {
		c.Compression = true
		c.CompressionMin = 64
		c.MaxPayload = 1 << 20
	})
	svc := testutil.NATSClient(t, ns)
	var clients []*wsClient
	for i := range 3 {
		var c *wsClient
		if i < 2 {
			c, _ = dialDeflate(t, b.Addr)
		} else {
			c = dial(t, b.Addr)
		}
		for _, sid := range fanoutSIDs {
			c.subscribe(sid, "f.x", "")
		}
		clients = append(clients, c)
	}
	raw := dialRawDeflate(t, b.Addr, "sub=f.*")
	testutil.Eventually(t, "raw subscription live", func() bool { return natsSubsOf(t, ns, "f.*") == 1 })
	big := `{"text":"` + strings.Repeat("all work and no play ", 200) + `"}`
	msgs := []*nats.Msg{
		{Subject: "f.x", Data: []byte(big)},
		{Subject: "f.x", Data: []byte(`{"small":1}`)},
		{Subject: "f.x", Data: append([]byte{0xff, 0xfe}, big...)},
		{Subject: "f.x", Data: []byte(big), Header: nats.Header{"Trace": {"abc"}}, Reply: "svc.reply.1"},
		{Subject: "f.x", Data: []byte(`"` + strings.Repeat("0123456789abcdef", 4200) + `"`)},
	}
	for _, m := range msgs {
		if err := svc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, sid := range fanoutSIDs {
			want = append(want, envelope(sid, m.Subject, m.Data, m.Header, m.Reply, 0))
		}
		for i, c := range clients {
			var got []string
			for range fanoutSIDs {
				typ, p := c.readBytes()
				if typ != websocket.MessageText {
					t.Fatalf("client %d: a binary msg", i)
				}
				got = append(got, string(p))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("client %d got %.100q…, want %.100q…", i, got, want)
			}
		}
		if _, p := raw.readBytes(); !bytes.Equal(p, m.Data) {
			t.Fatalf("raw client got %.60q…, want %.60q…", p, m.Data)
		}
	}
}

// TestCompressionJetStreamDistinctIDs: live JetStream deliveries to
// compressing clients with distinct sids decode to the envelope built
// whole, seq included.
func TestCompressionJetStreamDistinctIDs(t *testing.T) {
	e := startJS(t, func(c *bridge.Config) { c.Compression = true; c.CompressionMin = 64 })
	var clients []*wsClient
	for range 2 {
		c, _ := dialDeflate(t, e.b.Addr)
		for _, sid := range fanoutSIDs {
			c.jsSub(sid, "orders.>", "new")
		}
		clients = append(clients, c)
	}
	big := []byte(`{"text":"` + strings.Repeat("order lines ", 200) + `"}`)
	ctx, cancel := ctxWait()
	defer cancel()
	for range 3 {
		ack, err := e.js.Publish(ctx, "orders.big", big)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, sid := range fanoutSIDs {
			want = append(want, envelope(sid, "orders.big", big, nil, "", ack.Sequence))
		}
		slices.Sort(want)
		for i, c := range clients {
			var got []string
			for range fanoutSIDs {
				_, p := c.readBytes()
				got = append(got, string(p))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("client %d got %.100q…, want %.100q…", i, got, want)
			}
		}
	}
}
