package bridge

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// refusedFor reads wsbridge_handshakes_refused_total for reason from s's
// collector, as a scrape would.
func refusedFor(t *testing.T, s *Server, reason string) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(s)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wsbridge_handshakes_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return uint64(m.GetCounter().GetValue())
				}
			}
		}
	}
	t.Fatalf("no wsbridge_handshakes_refused_total{reason=%q}", reason)
	return 0
}

// TestNewRegistersLast: a Registerer that refuses the collectors fails
// New, which leaves no subscription on the caller's connection; a scrape
// of a server New returned sees every part it reads.
func TestNewRegistersLast(t *testing.T) {
	ns := startTestNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := prometheus.NewRegistry()
	srv, err := New(Config{NodeID: "a", Registerer: reg}, nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	base := nc.NumSubscriptions()
	if _, err := New(Config{NodeID: "b", Registerer: reg}, nc); err == nil {
		t.Fatal("New registered the same collectors twice")
	}
	if got := nc.NumSubscriptions(); got != base {
		t.Fatalf("the failed New left %d subscriptions behind", got-base)
	}
}
