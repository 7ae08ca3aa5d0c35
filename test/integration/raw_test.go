package integration

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

func dialRaw(t *testing.T, addr, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws/raw?"+query, nil)
	if err != nil {
		t.Fatalf("dial raw %s: %v", query, err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestRawMode(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)

	t.Run("sub receives text and binary frames", func(t *testing.T) {
		c := dialRaw(t, b.Addr, "sub=sensors.>")
		// The subscription is live once the bridge's interest shows on NATS.
		testutil.Eventually(t, "raw subscription live", func() bool { return natsSubsOf(t, ns, "sensors.>") == 1 })
		cases := []struct {
			payload []byte
			typ     websocket.MessageType
		}{
			{[]byte(`{"t":21.5}`), websocket.MessageText},
			{[]byte("plain text ✓"), websocket.MessageText},
			{[]byte{0xff, 0x00, 0x01}, websocket.MessageBinary},
		}
		for _, tc := range cases {
			if err := svc.Publish("sensors.kitchen", tc.payload); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := ctxWait()
			typ, got, err := c.Read(ctx)
			cancel()
			if err != nil || typ != tc.typ || string(got) != string(tc.payload) {
				t.Fatalf("got %v %q %v, want %v %q", typ, got, err, tc.typ, tc.payload)
			}
		}
	})

	t.Run("pub publishes verbatim", func(t *testing.T) {
		got := make(chan *nats.Msg, 4)
		if _, err := svc.ChanSubscribe("ingest", got); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, b.Addr, "pub=ingest")
		ctx, cancel := ctxWait()
		defer cancel()
		for _, m := range []struct {
			typ websocket.MessageType
			p   []byte
		}{
			{websocket.MessageText, []byte(`not json at all`)},
			{websocket.MessageBinary, []byte{0, 1, 2, 0xfe}},
		} {
			if err := c.Write(ctx, m.typ, m.p); err != nil {
				t.Fatal(err)
			}
			select {
			case g := <-got:
				if string(g.Data) != string(m.p) {
					t.Fatalf("published %q, want %q", g.Data, m.p)
				}
			case <-time.After(wait):
				t.Fatal("nothing published")
			}
		}
	})

	t.Run("queue group", func(t *testing.T) {
		c1 := dialRaw(t, b.Addr, "sub=work&queue=w")
		c2 := dialRaw(t, b.Addr, "sub=work&queue=w")
		testutil.Eventually(t, "queue interest live", func() bool { return natsSubsOf(t, ns, "work") == 1 })
		const n = 40
		for i := range n {
			if err := svc.Publish("work", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		// Both members read until every job is accounted for; a job seen
		// twice fails at once.
		got := make(chan string, 2*n)
		for _, c := range []*websocket.Conn{c1, c2} {
			go func() {
				ctx, cancel := ctxWait()
				defer cancel()
				for {
					_, p, err := c.Read(ctx)
					if err != nil {
						return
					}
					got <- string(p)
				}
			}()
		}
		seen := map[string]bool{}
		deadline := time.After(wait)
		for len(seen) < n {
			select {
			case job := <-got:
				if seen[job] {
					t.Fatalf("job %s delivered twice", job)
				}
				seen[job] = true
			case <-deadline:
				t.Fatalf("queue members got %d of %d jobs", len(seen), n)
			}
		}
	})

	t.Run("data without pub closes 1008", func(t *testing.T) {
		c := dialRaw(t, b.Addr, "sub=quiet")
		ctx, cancel := ctxWait()
		defer cancel()
		_ = c.Write(ctx, websocket.MessageText, []byte("hi"))
		_, _, err := c.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("got %v, want close 1008", err)
		}
	})

	t.Run("handshake validation", func(t *testing.T) {
		cases := []struct {
			query string
			want  int
		}{
			{"", http.StatusBadRequest},
			{"sub=a..b", http.StatusBadRequest},
			{"pub=a.*", http.StatusBadRequest},
			{"pub=a%20b", http.StatusBadRequest},
			{"queue=q", http.StatusBadRequest},
			{"sub=$SYS.>", http.StatusForbidden},
			{"pub=_INBOX.x", http.StatusForbidden},
			{"sub=_INBOX.>", http.StatusForbidden},
		}
		for _, tc := range cases {
			ctx, cancel := ctxWait()
			_, resp, err := websocket.Dial(ctx, "ws://"+b.Addr+"/ws/raw?"+tc.query, nil)
			cancel()
			if err == nil || resp == nil || resp.StatusCode != tc.want {
				code := 0
				if resp != nil {
					code = resp.StatusCode
				}
				t.Errorf("%q: status %d (%v), want %d", tc.query, code, err, tc.want)
			}
		}
	})
}

// TestRawModeLimits: the size limit and slow-consumer rules of /ws apply.
func TestRawModeLimits(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.MaxPayload = 1024 })
	c := dialRaw(t, b.Addr, "pub=big")
	ctx, cancel := ctxWait()
	defer cancel()
	_ = c.Write(ctx, websocket.MessageBinary, make([]byte, 2000))
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("got %v, want close 1009", err)
	}
}
