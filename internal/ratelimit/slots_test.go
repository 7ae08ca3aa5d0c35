package ratelimit

import (
	"net/netip"
	"sync"
	"testing"
)

func TestSlots(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	type step struct {
		take    bool // else release
		addr    netip.Addr
		want    Refusal
		comment string
	}
	cases := []struct {
		name         string
		max, perAddr int
		steps        []step
	}{
		{"no limits", 0, 0, []step{{true, a, Admitted, ""}, {true, a, Admitted, ""}, {true, b, Admitted, ""}}},
		{"node full", 2, 0, []step{
			{true, a, Admitted, ""}, {true, b, Admitted, ""}, {true, a, NodeFull, "third"},
			{false, b, 0, ""}, {true, a, Admitted, "a slot freed"},
		}},
		{"address full", 0, 2, []step{
			{true, a, Admitted, ""}, {true, a, Admitted, ""}, {true, a, AddrFull, "third from a"},
			{true, b, Admitted, "another address"}, {false, a, 0, ""}, {true, a, Admitted, "a slot of a freed"},
		}},
		{"node full wins over address full", 2, 2, []step{
			{true, a, Admitted, ""}, {true, a, Admitted, ""}, {true, a, NodeFull, ""}, {true, b, NodeFull, ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Slots{Max: tc.max, MaxPerAddr: tc.perAddr}
			for i, st := range tc.steps {
				if !st.take {
					s.Release(st.addr)
					continue
				}
				if got := s.Take(st.addr); got != st.want {
					t.Fatalf("step %d (%s): Take(%v) = %d, want %d", i, st.comment, st.addr, got, st.want)
				}
			}
		})
	}
}

// TestSlotsConcurrent takes and releases from many goroutines: every slot
// comes back, and the per-address map is empty at the end.
func TestSlotsConcurrent(t *testing.T) {
	s := &Slots{Max: 1000, MaxPerAddr: 1000}
	addr := netip.MustParseAddr("192.0.2.7")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if s.Take(addr) == Admitted {
					s.Release(addr)
				}
			}
		}()
	}
	wg.Wait()
	if s.total != 0 || len(s.byAddr) != 0 {
		t.Fatalf("after every release: total %d, %d addresses held", s.total, len(s.byAddr))
	}
}
