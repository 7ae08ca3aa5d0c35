package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// What a client may do (issue 13): reserved headers, the identity headers
// services can trust, queue-group permissions and the protocol's edges.
// The caps are in caps_test.go.

// TestReservedHeadersRefused: a Nats-* or Wsbridge-* header on pub or req,
// in any case, is bad_request naming the header, nothing is published, and
// a stream that allows rollups keeps every message.
func TestReservedHeadersRefused(t *testing.T) {
	ns := testutil.StartNATS(t, true, nil)
	js, err := jetstream.New(testutil.NATSClient(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROLL", Subjects: []string{"roll.>"}, AllowRollup: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := js.Publish(ctx, "roll.x", []byte(`{"n":`+itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Everything published on roll.> reaches this subscriber, in order.
	watcher := testutil.NATSClient(t, ns)
	seen, err := watcher.SubscribeSync("roll.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}

	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "mallory", allowAll()))
	cases := []struct{ name, op, header string }{
		{"rollup on an acked pub", "ackpub", "Nats-Rollup"},
		{"rollup on a pub", "pub", "Nats-Rollup"},
		{"rollup on a req", "req", "Nats-Rollup"},
		{"lower case", "ackpub", "nats-rollup"},
		{"upper case", "pub", "NATS-ROLLUP"},
		{"expected last sequence", "ackpub", "Nats-Expected-Last-Sequence"},
		{"ttl", "ackpub", "Nats-TTL"},
		{"msg id", "ackpub", "Nats-Msg-Id"},
		{"any nats header", "pub", "Nats-Anything"},
		{"identity sub", "pub", "Wsbridge-Sub"},
		{"identity node", "req", "wsbridge-node"},
		{"any wsbridge header", "ackpub", "WSBRIDGE-X"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "h" + itoa(i)
			cmd := map[string]any{"op": tc.op, "id": id, "subject": "roll.x", "data": map[string]int{"n": 99},
				"headers": map[string][]string{"X-Fine": {"1"}, tc.header: {"all"}}}
			switch tc.op {
			case "ackpub":
				cmd["op"], cmd["ack"] = "pub", true
			case "req":
				cmd["timeout_ms"] = 1000
			}
			c.send(cmd)
			f := c.expectErr(id, "bad_request")
			if want := "header " + tc.header + " is reserved"; f.Message != want {
				t.Fatalf("message %q, want %q", f.Message, want)
			}
		})
	}

	// Nothing went out: the first message the subscriber sees after the
	// refusals is the sentinel published after them.
	c.send(map[string]any{"op": "pub", "id": "sentinel", "subject": "roll.sentinel", "data": 0, "headers": map[string][]string{"X-Nats-Lookalike": {"fine"}}})
	c.expect("ok", "sentinel")
	m, err := seen.NextMsg(wait)
	if err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	if m.Subject != "roll.sentinel" {
		t.Fatalf("first message after the refusals: %s %q %v, want the sentinel", m.Subject, m.Data, m.Header)
	}
	if got := m.Header.Get("X-Nats-Lookalike"); got != "fine" {
		t.Fatalf("X-Nats-Lookalike = %q: a header that only contains Nats- must pass", got)
	}

	// 1–3 and the sentinel (roll.sentinel is captured too, and stored
	// shortly after the subscriber sees it).
	var state jetstream.StreamState
	testutil.Eventually(t, "the stream to store the sentinel", func() bool {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		state = info.State
		return state.LastSeq >= 4
	})
	if state.FirstSeq != 1 || state.Msgs != 4 || state.LastSeq != 4 {
		t.Fatalf("stream state %+v, want seqs 1-4 intact", state)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		rm, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if want := `{"n":` + itoa(int(seq)) + `}`; string(rm.Data) != want {
			t.Fatalf("seq %d = %q, want %q", seq, rm.Data, want)
		}
	}
}

// identityService records the headers of what arrives on svc.who and
// answers requests with "ok".
func identityService(t *testing.T, nc *nats.Conn) <-chan nats.Header {
	t.Helper()
	got := make(chan nats.Header, 16)
	if _, err := nc.Subscribe("svc.who", func(m *nats.Msg) {
		got <- m.Header
		if m.Reply != "" {
			_ = m.Respond([]byte(`"ok"`))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return got
}

func nextHeader(t *testing.T, ch <-chan nats.Header) nats.Header {
	t.Helper()
	select {
	case h := <-ch:
		return h
	case <-time.After(wait):
		t.Fatal("the service got nothing")
		return nil
	}
}

// TestIdentityHeaders: a nats.go service sees Wsbridge-Sub (jwt mode) and
// Wsbridge-Node on what clients publish and request, in JSON and raw mode,
// next to the client's own headers; anonymous clients carry no
// Wsbridge-Sub.
func TestIdentityHeaders(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	got := identityService(t, testutil.NATSClient(t, ns))
	jwtB := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.NodeID = "node-jwt" })
	anonB := startBridge(t, ns, func(c *bridge.Config) { c.NodeID = "node-anon" })
	tok := userToken(t, "alice", allowAll())

	for _, tc := range []struct {
		name, addr, node, sub string
	}{
		{"jwt", jwtB.Addr, "node-jwt", "alice"},
		{"anonymous", anonB.Addr, "node-anon", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connectAs(t, tc.addr, tok) // the anonymous bridge ignores the token
			check := func(what string, h nats.Header) {
				t.Helper()
				if v := h.Values("Wsbridge-Node"); len(v) != 1 || v[0] != tc.node {
					t.Errorf("%s: Wsbridge-Node = %q, want [%q]", what, v, tc.node)
				}
				v := h.Values("Wsbridge-Sub")
				switch {
				case tc.sub == "" && len(v) != 0:
					t.Errorf("%s: anonymous client carries Wsbridge-Sub %q", what, v)
				case tc.sub != "" && (len(v) != 1 || v[0] != tc.sub):
					t.Errorf("%s: Wsbridge-Sub = %q, want [%q]", what, v, tc.sub)
				}
			}
			c.send(map[string]any{"op": "pub", "id": "p", "subject": "svc.who", "data": 1, "headers": map[string][]string{"X-Trace": {"t1"}}})
			c.expect("ok", "p")
			h := nextHeader(t, got)
			check("pub", h)
			if h.Get("X-Trace") != "t1" {
				t.Errorf("pub: the client's X-Trace header is lost: %v", h)
			}
			c.send(map[string]any{"op": "pub", "id": "p2", "subject": "svc.who", "data": 1})
			c.expect("ok", "p2")
			check("pub without headers", nextHeader(t, got))
			c.send(map[string]any{"op": "req", "id": "r", "subject": "svc.who", "data": 1})
			c.expect("reply", "r")
			check("req", nextHeader(t, got))

			rc, _, body := handshake(t, "ws://"+tc.addr+"/ws/raw?pub=svc.who&token="+tok, nil)
			if rc == nil {
				t.Fatalf("raw handshake refused: %s", body)
			}
			ctx, cancel := ctxWait()
			defer cancel()
			if err := rc.Write(ctx, websocket.MessageText, []byte("raw")); err != nil {
				t.Fatal(err)
			}
			check("raw pub", nextHeader(t, got))
		})
	}
}

// queuePerms is one user's sub permissions covering the four queue rules:
//   - news.>          plain allow: any queue or none;
//   - jobs.> workers  allow with a queue: that queue only;
//   - svc.> with deny "svc.> workers": every queue but workers, and none;
//   - secret.> with plain deny "secret.x": secret.x with no queue or any.
var queuePerms = permDir{
	Allow: []string{"news.>", "jobs.> workers", "svc.>", "secret.>"},
	Deny:  []string{"svc.> workers", "secret.x"},
}

// queueCases are subscriptions and whether queuePerms allows them.
var queueCases = []struct {
	name, subject, queue string
	ok                   bool
}{
	{"plain allow, no queue", "news.x", "", true},
	{"plain allow, a queue", "news.x", "anyq", true},
	{"queue allow, its queue", "jobs.x", "workers", true},
	{"queue allow, no queue", "jobs.x", "", false},
	{"queue allow, another queue", "jobs.x", "thieves", false},
	{"queue deny, no queue", "svc.x", "", true},
	{"queue deny, another queue", "svc.x", "readers", true},
	{"queue deny, its queue", "svc.x", "workers", false},
	{"queue deny, its queue under a wildcard", "svc.*", "workers", false},
	{"plain deny, no queue", "secret.x", "", false},
	{"plain deny, a queue", "secret.x", "anyq", false},
	{"plain deny, elsewhere", "secret.y", "anyq", true},
}

// subCmd is a sub command with queue when it is not empty.
func subCmd(id, subject, queue string) map[string]any {
	cmd := map[string]any{"op": "sub", "id": id, "subject": subject}
	if queue != "" {
		cmd["queue"] = queue
	}
	return cmd
}

// rawSubURL is a /ws/raw URL subscribing to subject in queue, with token
// when it is not empty.
func rawSubURL(addr, subject, queue, token string) string {
	q := url.Values{"sub": {subject}}
	if queue != "" {
		q.Set("queue", queue)
	}
	if token != "" {
		q.Set("token", token)
	}
	return "ws://" + addr + "/ws/raw?" + q.Encode()
}

// TestQueuePermissions: "SUBJECT QUEUE" entries in the nats claim, checked
// on JSON subs (permission_denied) and raw mode's queue= (403).
func TestQueuePermissions(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	tok := userToken(t, "alice", &perms{Pub: permDir{Allow: []string{">"}}, Sub: queuePerms})

	t.Run("json", func(t *testing.T) {
		conn := connectAs(t, b.Addr, tok)
		for i, tc := range queueCases {
			t.Run(tc.name, func(t *testing.T) {
				c := &wsClient{t: t, c: conn.c}
				id := "q" + itoa(i)
				c.send(subCmd(id, tc.subject, tc.queue))
				if tc.ok {
					c.expect("ok", id)
				} else {
					c.expectErr(id, "permission_denied")
				}
			})
		}
	})
	t.Run("raw", func(t *testing.T) {
		for _, tc := range queueCases {
			t.Run(tc.name, func(t *testing.T) {
				u := rawSubURL(b.Addr, tc.subject, tc.queue, tok)
				if !tc.ok {
					expectRefused(t, u, nil, http.StatusForbidden, tok)
					return
				}
				if c, resp, body := handshake(t, u, nil); c == nil {
					t.Fatalf("got %d %q, want 101", resp.StatusCode, body)
				}
			})
		}
	})
}

// TestQueuePermissionsRefresh: op auth re-checks queue subscriptions
// against the new token: a queue the new token denies, and a plain
// subscription where the new token allows only a queue, are dropped with
// permission_denied; the others stay and keep delivering.
func TestQueuePermissionsRefresh(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	svc := testutil.NATSClient(t, ns)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	before := &perms{Pub: permDir{Allow: []string{">"}}, Sub: permDir{Allow: []string{"svc.>", "jobs.>"}}}
	after := &perms{Pub: permDir{Allow: []string{">"}}, Sub: permDir{Allow: []string{"svc.>", "jobs.> workers"}, Deny: []string{"svc.> workers"}}}
	c := connectAs(t, b.Addr, userToken(t, "alice", before))
	c.subscribe("svc-workers", "svc.x", "workers") // denied after
	c.subscribe("svc-readers", "svc.x", "readers") // kept
	c.subscribe("jobs-workers", "jobs.x", "workers")
	c.subscribe("jobs-plain", "jobs.x", "") // denied after: only the queue is allowed

	c.send(map[string]any{"op": "auth", "id": "r", "token": userToken(t, "alice", after)})
	dropped := map[string]bool{}
	for {
		f := c.recv()
		if f.Op == "ok" && f.Ref == "r" {
			break
		}
		if f.Op != "err" || f.Code != "permission_denied" {
			t.Fatalf("got %s, want permission_denied errs, then ok r", f.raw)
		}
		dropped[f.Ref] = true
	}
	if len(dropped) != 2 || !dropped["svc-workers"] || !dropped["jobs-plain"] {
		t.Fatalf("dropped %v, want svc-workers and jobs-plain", dropped)
	}
	// The kept ones still deliver; the dropped ones send nothing more. A
	// ping after the publishes proves nothing else was queued.
	for _, s := range []string{"svc.x", "jobs.x"} {
		if err := svc.Publish(s, []byte(`"`+s+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"svc-readers": "svc.x", "jobs-workers": "jobs.x"}
	for len(want) > 0 {
		f := c.recv()
		if f.Op != "msg" || want[f.Sid] != f.Subject {
			t.Fatalf("got %s, want a msg for one of %v", f.raw, want)
		}
		delete(want, f.Sid)
	}
	c.send(map[string]any{"op": "ping", "id": "sync"})
	c.expect("pong", "sync")
}

// TestQueuePermissionsAnonymous: BRIDGE_ANON_SUB (auth.Config.AnonSub)
// entries with a queue limit anonymous clients to that queue, in JSON and
// raw mode; plain entries allow any queue. Anonymous permissions have no
// deny list, so the deny rules are the jwt tests' only.
func TestQueuePermissionsAnonymous(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, auth.Config{Mode: auth.ModeNone, AnonSub: []string{"news.>", "jobs.> workers"}}, nil, nil)
	c := dial(t, b.Addr)
	runOps(t, c, []opCase{
		{"queue entry, its queue", `{"op":"sub","id":"?","subject":"jobs.x","queue":"workers"}`, "ok"},
		{"queue entry, no queue", `{"op":"sub","id":"?","subject":"jobs.x"}`, "permission_denied"},
		{"queue entry, other queue", `{"op":"sub","id":"?","subject":"jobs.x","queue":"thieves"}`, "permission_denied"},
		{"plain entry, a queue", `{"op":"sub","id":"?","subject":"news.x","queue":"anyq"}`, "ok"},
	})
	expectRefused(t, "ws://"+b.Addr+"/ws/raw?sub=jobs.x&queue=thieves", nil, http.StatusForbidden, "")
	expectRefused(t, "ws://"+b.Addr+"/ws/raw?sub=jobs.x", nil, http.StatusForbidden, "")
	if c, resp, body := handshake(t, "ws://"+b.Addr+"/ws/raw?sub=jobs.x&queue=workers", nil); c == nil {
		t.Fatalf("raw queue=workers: %d %q, want 101", resp.StatusCode, body)
	}
}

// TestWildcardCharactersInTokens: a token with * or > next to other
// characters is invalid_subject on every op, before permissions (the
// anonymous client may use >), and 400 in raw mode.
func TestWildcardCharactersInTokens(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	anon := startBridge(t, ns, nil)
	jwtB := authBridge(t, ns, hsConfig(), nil, nil)
	narrow := userToken(t, "bob", &perms{Pub: permDir{Allow: []string{"only.this"}}, Sub: permDir{Allow: []string{"only.this"}}})
	for _, who := range []struct {
		name string
		c    func(t *testing.T) *wsClient
	}{
		{"anonymous allowed >", func(t *testing.T) *wsClient { return dial(t, anon.Addr) }},
		{"jwt allowed nothing of it", func(t *testing.T) *wsClient { return connectAs(t, jwtB.Addr, narrow) }},
	} {
		t.Run(who.name, func(t *testing.T) {
			c := who.c(t)
			var cases []opCase
			for _, s := range []string{"a*", "b>", "x.a*", "x.b>.y", "*a.x", ">b", "a.**", "a.>>"} {
				cases = append(cases,
					opCase{"sub " + s, `{"op":"sub","id":"?","subject":"` + s + `"}`, "invalid_subject"},
					opCase{"pub " + s, `{"op":"pub","id":"?","subject":"` + s + `","data":1}`, "invalid_subject"},
					opCase{"ack pub " + s, `{"op":"pub","id":"?","ack":true,"subject":"` + s + `","data":1}`, "invalid_subject"},
					opCase{"req " + s, `{"op":"req","id":"?","subject":"` + s + `","data":1}`, "invalid_subject"},
				)
			}
			runOps(t, c, cases)
		})
	}
	for _, q := range []string{"sub=a*", "sub=x.b>", "pub=a*", "pub=x.b>", "sub=ok.x&pub=a*"} {
		t.Run("raw "+q, func(t *testing.T) {
			expectRefused(t, "ws://"+anon.Addr+"/ws/raw?"+strings.ReplaceAll(q, ">", "%3E"), nil, http.StatusBadRequest, "")
		})
	}
}

// TestSubWithoutSubject: a sub with an id and no subject is bad_request.
func TestSubWithoutSubject(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	c := dial(t, b.Addr)
	runOps(t, c, []opCase{
		{"no subject", `{"op":"sub","id":"?"}`, "bad_request"},
		{"empty subject", `{"op":"sub","id":"?","subject":""}`, "bad_request"},
		{"no subject with a queue", `{"op":"sub","id":"?","queue":"q"}`, "bad_request"},
		{"no subject with from", `{"op":"sub","id":"?","from":"all"}`, "bad_request"},
	})
}

// TestDeflateUnknownParameter: with compression on, an offer the bridge
// cannot honour is declined (RFC 7692 §5): 101 without the extension, and
// plain frames after it.
func TestDeflateUnknownParameter(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.Compression = true; c.CompressionMin = 1 })
	for _, offer := range []string{
		"permessage-deflate; unknown_param",
		"permessage-deflate; unknown_param=1",
		"permessage-deflate; server_max_window_bits=zz",
		"x-webkit-deflate-frame",
	} {
		t.Run(offer, func(t *testing.T) {
			r := testutil.Dial(t, b.Addr, 0)
			r.Write([]byte(testutil.UpgradeRequest("/ws", "Sec-WebSocket-Extensions: "+offer)))
			resp := r.ReadResponse()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("offer %q: %s, want 101 without the extension", offer, resp.Status)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
				t.Fatalf("offer %q: negotiated %q, want none", offer, ext)
			}
			// Uncompressed from here on: the hello, and the answer to a
			// ping, carry no RSV1.
			r.ExpectText(`{"op":"hello"`)
			r.SendText(`{"op":"ping","id":"p"}`)
			r.ExpectText(`{"op":"pong"`)
		})
	}
	t.Run("a declined offer, then one it can take", func(t *testing.T) {
		r := testutil.Dial(t, b.Addr, 0)
		r.Write([]byte(testutil.UpgradeRequest("/ws", "Sec-WebSocket-Extensions: permessage-deflate; unknown_param, permessage-deflate")))
		resp := r.ReadResponse()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s, want 101", resp.Status)
		}
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" && !strings.HasPrefix(ext, "permessage-deflate") {
			t.Fatalf("negotiated %q", ext)
		}
	})
}

// TestAckedPubNoStream: an acked pub to a subject no stream captures is
// no_stream, with or without core subscribers listening.
func TestAckedPubNoStream(t *testing.T) {
	e := startJS(t, nil)
	c := dial(t, e.b.Addr)
	c.send(map[string]any{"op": "pub", "id": "none", "ack": true, "subject": "plain.x", "data": 1})
	c.expectErr("none", "no_stream")

	listener := testutil.NATSClient(t, e.ns)
	if _, err := listener.SubscribeSync("plain.>"); err != nil {
		t.Fatal(err)
	}
	if err := listener.Flush(); err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"op": "pub", "id": "listened", "ack": true, "subject": "plain.x", "data": 1})
	f := c.recv()
	if f.Op != "err" || f.Ref != "listened" || f.Code != "no_stream" {
		t.Fatalf("with a core subscriber listening: got %s, want err no_stream", f.raw)
	}
	// A subject a stream does capture still acks, listener or not.
	if _, err := listener.SubscribeSync("orders.>"); err != nil {
		t.Fatal(err)
	}
	if err := listener.Flush(); err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"op": "pub", "id": "stored", "ack": true, "subject": "orders.x", "data": 1})
	if f := c.expect("ok", "stored"); f.Stream != "ORDERS" {
		t.Fatalf("captured subject: %s", f.raw)
	}
}

// TestStreamErrorIsBadRequest: a stream refusing what the client sent (a
// message over the stream's max_msg_size) is bad_request, not internal,
// and a client repeating it cannot write a log line per refusal.
func TestStreamErrorIsBadRequest(t *testing.T) {
	var logs logBuffer
	e := startJS(t, func(c *bridge.Config) { c.Logger = logs.logger() })
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"small.>"}, MaxMsgSize: 256}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, e.b.Addr)
	c.send(map[string]any{"op": "pub", "id": "ok", "ack": true, "subject": "small.x", "data": 1})
	if f := c.expect("ok", "ok"); f.Stream != "SMALL" {
		t.Fatalf("small message: %s", f.raw)
	}
	c.send(map[string]any{"op": "pub", "id": "big", "ack": true, "subject": "small.x", "data": strings.Repeat("x", 512)})
	f := c.expectErr("big", "bad_request")
	t.Logf("stream refusal: %s", f.Message)
	const n = 50
	for i := range n {
		c.send(map[string]any{"op": "pub", "id": "big" + itoa(i), "ack": true, "subject": "small.x", "data": strings.Repeat("x", 512)})
		c.expectErr("big"+itoa(i), "bad_request")
	}
	if lines := strings.Count(logs.String(), "small.x"); lines >= n {
		t.Fatalf("%d log lines name the subject after %d refusals: not rate-limited\n%s", lines, n+1, logs.String())
	}
}

// TestTimeoutClamp: timeout_ms far beyond the cap, up to the largest
// int64, is clamped to BRIDGE_MAX_REQUEST_TIMEOUT: the request waits for
// its reply instead of timing out at once.
func TestTimeoutClamp(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	svc := testutil.NATSClient(t, ns)
	held := make(chan *nats.Msg, 4)
	if _, err := svc.Subscribe("slow.svc", func(m *nats.Msg) { held <- m }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, ns, nil)
	c := dial(t, b.Addr)
	for _, ms := range []string{"9223372036854775807", "9223372036854775", "9223372036854"} {
		t.Run(ms, func(t *testing.T) {
			c.send(`{"op":"req","id":"r","subject":"slow.svc","data":1,"timeout_ms":` + ms + `}`)
			var m *nats.Msg
			select {
			case m = <-held:
			case <-time.After(wait):
				t.Fatal("the request never reached the service")
			}
			// The bridge has had the request, and the answer to a later
			// ping, to time out in: nothing but the pong may come.
			c.send(map[string]any{"op": "ping", "id": "p"})
			c.expect("pong", "p")
			if err := m.Respond([]byte(`"late but fine"`)); err != nil {
				t.Fatal(err)
			}
			c.expect("reply", "r")
		})
	}
}

// TestMaxFrame: hello says max_frame, the largest frame the bridge sends,
// and a message near NATS's max_payload, binary so base64 grows it, fits
// in it.
func TestMaxFrame(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	svc := testutil.NATSClient(t, ns)
	b := startBridge(t, ns, nil)
	ctx, cancel := ctxWait()
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+b.Addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	_, p, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hello struct {
		Op         string `json:"op"`
		MaxPayload int64  `json:"max_payload"`
		MaxFrame   int64  `json:"max_frame"`
	}
	if err := json.Unmarshal(p, &hello); err != nil || hello.Op != "hello" {
		t.Fatalf("hello %q: %v", p, err)
	}
	if hello.MaxFrame <= 0 {
		t.Fatalf("hello %s has no max_frame", p)
	}
	if hello.MaxFrame < hello.MaxPayload {
		t.Fatalf("max_frame %d below max_payload %d", hello.MaxFrame, hello.MaxPayload)
	}
	// A client that sets its read limit to max_frame reads everything.
	c.SetReadLimit(hello.MaxFrame)
	w := &wsClient{t: t, c: c}
	w.subscribe("s", "big.bin", "")
	size := min(900<<10, int(svc.MaxPayload())-1024)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + 0x80)
	}
	if err := svc.Publish("big.bin", data); err != nil {
		t.Fatal(err)
	}
	f := w.recv()
	if f.Op != "msg" || f.B64 == nil {
		t.Fatalf("got %.200s, want a binary msg", f.raw)
	}
	if int64(len(f.raw)) > hello.MaxFrame {
		t.Fatalf("frame of %d bytes, over max_frame %d", len(f.raw), hello.MaxFrame)
	}
}

// TestRawSubLiveAt101: in raw mode the 101 means the sub= subscription is
// live: a message published the moment the handshake returns arrives,
// every time.
func TestRawSubLiveAt101(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	svc := testutil.NATSClient(t, ns)
	b := startBridge(t, ns, nil)
	for i := range 20 {
		subject := "live.n" + itoa(i)
		r := testutil.DialWS(t, b.Addr, "/ws/raw?sub="+subject)
		if err := svc.Publish(subject, []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		f, err := r.TryReadFrame()
		if err != nil {
			t.Fatalf("attempt %d: the message published right after the 101 was lost: %v", i, err)
		}
		if f.Op != ws.OpText || string(f.Payload) != "first" {
			t.Fatalf("attempt %d: got %v, want text \"first\"", i, f)
		}
		_ = r.Close()
	}
}

// TestJetStreamSkipsReservedSubjects: a stream that also stores messages
// on reserved subjects never hands them to a from subscription, in its
// history (the catch-up) or live (the feed).
func TestJetStreamSkipsReservedSubjects(t *testing.T) {
	e := startJS(t, nil)
	ctx, cancel := ctxWait()
	defer cancel()
	// ORDERS would overlap MIX.
	if err := e.js.DeleteStream(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	// A stream on *.mix.> also captures _INBOX.mix.>; nats-server wants
	// no_ack for subjects that overlap its API, so the test publishes
	// plainly and waits for the stream to count the messages.
	mix, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "MIX", Subjects: []string{"*.mix.>"}, NoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	nc := testutil.NATSClient(t, e.ns)
	stored := uint64(0)
	pub := func(subjects ...string) {
		t.Helper()
		for _, s := range subjects {
			if err := nc.Publish(s, []byte(`"`+s+`"`)); err != nil {
				t.Fatal(err)
			}
		}
		stored += uint64(len(subjects))
		testutil.Eventually(t, "the stream to store them", func() bool {
			info, err := mix.Info(ctx)
			return err == nil && info.State.Msgs == stored
		})
	}
	pub("app.mix.1", "_INBOX.mix.secret", "app.mix.2")
	c := dial(t, e.b.Addr)
	c.send(map[string]any{"op": "sub", "id": "all", "subject": "*.mix.>", "from": "all"})
	var got []string
	for len(got) < 2 {
		f := c.recv()
		switch f.Op {
		case "ok":
		case "msg":
			got = append(got, f.Subject)
		default:
			t.Fatalf("got %s", f.raw)
		}
	}
	pub("_INBOX.mix.live", "app.mix.3")
	for f := c.recv(); ; f = c.recv() {
		if f.Op == "ok" {
			continue
		}
		if f.Op != "msg" {
			t.Fatalf("got %s", f.raw)
		}
		got = append(got, f.Subject)
		break
	}
	c.send(map[string]any{"op": "ping", "id": "sync"})
	c.expect("pong", "sync")
	if strings.Join(got, " ") != "app.mix.1 app.mix.2 app.mix.3" {
		t.Fatalf("delivered %v, want app.mix.1-3 without the _INBOX ones", got)
	}
}
