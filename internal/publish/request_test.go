package publish

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/testutil"
)

// services answers on svc.echo (its payload back, with a header), holds
// svc.held until released, and listens on svc.silent without answering.
// It is one connection, so its replies leave in the order it sends them.
type services struct {
	nc   *nats.Conn
	held chan *nats.Msg
}

func startServices(t *testing.T, nc *nats.Conn) *services {
	t.Helper()
	s := &services{nc: nc, held: make(chan *nats.Msg, 16)}
	subs := map[string]nats.MsgHandler{
		"svc.echo": func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Data = append([]byte("echo "), m.Data...)
			r.Header.Set("Test-Header", "h")
			_ = m.RespondMsg(r)
		},
		"svc.held":   func(m *nats.Msg) { s.held <- m },
		"svc.silent": func(*nats.Msg) {},
	}
	for subject, h := range subs {
		if _, err := nc.Subscribe(subject, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRequest: a request is answered by its reply, by no_responders when
// nothing listens, or by timeout; either way it is no longer in flight.
func TestRequest(t *testing.T) {
	ns, nc := startNATS(t, false, nil)
	startServices(t, testutil.NATSClient(t, ns))
	o := newOutbox(t, Config{NATS: nc}, true)
	for _, tc := range []struct {
		name    string
		subject string
		timeout time.Duration
		want    answer
	}{
		{"reply", "svc.echo", testutil.Wait, answer{kind: "reply", ref: "r", data: "echo ping", header: "h"}},
		{"no responders", "svc.none", testutil.Wait, answer{kind: "err", ref: "r", code: "no_responders", message: "no service is listening on the subject"}},
		{"timeout", "svc.silent", 50 * time.Millisecond, answer{kind: "err", ref: "r", code: "timeout", message: "no reply in time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mb := newMember()
			if e := o.Request(mb, "r", &nats.Msg{Subject: tc.subject, Data: []byte("ping")}, tc.timeout); e != nil {
				t.Fatalf("refused: %v", e)
			}
			if a := mb.waitN(t, 1)[0]; a != tc.want {
				t.Errorf("answer %+v, want %+v", a, tc.want)
			}
			if n := o.Requests(); n != 0 {
				t.Errorf("%d requests in flight after the answer, want 0", n)
			}
		})
	}
}

// TestRequestLimit: a member has at most MaxInflightRequests requests in
// flight; others are not held back by it, and its places free up when it
// is dropped.
func TestRequestLimit(t *testing.T) {
	ns, nc := startNATS(t, false, nil)
	startServices(t, testutil.NATSClient(t, ns))
	var refused atomic.Int64
	o := newOutbox(t, Config{NATS: nc, MaxInflightRequests: 2, RequestRefused: func() { refused.Add(1) }}, true)
	a, b := newMember(), newMember()
	req := func(mb Member, ref string) string {
		if e := o.Request(mb, ref, &nats.Msg{Subject: "svc.silent"}, time.Hour); e != nil {
			return e.Code
		}
		return ""
	}
	for _, step := range []struct {
		mb   Member
		ref  string
		want string // the refusal's code; "" for none
	}{
		{a, "a1", ""},
		{a, "a2", ""},
		{a, "a3", "too_many_requests"},
		{b, "b1", ""},
	} {
		if got := req(step.mb, step.ref); got != step.want {
			t.Errorf("request %s refused with %q, want %q", step.ref, got, step.want)
		}
	}
	if n := refused.Load(); n != 1 {
		t.Errorf("RequestRefused called %d times, want 1", n)
	}
	if n := o.Requests(); n != 3 {
		t.Errorf("%d requests in flight, want 3", n)
	}
	o.Drop(a)
	if n := o.Requests(); n != 1 {
		t.Errorf("%d requests in flight after dropping a, want 1", n)
	}
	if got := req(a, "a4"); got != "" {
		t.Errorf("request after the drop refused with %q", got)
	}
	o.Drop(a)
	o.Drop(b)
	if n := o.Requests(); n != 0 {
		t.Errorf("%d requests in flight after dropping both, want 0", n)
	}
	if got := append(a.answers(), b.answers()...); len(got) != 0 {
		t.Errorf("answers %+v, want none", got)
	}
}

// TestRequestDrop: a reply that comes after its member was dropped (the
// client closed) reaches nobody, and the other members' replies still
// come.
func TestRequestDrop(t *testing.T) {
	ns, nc := startNATS(t, false, nil)
	svc := startServices(t, testutil.NATSClient(t, ns))
	o := newOutbox(t, Config{NATS: nc}, true)
	gone, stays := newMember(), newMember()
	if e := o.Request(gone, "g", &nats.Msg{Subject: "svc.held"}, testutil.Wait); e != nil {
		t.Fatalf("refused: %v", e)
	}
	var held *nats.Msg
	select {
	case held = <-svc.held:
	case <-time.After(testutil.Wait):
		t.Fatal("the service did not get the request")
	}
	o.Drop(gone)
	if n := o.Requests(); n != 0 {
		t.Fatalf("%d requests in flight after the drop, want 0", n)
	}
	if err := held.Respond([]byte("late")); err != nil {
		t.Fatal(err)
	}
	// The service replies in order on one connection, into one inbox
	// subscription: once the later reply is in, the late one was handled.
	if e := o.Request(stays, "s", &nats.Msg{Subject: "svc.echo", Data: []byte("x")}, testutil.Wait); e != nil {
		t.Fatalf("refused: %v", e)
	}
	if a := stays.waitN(t, 1)[0]; a != (answer{kind: "reply", ref: "s", data: "echo x", header: "h"}) {
		t.Errorf("answer %+v, want the echo", a)
	}
	if got := gone.answers(); len(got) != 0 {
		t.Errorf("the dropped member heard %+v", got)
	}
}
