package integration

import (
	"testing"
)

func TestSubscribeReceivesServicePublish(t *testing.T) {
	ns := startNATS(t, false)
	b := startBridge(t, ns, nil)
	svc := natsClient(t, ns)

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
