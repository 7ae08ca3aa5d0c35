package bridge

import (
	"testing"

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
