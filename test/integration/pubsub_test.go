package integration

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

func TestSubscribeReceivesServicePublish(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)

	c := dial(t, b.Addr)
	c.subscribe("s1", "orders.>", "")
	if err := svc.Publish("orders.new", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	f := c.expect("msg", "")
	if f.Sid != "s1" || f.Subject != "orders.new" || string(f.Data) != `{"id":1}` {
		t.Fatalf("got %s", f.raw)
	}
}

func TestHello(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.MaxPayload = 4096 })
	c := dialPath(t, b.Addr, "/ws")
	f := c.recv()
	if f.Op != "hello" || f.Node != "test-node" || f.MaxPayload != 4096 {
		t.Fatalf("hello = %s", f.raw)
	}
}

// TestDeliveryRule: a payload that is exactly one JSON value arrives as
// data, verbatim; anything else as b64; every payload round-trips.
func TestDeliveryRule(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	c := dial(t, b.Addr)
	c.subscribe("s", "rule", "")

	cases := []struct {
		name    string
		payload []byte
		asData  bool
	}{
		{"object", []byte(`{"a":[1,2,{"b":null}]}`), true},
		{"string", []byte(`"hello"`), true},
		{"number", []byte(`-12.5e3`), true},
		{"null", []byte(`null`), true},
		{"unicode", []byte(`"héllo ✓ 🚀"`), true},
		{"plain text", []byte(`hello world`), false},
		{"two values", []byte(`1 2`), false},
		{"leading space", []byte(` 1`), false},
		{"invalid utf8 in string", []byte("\"\xff\""), false},
		{"raw bytes", []byte{0, 1, 2, 0xfe, 0xff}, false},
		{"empty", []byte{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := svc.Publish("rule", tc.payload); err != nil {
				t.Fatal(err)
			}
			f := c.expect("msg", "")
			switch {
			case tc.asData:
				if f.B64 != nil || string(f.Data) != string(tc.payload) {
					t.Fatalf("want data %s verbatim, got %s", tc.payload, f.raw)
				}
			default:
				if f.Data != nil || f.B64 == nil {
					t.Fatalf("want b64, got %s", f.raw)
				}
				got, err := base64.StdEncoding.DecodeString(*f.B64)
				if err != nil || string(got) != string(tc.payload) {
					t.Fatalf("b64 decodes to %q (%v), want %q", got, err, tc.payload)
				}
			}
		})
	}
}

func TestPublishToService(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	got := make(chan *nats.Msg, 10)
	if _, err := svc.ChanSubscribe("orders.*", got); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b.Addr)

	cases := []struct {
		name    string
		cmd     string
		payload string
		header  nats.Header
	}{
		{"json data as sent", `{"op":"pub","subject":"orders.new","data":{"id": 1,"x":[ true ]},"id":"p1"}`, `{"id": 1,"x":[ true ]}`, nil},
		{"b64 bytes", `{"op":"pub","subject":"orders.bin","b64":"AAH+/w==","id":"p1"}`, "\x00\x01\xfe\xff", nil},
		{"neither is empty", `{"op":"pub","subject":"orders.empty","id":"p1"}`, "", nil},
		{"headers", `{"op":"pub","subject":"orders.h","data":1,"headers":{"X-Trace":["a","b"]},"id":"p1"}`, "1", nats.Header{"X-Trace": {"a", "b"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.cmd)
			c.expect("ok", "p1")
			select {
			case m := <-got:
				if string(m.Data) != tc.payload {
					t.Fatalf("payload %q, want %q", m.Data, tc.payload)
				}
				for k, v := range tc.header {
					if fmt.Sprint(m.Header[k]) != fmt.Sprint(v) {
						t.Fatalf("header %s = %v, want %v", k, m.Header[k], v)
					}
				}
			case <-time.After(wait):
				t.Fatal("service got nothing")
			}
		})
	}

	t.Run("without id no ok", func(t *testing.T) {
		c.send(`{"op":"pub","subject":"orders.quiet","data":1}`)
		c.send(`{"op":"ping","id":"after"}`)
		c.expect("pong", "after") // nothing came before the pong
		<-got
	})
}

func TestHeadersToClient(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	c := dial(t, b.Addr)
	c.subscribe("s", "h.x", "")
	m := nats.NewMsg("h.x")
	m.Header.Set("Trace-Id", "abc")
	m.Header.Add("Multi", "1")
	m.Header.Add("Multi", "2")
	m.Data = []byte(`true`)
	if err := svc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	f := c.expect("msg", "")
	if fmt.Sprint(f.Headers["Trace-Id"]) != "[abc]" || fmt.Sprint(f.Headers["Multi"]) != "[1 2]" {
		t.Fatalf("headers = %v", f.Headers)
	}
	if f.Reply != "" {
		t.Fatalf("unexpected reply in %s", f.raw)
	}
}

func TestWildcards(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	c := dial(t, b.Addr)
	c.subscribe("star", "a.*.c", "")
	c.subscribe("tail", "a.>", "")

	// a.end.c, matching both, comes last: per-subscription order means
	// each sid has seen everything before it once it sees a.end.c.
	for _, subj := range []string{"a.b.c", "a.b", "a.b.c.d", "x.b.c", "a.end.c"} {
		if err := svc.Publish(subj, []byte(`0`)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{"star a.b.c": true, "tail a.b.c": true, "tail a.b": true, "tail a.b.c.d": true}
	ended := map[string]bool{}
	for len(ended) < 2 {
		f := c.expect("msg", "")
		key := f.Sid + " " + f.Subject
		if f.Subject == "a.end.c" {
			ended[f.Sid] = true
			continue
		}
		if !want[key] {
			t.Fatalf("unexpected delivery %s", f.raw)
		}
		delete(want, key)
	}
	if len(want) > 0 {
		t.Fatalf("missing deliveries: %v", want)
	}
}

func TestQueueGroup(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)

	// Two browsers and one service in group "workers".
	c1, c2 := dial(t, b.Addr), dial(t, b.Addr)
	c1.subscribe("q", "jobs", "workers")
	c2.subscribe("q", "jobs", "workers")
	var svcCount int
	var mu sync.Mutex
	if _, err := svc.QueueSubscribe("jobs", "workers", func(*nats.Msg) { mu.Lock(); svcCount++; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := testutil.NATSClient(t, ns)
	const n = 300
	for i := range n {
		if err := pub.Publish("jobs", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	// Read both browsers until every message is accounted for.
	type delivery struct{ data string }
	got := make(chan delivery, n)
	counts := make([]int, 2)
	var cmu sync.Mutex
	for i, c := range []*wsClient{c1, c2} {
		go func() {
			for {
				f, err := c.tryRecv(wait)
				if err != nil {
					return
				}
				cmu.Lock()
				counts[i]++
				cmu.Unlock()
				got <- delivery{string(f.Data)}
			}
		}()
	}
	seen := map[string]int{}
	deadline := time.After(wait)
	for {
		mu.Lock()
		total := len(seen) + svcCount
		mu.Unlock()
		if total >= n {
			break
		}
		select {
		case d := <-got:
			seen[d.data]++
			if seen[d.data] > 1 {
				t.Fatalf("message %s delivered twice", d.data)
			}
		case <-deadline:
			t.Fatalf("only %d of %d messages delivered", total, n)
		case <-time.After(10 * time.Millisecond):
			// re-check the service's count
		}
	}
	cmu.Lock()
	n1, n2 := counts[0], counts[1]
	cmu.Unlock()
	if n1 == 0 || n2 == 0 {
		t.Fatalf("queue members not spread: browsers got %d and %d", n1, n2)
	}
}

func TestUnsubscribe(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, nil)
	svc := testutil.NATSClient(t, ns)
	witness := dial(t, b.Addr)
	witness.subscribe("w", "u.x", "")
	c := dial(t, b.Addr)
	c.subscribe("s1", "u.x", "")
	c.send(`{"op":"unsub","id":"s1"}`)
	c.expect("ok", "s1")
	if err := svc.Publish("u.x", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	// The witness shares the node's one NATS subscription: once it has
	// the message, delivery to every local subscriber is done.
	witness.expect("msg", "")
	c.send(`{"op":"ping","id":"p"}`)
	c.expect("pong", "p")
	// The id is free again.
	c.subscribe("s1", "u.y", "")
}
