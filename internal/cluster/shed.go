package cluster

import (
	"cmp"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Rebalancing. A load balancer places a connection once, so after a
// scale-out the old nodes keep their clients while the new one idles. A
// node holding more than the mean of the ready nodes × (1 + Slack) sheds
// clients, Rate per second, until it holds the mean: each is closed (in
// the bridge with 1012 "rebalance", after its queued frames) and
// reconnects through the load balancer, resuming its subscriptions
// (docs/PROTOCOL.md).
//
// With a load balancer that picks a node at random, a shed client lands
// back on a loaded node with probability (loaded nodes)/(nodes), so a node
// sheds more than its excess before it reaches the mean (three times it
// for two old nodes and one new: docs/OPERATIONS.md). Shedding the oldest
// connections first keeps that to about one move per client: a client that
// just arrived is the youngest and the last to go.

const (
	// rebalanceIdle is the decision period while not shedding.
	rebalanceIdle = 250 * time.Millisecond
	// minShedStep bounds the trickle's timer rate.
	minShedStep = 10 * time.Millisecond
	// replanEvery is how often the list of candidates is rebuilt.
	replanEvery = time.Second
)

// Candidate is one client a Shedder may close; in the bridge, a
// connection. Its methods are called on Run's goroutine and must not
// block.
type Candidate interface {
	// Opened is when the client connected, on a clock that never goes
	// back: the oldest is shed first.
	Opened() int64
	// Open reports whether it is open and not already closing.
	Open() bool
	// Gone reports whether it has closed for good. Until then a shed
	// client is still among ShedConfig.Connections, and Own leaves it
	// out.
	Gone() bool
	// Shed starts closing it, so that its client reconnects through the
	// load balancer.
	Shed()
}

// ShedConfig configures a Shedder.
type ShedConfig struct {
	// Rate is how many clients per second a shedding node closes; zero
	// means 50.
	Rate float64
	// Slack is the fraction above the mean that starts shedding
	// (Assess); zero starts at any excess.
	Slack float64
	// Floor: a node holding this many connections or fewer never sheds;
	// zero means no floor.
	Floor int64
	// Interval is the announcement period (Config.Interval): a node
	// starts only once it has been over the trigger for two periods, and
	// a shed client counts as moving for two periods and a second. Zero
	// means 1s.
	Interval time.Duration
	// Allowed reports whether the node may shed now: the owner's switch,
	// and never while draining or cut off from NATS. Nil means always.
	Allowed func() bool
	// Connections returns this node's connection count, shed clients
	// not yet gone included. It is required, is called from any
	// goroutine, and must not block.
	Connections func() int64
	// View returns the cluster as Membership.View does; it is required.
	View func() []NodeStatus
	// Candidates returns this node's clients, in any order; it is
	// required. Run calls it at most once per second while shedding, and
	// owns the slice it returns.
	Candidates func() []Candidate
	// Log is told when shedding starts and when it is done; nil logs
	// nothing.
	Log *slog.Logger
}

// Shedder decides when this node sheds clients and closes them, oldest
// first, at ShedConfig.Rate, so the load balancer sees a steady trickle
// rather than a burst. Its counters are read by the announcements and the
// metrics, from any goroutine; everything else belongs to Run.
type Shedder struct {
	cfg  ShedConfig
	log  *slog.Logger
	step time.Duration // the trickle's decision period

	active  atomic.Bool   // shedding, or waiting for announcements to go on
	shed    atomic.Uint64 // clients shed
	decided atomic.Uint64 // decisions taken
	// leavingN counts shed clients not gone yet (their close handshake
	// is under way); movingN those shed within movingFor: on their way to
	// another node, counted by none yet, or by one whose announcement has
	// not arrived.
	leavingN, movingN atomic.Int64

	// Owned by Run.
	queue     []Candidate // oldest first
	plannedAt time.Time
	leaving   []Candidate
	moving    []time.Time // when each recent client was shed, oldest first
	overSince time.Time   // first decision above the trigger, zero when not
	allowance float64     // clients the trickle may shed now
	last      time.Time   // the last decision while shedding
}

// NewShedder returns a Shedder, which sheds nothing until Run.
func NewShedder(cfg ShedConfig) (*Shedder, error) {
	if cfg.Connections == nil || cfg.View == nil || cfg.Candidates == nil {
		return nil, errors.New("cluster: ShedConfig.Connections, View and Candidates are required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Allowed == nil {
		cfg.Allowed = func() bool { return true }
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shedder{
		cfg:  cfg,
		log:  log,
		step: max(time.Duration(float64(time.Second)/cfg.Rate), minShedStep),
	}, nil
}

// Active reports whether the node is shedding, or waiting for fresh
// announcements to go on: NodeStatus.Rebalancing.
func (s *Shedder) Active() bool { return s.active.Load() }

// ShedTotal is how many clients the node has shed since start:
// NodeStatus.Shed.
func (s *Shedder) ShedTotal() uint64 { return s.shed.Load() }

// Moving is how many clients the node shed within the last two
// announcement periods and a second: NodeStatus.Moving.
func (s *Shedder) Moving() int64 { return s.movingN.Load() }

// Own is this node's connection count net of the clients it is shedding:
// NodeStatus.Connections.
func (s *Shedder) Own() int64 { return s.cfg.Connections() - s.leavingN.Load() }

// Decisions is how many times Run has decided whether to shed; a test
// waits on it to know that a decision has seen a view.
func (s *Shedder) Decisions() uint64 { return s.decided.Load() }

// Run decides and sheds until stop is closed. Its owner runs it once, on
// a goroutine of its own, and waits for it.
func (s *Shedder) Run(stop <-chan struct{}) {
	t := time.NewTimer(rebalanceIdle)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		t.Reset(s.decide(time.Now()))
	}
}

// movingFor is how long a shed client counts as moving: two announcement
// periods plus the bundled client's reconnect jitter (≤ 1 s).
func (s *Shedder) movingFor() time.Duration { return 2*s.cfg.Interval + time.Second }

// decide takes one decision at now and sheds the clients its share of
// Rate allows. It returns when to decide next.
func (s *Shedder) decide(now time.Time) time.Duration {
	s.account(now)
	wasActive := s.active.Load()
	n := s.excess(now)
	s.decided.Add(1)
	if !s.active.Load() {
		if wasActive {
			s.log.Info("rebalancing done", "connections", s.Own(), "shed_total", s.shed.Load())
		}
		s.queue, s.allowance = nil, 0
		return rebalanceIdle
	}
	if wasActive {
		s.allowance += s.cfg.Rate * now.Sub(s.last).Seconds()
	} else {
		s.allowance = 1 // the first client goes at once
	}
	s.last = now
	s.allowance = min(s.allowance, max(1, 2*s.cfg.Rate*s.step.Seconds()))
	for k := min(int(s.allowance), n); k > 0; k-- {
		c := s.next(now)
		if c == nil {
			break
		}
		c.Shed()
		s.shed.Add(1)
		s.leaving = append(s.leaving, c)
		s.moving = append(s.moving, now)
		s.allowance--
	}
	s.leavingN.Store(int64(len(s.leaving)))
	s.movingN.Store(int64(len(s.moving)))
	return s.step
}

// account forgets shed clients that have left, and moving ones that have
// had time to arrive somewhere.
func (s *Shedder) account(now time.Time) {
	kept := s.leaving[:0]
	for _, c := range s.leaving {
		if !c.Gone() {
			kept = append(kept, c)
		}
	}
	clear(s.leaving[len(kept):])
	s.leaving = kept
	s.leavingN.Store(int64(len(kept)))
	i := 0
	for i < len(s.moving) && now.Sub(s.moving[i]) > s.movingFor() {
		i++
	}
	s.moving = s.moving[i:]
	s.movingN.Store(int64(len(s.moving)))
}

// excess is how many clients to shed now: zero unless shedding is allowed
// and this node is above the trigger, or was and is still above the mean
// (Assess). It updates active.
func (s *Shedder) excess(now time.Time) int {
	stop := func() int { s.active.Store(false); s.overSince = time.Time{}; return 0 }
	if !s.cfg.Allowed() {
		return stop()
	}
	own := s.Own()
	sh := Assess(s.cfg.View(), own, s.cfg.Slack, s.cfg.Floor)
	if sh.Late {
		// Paused, not stopped: once the peer announces again (or is
		// forgotten), a node shedding goes on to the mean, and one
		// waiting to start waits two fresh periods.
		s.overSince = time.Time{}
		return 0
	}
	if !s.active.Load() {
		if !sh.Over {
			s.overSince = time.Time{}
			return 0
		}
		// Over the trigger for two announcement periods, not one
		// sample: while clients pour in (a start, another node's
		// failure) counts grow faster than announcements travel.
		if s.overSince.IsZero() {
			s.overSince = now
		}
		if now.Sub(s.overSince) < 2*s.cfg.Interval {
			return 0
		}
	}
	if !sh.Above {
		return stop()
	}
	if !s.active.Swap(true) {
		s.log.Info("rebalancing: shedding clients with 1012", "connections", own, "mean", math.Round(sh.Low), "nodes", sh.Ready, "rate", s.cfg.Rate)
	}
	return sh.Excess
}

// next returns the oldest open candidate not yet shed, rebuilding the
// candidates every replanEvery.
func (s *Shedder) next(now time.Time) Candidate {
	if now.Sub(s.plannedAt) > replanEvery || len(s.queue) == 0 {
		s.plan(now)
	}
	for len(s.queue) > 0 {
		c := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if c.Open() {
			return c
		}
	}
	return nil
}

// plan keeps the oldest candidates, enough for two replan periods.
func (s *Shedder) plan(now time.Time) {
	cs := s.cfg.Candidates()
	slices.SortFunc(cs, func(a, b Candidate) int { return cmp.Compare(a.Opened(), b.Opened()) })
	keep := min(len(cs), max(1, int(2*s.cfg.Rate*replanEvery.Seconds())))
	s.queue = append(s.queue[:0], cs[:keep]...)
	s.plannedAt = now
}
