package bridge

import (
	"cmp"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"wsbridge/internal/cluster"
	"wsbridge/internal/wsframe"
)

// Rebalancing. A load balancer places a connection once, so after a
// scale-out the old nodes keep their clients while the new one idles. A
// node holding more than the mean of the ready nodes × (1 + RebalanceSlack)
// sheds clients, RebalanceRate per second, until it holds the mean: each
// is closed with 1012 "rebalance" after its queued frames, and reconnects
// through the load balancer, resuming its subscriptions (docs/PROTOCOL.md).
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

// rebalancer is the goroutine that sheds; its counters are read by the
// announcements and the collector.
type rebalancer struct {
	s       *Server
	active  atomic.Bool   // shedding, or waiting for announcements to go on
	shed    atomic.Uint64 // clients closed with 1012
	decided atomic.Uint64 // decisions taken, for tests
	// leavingN counts shed clients still registered (their close handshake
	// is under way); movingN those shed within movingFor: on their way to
	// another node, counted by none yet, or by one whose announcement has
	// not arrived.
	leavingN, movingN atomic.Int64

	// Owned by run.
	queue     []*conn // candidates, oldest first
	plannedAt time.Time
	leaving   []*conn
	moving    []time.Time // when each recent client was shed, oldest first
	overSince time.Time   // first decision above the trigger, zero when not
}

// movingFor is how long a shed client counts as moving: two announcement
// periods plus the bundled client's reconnect jitter (≤ 1 s).
func (r *rebalancer) movingFor() time.Duration { return 2*r.s.cfg.AnnounceInterval + time.Second }

// own is this node's connection count net of the clients it is shedding.
// Announcements carry it too.
func (r *rebalancer) own() int64 { return r.s.metrics.Connections() - r.leavingN.Load() }

// account forgets shed clients that have left, and moving ones that have
// had time to arrive somewhere.
func (r *rebalancer) account(now time.Time) {
	kept := r.leaving[:0]
	for _, c := range r.leaving {
		c.mu.Lock()
		gone := c.state == stateClosed
		c.mu.Unlock()
		if !gone {
			kept = append(kept, c)
		}
	}
	clear(r.leaving[len(kept):])
	r.leaving = kept
	r.leavingN.Store(int64(len(kept)))
	i := 0
	for i < len(r.moving) && now.Sub(r.moving[i]) > r.movingFor() {
		i++
	}
	r.moving = r.moving[i:]
	r.movingN.Store(int64(len(r.moving)))
}

// excess is how many clients to shed now: zero unless shedding is allowed
// and this node is above the trigger, or was and is still above the mean
// (cluster.Assess). It updates active.
func (r *rebalancer) excess() int {
	s := r.s
	stop := func() int { r.active.Store(false); r.overSince = time.Time{}; return 0 }
	if !s.cfg.Rebalance || s.draining.Load() || !s.natsUp.Load() {
		return stop()
	}
	own := r.own()
	sh := cluster.Assess(s.cluster.View(), own, s.cfg.RebalanceSlack, int64(s.cfg.RebalanceMinConnections))
	if !r.active.Load() {
		if !sh.Over {
			r.overSince = time.Time{}
			return 0
		}
		// Over the trigger for two announcement periods, not one
		// sample: while clients pour in (a start, another node's
		// failure) counts grow faster than announcements travel.
		if r.overSince.IsZero() {
			r.overSince = time.Now()
		}
		if time.Since(r.overSince) < 2*s.cfg.AnnounceInterval {
			return 0
		}
	}
	if !sh.Above {
		return stop()
	}
	if !r.active.Swap(true) {
		s.log.Info("rebalancing: shedding clients with 1012", "connections", own, "mean", math.Round(sh.Low), "nodes", sh.Ready, "rate", s.cfg.RebalanceRate)
	}
	return sh.Excess
}

// run decides and sheds until shutdown: each step closes the clients its
// share of RebalanceRate allows, so the load balancer sees a steady
// trickle rather than a burst.
func (r *rebalancer) run() {
	defer r.s.wg.Done()
	step := max(time.Duration(float64(time.Second)/r.s.cfg.RebalanceRate), minShedStep)
	t := time.NewTimer(rebalanceIdle)
	defer t.Stop()
	var allowance float64
	last := time.Now()
	for {
		select {
		case <-r.s.done:
			return
		case <-t.C:
		}
		now := time.Now()
		r.account(now)
		wasActive := r.active.Load()
		n := r.excess()
		r.decided.Add(1)
		if !r.active.Load() {
			if wasActive {
				r.s.log.Info("rebalancing done", "connections", r.own(), "shed_total", r.shed.Load())
			}
			r.queue, allowance = nil, 0
			t.Reset(rebalanceIdle)
			continue
		}
		if wasActive {
			allowance += r.s.cfg.RebalanceRate * now.Sub(last).Seconds()
		} else {
			allowance = 1 // the first client goes at once
		}
		last = now
		allowance = min(allowance, max(1, 2*r.s.cfg.RebalanceRate*step.Seconds()))
		for k := min(int(allowance), n); k > 0; k-- {
			c := r.next(now)
			if c == nil {
				break
			}
			c.requestClose(wsframe.CloseRebalance)
			r.shed.Add(1)
			r.leaving = append(r.leaving, c)
			r.moving = append(r.moving, now)
			allowance--
		}
		r.leavingN.Store(int64(len(r.leaving)))
		r.movingN.Store(int64(len(r.moving)))
		t.Reset(step)
	}
}

// next returns the oldest open connection not yet shed, rebuilding the
// candidates from the registry every replanEvery.
func (r *rebalancer) next(now time.Time) *conn {
	if now.Sub(r.plannedAt) > replanEvery || len(r.queue) == 0 {
		r.plan(now)
	}
	for len(r.queue) > 0 {
		c := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		if _, open := c.queued(); open {
			return c
		}
	}
	return nil
}

// plan keeps the oldest connections, enough for two replan periods.
func (r *rebalancer) plan(now time.Time) {
	conns := r.s.snapshot()
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.opened, b.opened) })
	keep := min(len(conns), max(1, int(2*r.s.cfg.RebalanceRate*replanEvery.Seconds())))
	r.queue = append(r.queue[:0], conns[:keep]...)
	r.plannedAt = now
}
