package ratelimit

import (
	"net/netip"
	"sync"
)

// Slots counts admitted connections, in total and per remote address, for
// a node-wide and a per-address maximum. The zero value has no limits; it
// is safe for concurrent use.
type Slots struct {
	// Max and MaxPerAddr bound the connections held at once; 0: no limit.
	// Set them before the first Take.
	Max, MaxPerAddr int

	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int // only with MaxPerAddr
}

// Refusal says why Take refused a slot.
type Refusal uint8

// The outcomes of Take.
const (
	Admitted Refusal = iota
	NodeFull         // Max connections held
	AddrFull         // MaxPerAddr connections held from this address
)

// Take reserves a slot for one more connection from addr. A caller
// admitted must Release it once.
func (s *Slots) Take(addr netip.Addr) Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Max > 0 && s.total >= s.Max {
		return NodeFull
	}
	if s.MaxPerAddr > 0 {
		if s.byAddr[addr] >= s.MaxPerAddr {
			return AddrFull
		}
		if s.byAddr == nil {
			s.byAddr = make(map[netip.Addr]int)
		}
		s.byAddr[addr]++
	}
	s.total++
	return Admitted
}

// Release frees a slot taken for addr.
func (s *Slots) Release(addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.MaxPerAddr > 0 {
		if s.byAddr[addr]--; s.byAddr[addr] <= 0 {
			delete(s.byAddr, addr)
		}
	}
}
