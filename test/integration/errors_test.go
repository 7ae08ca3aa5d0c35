package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// denyAuth refuses everything under secret.> so permission_denied can be
// tested without the auth package.
type denyAuth struct{}

func (denyAuth) Authenticate(string) (bridge.Identity, error) { return denyIdent{}, nil }

type denyIdent struct{}

func (denyIdent) Subject() string                      { return "" }
func (denyIdent) Expires() time.Time                   { return time.Time{} }
func (denyIdent) CanPublish(s string) bool             { return !strings.HasPrefix(s, "secret.") }
func (denyIdent) CanSubscribe(s string) bool           { return !strings.HasPrefix(s, "secret.") && s != ">" }
func (d denyIdent) CanSubscribeQueue(s, _ string) bool { return d.CanSubscribe(s) }

func TestErrorCodes(t *testing.T) {
	// NATS's own max_payload below the bridge's: payload_too_large.
	ns := testutil.StartNATS(t, false, func(o *natsserver.Options) { o.MaxPayload = 1024 })
	b := startBridge(t, ns, func(c *bridge.Config) {
		c.Auth = denyAuth{}
		c.MaxSubscriptions = 2
	})
	c := dial(t, b.Addr)
	c.subscribe("taken", "ok.subject", "")

	cases := []struct {
		name, cmd, ref, code string
	}{
		{"malformed json", `{"op":"sub",`, "", "bad_request"},
		{"not an object", `[1,2]`, "", "bad_request"},
		{"unknown op", `{"op":"dance","id":"x1"}`, "x1", "bad_request"},
		{"missing op", `{"id":"x2"}`, "x2", "bad_request"},
		{"wrong type keeps ref", `{"op":"sub","id":"x3","subject":7}`, "x3", "bad_request"},
		{"id too long", `{"op":"sub","id":"` + strings.Repeat("i", 65) + `","subject":"a"}`, strings.Repeat("i", 65), "bad_request"},
		{"empty id", `{"op":"sub","id":"","subject":"a"}`, "", "bad_request"},
		{"data and b64", `{"op":"pub","id":"p","subject":"a","data":1,"b64":"AA=="}`, "p", "bad_request"},
		{"bad base64", `{"op":"pub","id":"p","subject":"a","b64":"!!"}`, "p", "bad_request"},
		{"empty token", `{"op":"sub","id":"s","subject":"a..b"}`, "s", "invalid_subject"},
		{"space", `{"op":"sub","id":"s","subject":"a b"}`, "s", "invalid_subject"},
		{"gt not last", `{"op":"sub","id":"s","subject":"a.>.b"}`, "s", "invalid_subject"},
		{"wildcard publish", `{"op":"pub","id":"p","subject":"a.*"}`, "p", "invalid_subject"},
		{"empty subject", `{"op":"pub","id":"p","subject":""}`, "p", "invalid_subject"},
		{"publish $JS", `{"op":"pub","id":"p","subject":"$JS.API.INFO"}`, "p", "permission_denied"},
		{"subscribe $SYS", `{"op":"sub","id":"s","subject":"$SYS.>"}`, "s", "permission_denied"},
		{"subscribe _INBOX", `{"op":"sub","id":"s","subject":"_INBOX.>"}`, "s", "permission_denied"},
		{"request _INBOX", `{"op":"req","id":"r","subject":"_INBOX.abc"}`, "r", "permission_denied"},
		{"publish denied", `{"op":"pub","id":"p","subject":"secret.x"}`, "p", "permission_denied"},
		{"subscribe denied", `{"op":"sub","id":"s","subject":"secret.x"}`, "s", "permission_denied"},
		{"duplicate id", `{"op":"sub","id":"taken","subject":"a"}`, "taken", "duplicate_id"},
		{"unsub unknown", `{"op":"unsub","id":"nope"}`, "nope", "not_found"},
		{"payload too large", `{"op":"pub","id":"p","subject":"a","b64":"` + strings.Repeat("A", 2000) + `"}`, "p", "payload_too_large"},
		{"pub error without id has no ref", `{"op":"pub","subject":"a.*"}`, "", "invalid_subject"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.cmd)
			f := c.expect("err", tc.ref)
			if f.Code != tc.code || f.Message == "" {
				t.Fatalf("got %s, want code %s with a message", f.raw, tc.code)
			}
		})
	}
	t.Run("too many subscriptions", func(t *testing.T) {
		c.send(`{"op":"sub","id":"second","subject":"b"}`)
		c.expect("ok", "second")
		c.send(`{"op":"sub","id":"third","subject":"c"}`)
		c.expectErr("third", "too_many_subscriptions")
	})
	t.Run("connection stays open", func(t *testing.T) {
		c.send(`{"op":"ping","id":"alive"}`)
		c.expect("pong", "alive")
	})
}

func TestBinaryFrameOnWSCloses1003(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	c := dial(t, b.Addr)
	ctx, cancel := ctxWait()
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if code, reason := c.closeStatus(); code != websocket.StatusUnsupportedData || reason == "" {
		t.Fatalf("close %d %q, want 1003 with a reason", code, reason)
	}
}

func TestOversizedMessageCloses1009(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.MaxPayload = 1024 })
	c := dial(t, b.Addr)
	c.send(`{"op":"pub","subject":"a","data":"` + strings.Repeat("x", 2000) + `"}`)
	if code, reason := c.closeStatus(); code != websocket.StatusMessageTooBig || reason == "" {
		t.Fatalf("close %d %q, want 1009 with a reason", code, reason)
	}
}

func TestRequestReply(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.MaxRequestTimeout = 300 * time.Millisecond })
	svc := testutil.NATSClient(t, ns)
	if _, err := svc.Subscribe("svc.echo", func(m *natsMsg) {
		r := newMsg(m.Reply)
		r.Data = append([]byte(`{"echo":`), append(m.Data, '}')...)
		r.Header.Set("Served-By", "svc")
		_ = m.RespondMsg(r)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Subscribe("svc.silent", func(*natsMsg) {}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b.Addr)

	t.Run("reply", func(t *testing.T) {
		c.send(`{"op":"req","id":"r1","subject":"svc.echo","data":[1,2]}`)
		f := c.expect("reply", "r1")
		if string(f.Data) != `{"echo":[1,2]}` || f.Headers["Served-By"][0] != "svc" {
			t.Fatalf("got %s", f.raw)
		}
	})
	t.Run("no responders", func(t *testing.T) {
		c.send(`{"op":"req","id":"r2","subject":"svc.nobody","data":1}`)
		c.expectErr("r2", "no_responders")
	})
	t.Run("timeout capped by config", func(t *testing.T) {
		start := time.Now()
		c.send(`{"op":"req","id":"r3","subject":"svc.silent","data":1,"timeout_ms":60000}`)
		c.expectErr("r3", "timeout")
		if time.Since(start) > wait/2 {
			t.Fatal("timeout_ms was not capped by MaxRequestTimeout")
		}
	})
	t.Run("concurrent requests answer by ref", func(t *testing.T) {
		for i := range 20 {
			c.send(map[string]any{"op": "req", "id": "c" + itoa(i), "subject": "svc.echo", "data": i})
		}
		seen := map[string]bool{}
		for range 20 {
			f := c.recv()
			if f.Op != "reply" || string(f.Data) != `{"echo":`+strings.TrimPrefix(f.Ref, "c")+`}` {
				t.Fatalf("got %s", f.raw)
			}
			seen[f.Ref] = true
		}
		if len(seen) != 20 {
			t.Fatalf("got %d distinct replies", len(seen))
		}
	})
}

func TestPingOp(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	c := dial(t, b.Addr)
	c.send(`{"op":"ping","id":"x"}`)
	f := c.expect("pong", "x")
	if string(f.raw) != `{"op":"pong","ref":"x"}` {
		t.Fatalf("pong = %s", f.raw)
	}
}
