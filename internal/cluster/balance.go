package cluster

import "math"

// Share is where one node stands against the cluster's mean, from one
// view: what its rebalancer decides by. The zero Share sheds nothing.
//
// Announcements lag, so the mean is known only within bounds: Low counts
// the connections announced; High adds the clients the nodes shed
// recently, which may be counted nowhere yet or already twice. A node
// starts shedding only above High, so stale counts never make it
// overshoot the mean, and stops for good only at Low: in between it waits
// for fresh announcements.
type Share struct {
	// Low and High are the mean connections per ready node, without and
	// with the clients they are moving.
	Low, High float64
	// Ready is how many nodes are ready.
	Ready int
	// Over is true above High × (1 + slack): a node not shedding may
	// start (its owner decides for how long it must stay over first).
	Over bool
	// Above is true above Low (rounded up) and the floor: a node that
	// is shedding goes on, else it stops.
	Above bool
	// Excess is how many clients to shed now: those above High (rounded
	// up) and the floor.
	Excess int
	// Late is set, and nothing else, when a peer's announcement is late:
	// shedding pauses until the view is fresh again.
	Late bool
}

// Assess places a node holding own connections in view, as View returns
// it. slack is the fraction above the mean that triggers shedding; a node
// holding floor connections or fewer never sheds. It returns the zero
// Share when own is at or below floor, a peer's announcement is late, or
// fewer than two nodes are ready.
func Assess(view []NodeStatus, own int64, slack float64, floor int64) Share {
	if own <= floor {
		return Share{}
	}
	if peerLate(view) {
		// A peer that missed its announcement may have died: its clients
		// are about to arrive here, and the mean still counts them there.
		// Shedding now would turn a node failure into a storm on the
		// survivors; wait until it announces again or is forgotten.
		return Share{Late: true}
	}
	low, high, n := meanOfReady(view)
	if n < 2 {
		return Share{}
	}
	return Share{
		Low:    low,
		High:   high,
		Ready:  n,
		Over:   float64(own) > high*(1+slack),
		Above:  own > max(int64(math.Ceil(low)), floor),
		Excess: int(max(0, own-max(int64(math.Ceil(high)), floor))),
	}
}

// meanOfReady returns the mean connection count of the ready nodes in
// view, low without the clients they are moving and high with them, and
// how many nodes are ready.
func meanOfReady(view []NodeStatus) (low, high float64, n int) {
	var sum, moving int64
	for _, st := range view {
		if st.State == NodeReady {
			sum += st.Connections
			moving += st.Moving
			n++
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return float64(sum) / float64(n), float64(sum+moving) / float64(n), n
}

// peerLate reports whether a peer's last announcement is older than one
// and a half of its periods.
func peerLate(view []NodeStatus) bool {
	for _, st := range view {
		if !st.Self && st.AgeMS*2 > 3*max(st.IntervalMS, 1) {
			return true
		}
	}
	return false
}
