package bridge

import (
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"

	"wsbridge/netpoll"
)

// dispatcher delivers the messages of the NATS subscriptions assigned to
// it, in order. nats.go pushes into its channel from the connection's read
// loop; a subscription always maps to the same dispatcher, so per-subject
// order holds.
//
// Two goroutines: intake empties the channel at once into a queue bounded
// node-wide in bytes (Config.MaxPendingBytes; a channel subscription has
// no byte limit of its own in nats.go), and run delivers from the queue.
// Past the budget, messages are dropped: the bridge's own subscription is
// a slow consumer, counted and logged rate-limited.
//
// Batching: run delivers up to dispatchBatch messages before it schedules
// writes for the connections whose queues it filled, so under a burst each
// socket gets many frames per write(2), and at a steady trickle every
// message is written at once.
type dispatcher struct {
	s    *Server
	ch   chan *nats.Msg
	wake []*conn    // connections owed a Writable schedule
	fc   frameCache // frames of the message being delivered
	now  int64      // Server.clock when the batch was taken from NATS

	qmu   sync.Mutex
	q     []*nats.Msg // taken from ch, not yet delivered
	spare []*nats.Msg // the other half of the double buffer
	kick  chan struct{}

	mu   sync.RWMutex
	subs map[*nats.Subscription]*interest // the subscriptions feeding ch
}

const (
	// dispatchQueue is each dispatcher's channel capacity: intake keeps
	// it nearly empty, so it only absorbs scheduling hiccups.
	dispatchQueue = 1 << 13
	dispatchBatch = 64
)

func newDispatchers(s *Server) []*dispatcher {
	ds := make([]*dispatcher, max(2, runtime.GOMAXPROCS(0)))
	for i := range ds {
		ds[i] = &dispatcher{
			s:    s,
			ch:   make(chan *nats.Msg, dispatchQueue),
			kick: make(chan struct{}, 1),
			subs: make(map[*nats.Subscription]*interest),
		}
	}
	return ds
}

// dispatcherFor picks the dispatcher of a new subscription, round-robin.
// Callers hold s.imu.
func (s *Server) dispatcherFor() *dispatcher {
	s.nextDispatcher++
	return s.dispatchers[s.nextDispatcher%len(s.dispatchers)]
}

// msgBytes is what a queued message holds, near enough.
func msgBytes(m *nats.Msg) int64 {
	n := len(m.Subject) + len(m.Reply) + len(m.Data) + 128
	for k, vs := range m.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return int64(n)
}

// intake moves messages from the channel to the queue, within the
// node's byte budget.
func (d *dispatcher) intake() {
	defer d.s.wg.Done()
	for {
		var m *nats.Msg
		select {
		case m = <-d.ch:
		case <-d.s.done:
			return
		}
		n := msgBytes(m)
		if d.s.pending.Add(n) > d.s.cfg.MaxPendingBytes {
			d.s.pending.Add(-n)
			d.s.metrics.NATSDropped()
			d.s.logLimited(d.s.errLog, "dispatch backlog over BRIDGE_MAX_PENDING_BYTES: dropping messages from NATS (the bridge is a slow consumer)", "subject", m.Subject, "limit", d.s.cfg.MaxPendingBytes)
			continue
		}
		d.qmu.Lock()
		d.q = append(d.q, m)
		d.qmu.Unlock()
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

func (d *dispatcher) run() {
	defer d.s.wg.Done()
	for {
		select {
		case <-d.kick:
		case <-d.s.done:
			return
		}
		for {
			d.qmu.Lock()
			batch := d.q
			d.q, d.spare = d.spare[:0], nil
			d.qmu.Unlock()
			if len(batch) == 0 {
				break
			}
			d.deliverAll(batch)
			clear(batch)
			d.qmu.Lock()
			if d.spare == nil {
				d.spare = batch[:0]
			}
			d.qmu.Unlock()
		}
	}
}

// deliverAll delivers a batch taken from the queue, scheduling writes
// every dispatchBatch messages.
func (d *dispatcher) deliverAll(batch []*nats.Msg) {
	d.now = d.s.clock()
	for i, m := range batch {
		d.mu.RLock()
		in := d.subs[m.Sub]
		d.mu.RUnlock()
		if in != nil { // nil: unsubscribed while m was queued
			in.deliver(m, d)
		}
		d.s.pending.Add(-msgBytes(m))
		if (i+1)%dispatchBatch == 0 {
			d.wakeAll()
			d.now = d.s.clock()
		}
	}
	d.wakeAll()
}

// wakeAll schedules the writes owed for the batch just queued.
func (d *dispatcher) wakeAll() {
	for i, c := range d.wake {
		d.s.poller.Schedule(c.desc, netpoll.Writable)
		d.wake[i] = nil
	}
	d.wake = d.wake[:0]
}

// owe records that c needs a write once the current batch is queued.
func (d *dispatcher) owe(c *conn, first bool) {
	if first {
		d.wake = append(d.wake, c)
	}
}

// add routes the messages of ns to in.
func (d *dispatcher) add(ns *nats.Subscription, in *interest) {
	d.mu.Lock()
	d.subs[ns] = in
	d.mu.Unlock()
}

func (d *dispatcher) remove(ns *nats.Subscription) {
	d.mu.Lock()
	delete(d.subs, ns)
	d.mu.Unlock()
}
