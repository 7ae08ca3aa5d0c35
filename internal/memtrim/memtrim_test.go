package memtrim

import (
	"testing"
	"time"
)

// pending reports whether a trim is scheduled and, for an arrival wave,
// the floor it set.
func (m *Trimmer) pending() (wave, armed bool, floor int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wave, m.t != nil, m.floor
}

// never is a delay no test reaches: the decisions are checked, not the
// timer.
const never = time.Hour

// TestArrivals: a wave of arrivals schedules one trim, postponed by each
// arrival, and only when connections grew by After and doubled.
func TestArrivals(t *testing.T) {
	m := New(never, func() { t.Error("trim ran") })
	t.Cleanup(m.Stop)
	for n := 1; n < After; n++ {
		m.Arrived(n)
	}
	if wave, armed, _ := m.pending(); wave || armed {
		t.Fatalf("trim scheduled after %d arrivals, want none below %d", After-1, After)
	}
	m.Arrived(After)
	if wave, armed, floor := m.pending(); !wave || !armed || floor != After {
		t.Fatalf("no trim scheduled at %d arrivals (wave %v, floor %d)", After, wave, floor)
	}
	// The trim ran: floor is the count then; growing by less than
	// After, or not doubling, schedules nothing.
	m.mu.Lock()
	m.wave, m.floor = false, 3*After
	m.mu.Unlock()
	for n := 3*After + 1; n < 6*After; n++ {
		m.Arrived(n)
		if wave, _, _ := m.pending(); wave {
			t.Fatalf("trim scheduled at %d connections, floor %d", n, 3*After)
		}
	}
	m.Arrived(6 * After)
	if wave, _, _ := m.pending(); !wave {
		t.Fatal("no trim once connections doubled")
	}
}

// TestDepartures: a trim is due once After connections, and at least half
// of the peak, have left.
func TestDepartures(t *testing.T) {
	cases := []struct {
		name      string
		peak      int
		leaveTo   int
		wantArmed bool
	}{
		{"fewer than After left", 3 * After, 2*After + 1, false},
		{"After left, more than half stay", 3 * After, 2 * After, false},
		{"half of the peak left", 4 * After, 2 * After, true},
		{"small node emptied", After / 2, 0, false},
		{"large node emptied", 2 * After, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(never, func() { t.Error("trim ran") })
			t.Cleanup(m.Stop)
			m.mu.Lock()
			m.peak, m.floor, m.n = tc.peak, tc.peak, tc.peak
			m.mu.Unlock()
			for n := tc.peak - 1; n >= tc.leaveTo; n-- {
				m.Left(n)
			}
			if _, armed, _ := m.pending(); armed != tc.wantArmed {
				t.Fatalf("trim scheduled %v, want %v", armed, tc.wantArmed)
			}
		})
	}
}

// TestTrimRuns: the trim runs after the wave, once, and resets the counts
// to the connections then.
func TestTrimRuns(t *testing.T) {
	ran := make(chan struct{}, 4)
	m := New(time.Millisecond, func() { ran <- struct{}{} })
	t.Cleanup(m.Stop)
	for n := 1; n <= After; n++ {
		m.Arrived(n)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim after a wave of arrivals")
	}
	m.mu.Lock()
	wave, peak, floor := m.wave, m.peak, m.floor
	m.mu.Unlock()
	if wave || peak != After || floor != After {
		t.Fatalf("after the trim: wave %v, peak %d, floor %d; want false, %d, %d", wave, peak, floor, After, After)
	}
}

// TestStop: after Stop no wave schedules a trim.
func TestStop(t *testing.T) {
	m := New(never, func() { t.Error("trim ran") })
	m.Stop()
	m.Stop()
	for n := 1; n <= 2*After; n++ {
		m.Arrived(n)
	}
	if _, armed, _ := m.pending(); armed {
		t.Fatal("trim scheduled after Stop")
	}
}
