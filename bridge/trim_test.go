package bridge

import "testing"

// TestTrimArrivals: a wave of arrivals schedules one trim, postponed by
// each arrival, and only when connections grew by trimAfter and doubled.
func TestTrimArrivals(t *testing.T) {
	s := &Server{}
	t.Cleanup(func() {
		if s.trim != nil {
			s.trim.Stop()
		}
	})
	for n := 1; n < trimAfter; n++ {
		s.maybeTrimArrivals(n)
	}
	if s.wave || s.trim != nil {
		t.Fatalf("trim scheduled after %d arrivals, want none below %d", trimAfter-1, trimAfter)
	}
	s.maybeTrimArrivals(trimAfter)
	if !s.wave || s.trim == nil || s.floor != trimAfter {
		t.Fatalf("no trim scheduled at %d arrivals (wave %v, floor %d)", trimAfter, s.wave, s.floor)
	}
	// The trim ran: floor is the count then; growing by less than
	// trimAfter, or not doubling, schedules nothing.
	s.wave, s.floor = false, 3*trimAfter
	for n := 3*trimAfter + 1; n < 6*trimAfter; n++ {
		s.maybeTrimArrivals(n)
		if s.wave {
			t.Fatalf("trim scheduled at %d connections, floor %d", n, 3*trimAfter)
		}
	}
	s.maybeTrimArrivals(6 * trimAfter)
	if !s.wave {
		t.Fatal("no trim once connections doubled")
	}
}
