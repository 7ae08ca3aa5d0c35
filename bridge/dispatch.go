package bridge

import (
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"

	"wsbridge/netpoll"
)

// dispatcher delivers the messages of the NATS subscriptions assigned to
// it, in order, from one goroutine. nats.go pushes into its channel from
// the connection's read loop; a subscription always maps to the same
// dispatcher, so per-subject order holds.
//
// Batching: a dispatcher drains up to dispatchBatch messages before it
// schedules writes for the connections whose queues it filled, so under a
// burst each socket gets many frames per write(2), and at a steady trickle
// every message is written at once.
type dispatcher struct {
	s    *Server
	ch   chan *nats.Msg
	wake []*conn    // connections owed a Writable schedule
	fc   frameCache // frames of the message being delivered
	now  int64      // Server.clock when the batch was taken from NATS

	mu   sync.RWMutex
	subs map[*nats.Subscription]*interest // the subscriptions feeding ch
}

const (
	// dispatchQueue is each dispatcher's channel capacity (pointers only:
	// the channel's backing array is untouched, so unused RSS, until a
	// burst fills it). When it is full nats.go drops the message and
	// reports a slow consumer; it absorbs a 250k-message burst.
	dispatchQueue = 1 << 18
	dispatchBatch = 64
)

func newDispatchers(s *Server) []*dispatcher {
	ds := make([]*dispatcher, max(2, runtime.GOMAXPROCS(0)))
	for i := range ds {
		ds[i] = &dispatcher{s: s, ch: make(chan *nats.Msg, dispatchQueue), subs: make(map[*nats.Subscription]*interest)}
	}
	return ds
}

// dispatcherFor picks the dispatcher of a new subscription, round-robin.
// Callers hold s.imu.
func (s *Server) dispatcherFor() *dispatcher {
	s.nextDispatcher++
	return s.dispatchers[s.nextDispatcher%len(s.dispatchers)]
}

func (d *dispatcher) run() {
	defer d.s.wg.Done()
	for {
		var m *nats.Msg
		select {
		case m = <-d.ch:
		case <-d.s.done:
			return
		}
		d.now = d.s.clock()
		for n := 1; ; n++ {
			d.mu.RLock()
			in := d.subs[m.Sub]
			d.mu.RUnlock()
			if in != nil { // nil: unsubscribed while m was queued
				in.deliver(m, d)
			}
			if n == dispatchBatch || len(d.ch) == 0 {
				break
			}
			m = <-d.ch
		}
		d.wakeAll()
	}
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
