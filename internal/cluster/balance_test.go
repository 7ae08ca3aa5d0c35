package cluster

import "testing"

// ready is a ready node's view entry: conns connections, moving of them
// shed recently.
func ready(id string, conns, moving int64) NodeStatus {
	return NodeStatus{ID: id, State: NodeReady, Connections: conns, Moving: moving, IntervalMS: 100}
}

// self marks st as this node's own entry, as View puts it first.
func self(st NodeStatus) NodeStatus { st.Self = true; return st }

func TestAssess(t *testing.T) {
	late := ready("b", 0, 0)
	late.AgeMS = 151 // over 1.5 × its 100 ms period
	onTime := ready("b", 0, 0)
	onTime.AgeMS = 150
	oldSelf := self(ready("a", 20, 0))
	oldSelf.AgeMS = 10_000
	draining := NodeStatus{ID: "c", State: NodeDraining, Connections: 100, IntervalMS: 100}
	natsDown := NodeStatus{ID: "c", State: NodeNATSDown, Connections: 100, IntervalMS: 100}
	cases := []struct {
		name  string
		view  []NodeStatus
		own   int64
		slack float64
		floor int64
		want  Share
	}{
		{
			name: "over the trigger",
			view: []NodeStatus{self(ready("a", 20, 0)), ready("b", 0, 0)},
			own:  20, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2, Over: true, Above: true, Excess: 10},
		},
		{
			name: "within the slack",
			view: []NodeStatus{self(ready("a", 11, 0)), ready("b", 9, 0)},
			own:  11, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2, Above: true, Excess: 1},
		},
		{
			name: "at the mean",
			view: []NodeStatus{self(ready("a", 10, 0)), ready("b", 10, 0)},
			own:  10, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2},
		},
		{
			// Shed clients may not be counted anywhere yet: shed only
			// above the mean with them, stop only at the mean without.
			name: "moving clients raise high",
			view: []NodeStatus{self(ready("a", 14, 4)), ready("b", 6, 0)},
			own:  14, slack: 0.1,
			want: Share{Low: 10, High: 12, Ready: 2, Over: true, Above: true, Excess: 2},
		},
		{
			name: "between low and high",
			view: []NodeStatus{self(ready("a", 11, 4)), ready("b", 5, 0)},
			own:  11, slack: 0.1,
			want: Share{Low: 8, High: 10, Ready: 2, Above: true, Excess: 1},
		},
		{
			name: "the mean rounds up",
			view: []NodeStatus{self(ready("a", 4, 0)), ready("b", 0, 0), ready("c", 0, 0)},
			own:  4, slack: 0.1,
			want: Share{Low: 4.0 / 3, High: 4.0 / 3, Ready: 3, Over: true, Above: true, Excess: 2},
		},
		{
			name: "the floor above the mean",
			view: []NodeStatus{self(ready("a", 20, 0)), ready("b", 0, 0)},
			own:  20, slack: 0.1, floor: 15,
			want: Share{Low: 10, High: 10, Ready: 2, Over: true, Above: true, Excess: 5},
		},
		{
			name: "own counts, not the view's self",
			view: []NodeStatus{self(ready("a", 10, 0)), ready("b", 10, 0)},
			own:  30, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2, Over: true, Above: true, Excess: 20},
		},
		{
			name: "draining and nats_down nodes are not in the mean",
			view: []NodeStatus{self(ready("a", 20, 0)), ready("b", 0, 0), draining},
			own:  20, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2, Over: true, Above: true, Excess: 10},
		},
		{
			name: "a peer on time",
			view: []NodeStatus{self(ready("a", 20, 0)), onTime},
			own:  20, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2, Over: true, Above: true, Excess: 10},
		},
		{
			name: "this node's own age is not lateness",
			view: []NodeStatus{oldSelf, ready("b", 0, 0)},
			own:  20, slack: 0.1,
			want: Share{Low: 10, High: 10, Ready: 2, Over: true, Above: true, Excess: 10},
		},
		{
			name: "at the floor",
			view: []NodeStatus{self(ready("a", 20, 0)), ready("b", 0, 0)},
			own:  20, slack: 0.1, floor: 20,
		},
		{
			name: "a peer late",
			view: []NodeStatus{self(ready("a", 20, 0)), late},
			own:  20, slack: 0.1,
			want: Share{Late: true},
		},
		{
			name: "one ready node",
			view: []NodeStatus{self(ready("a", 20, 0)), natsDown},
			own:  20, slack: 0.1,
		},
		{
			name: "alone",
			view: []NodeStatus{self(ready("a", 20, 0))},
			own:  20, slack: 0.1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Assess(tc.view, tc.own, tc.slack, tc.floor); got != tc.want {
				t.Errorf("Assess(own %d, slack %v, floor %d) = %+v, want %+v", tc.own, tc.slack, tc.floor, got, tc.want)
			}
		})
	}
}

func TestMeanOfReady(t *testing.T) {
	cases := []struct {
		name      string
		view      []NodeStatus
		low, high float64
		n         int
	}{
		{"empty", nil, 0, 0, 0},
		{"none ready", []NodeStatus{{ID: "a", State: NodeDraining, Connections: 5}}, 0, 0, 0},
		{"one", []NodeStatus{ready("a", 5, 1)}, 5, 6, 1},
		{"ready only", []NodeStatus{ready("a", 6, 2), ready("b", 0, 0), {ID: "c", State: NodeNATSDown, Connections: 90, Moving: 9}}, 3, 4, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			low, high, n := meanOfReady(tc.view)
			if low != tc.low || high != tc.high || n != tc.n {
				t.Errorf("meanOfReady = %v, %v, %d; want %v, %v, %d", low, high, n, tc.low, tc.high, tc.n)
			}
		})
	}
}

func TestPeerLate(t *testing.T) {
	aged := func(st NodeStatus, ageMS, intervalMS int64) NodeStatus {
		st.AgeMS, st.IntervalMS = ageMS, intervalMS
		return st
	}
	cases := []struct {
		name string
		view []NodeStatus
		want bool
	}{
		{"no peers", []NodeStatus{self(ready("a", 1, 0))}, false},
		{"fresh", []NodeStatus{self(ready("a", 1, 0)), aged(ready("b", 1, 0), 0, 100)}, false},
		{"one and a half periods", []NodeStatus{aged(ready("b", 1, 0), 150, 100)}, false},
		{"just over", []NodeStatus{aged(ready("b", 1, 0), 151, 100)}, true},
		{"one of several", []NodeStatus{aged(ready("b", 1, 0), 10, 100), aged(ready("c", 1, 0), 400, 100)}, true},
		{"no period announced counts as 1 ms", []NodeStatus{aged(ready("b", 1, 0), 2, 0)}, true},
		{"self is never late", []NodeStatus{aged(self(ready("a", 1, 0)), 10_000, 100)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := peerLate(tc.view); got != tc.want {
				t.Errorf("peerLate = %v, want %v", got, tc.want)
			}
		})
	}
}
