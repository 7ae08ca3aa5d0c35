package subscribe

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Interest is one NATS subscription the Flusher makes and ends. Its
// methods run on Run's goroutine, with no lock of the Flusher held, and
// may take the locks their owner holds when it queues them.
type Interest interface {
	// Subscribe makes the subscription on nc. A refusal is the
	// Interest's to record: its Waiters hear Confirmed after Subscribe
	// returns, whether it succeeded or not.
	Subscribe(nc *nats.Conn)
	// Unsubscribe ends the subscription, if Subscribe made it.
	Unsubscribe()
}

// Waiter waits for the subscriptions queued before it to be live.
type Waiter interface {
	// Confirmed is called on Run's goroutine, once per Await, when every
	// op queued before that Await has been applied and the NATS server
	// has answered a round trip sent after them. It must not block: every
	// later op waits for it.
	Confirmed()
}

// op is a NATS subscription to make or end.
type op struct {
	in        Interest
	subscribe bool // else unsubscribe
}

// maxOps bounds subscription changes waiting for the flusher (NATS
// stuck, clients churning); beyond it Full refuses new interests.
const maxOps = 1 << 16

const (
	// flushTimeout bounds one confirming round trip.
	flushTimeout = 5 * time.Second
	// retryAfter spaces the round trips while NATS is unreachable.
	retryAfter = 250 * time.Millisecond
)

// Flusher queues a node's core subscription changes and applies them on
// one goroutine (Run), the only one that calls nats.go for them, so a
// stuck NATS connection stalls it and nothing else. Its methods are safe
// for concurrent use.
type Flusher struct {
	nc *nats.Conn

	mu      sync.Mutex
	ops     []op // subscription changes, in order
	waiters []Waiter
	kick    chan struct{}
}

// New returns a Flusher for nc. It does nothing until its owner runs Run.
func New(nc *nats.Conn) *Flusher {
	return &Flusher{nc: nc, kick: make(chan struct{}, 1)}
}

// Full reports whether maxOps ops are waiting, so no new interest may be
// queued. The bound is exact when the caller holds one lock across Full
// and Subscribe, as bridge does.
func (f *Flusher) Full() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ops) >= maxOps
}

// Subscribe queues in's subscription, after every op queued before. It
// never refuses: callers check Full first.
func (f *Flusher) Subscribe(in Interest) { f.queue(op{in: in, subscribe: true}) }

// Unsubscribe queues the end of in's subscription, after every op queued
// before. It is never refused, so an interest that was made can always
// be ended.
func (f *Flusher) Unsubscribe(in Interest) { f.queue(op{in: in}) }

func (f *Flusher) queue(o op) {
	f.mu.Lock()
	f.ops = append(f.ops, o)
	f.mu.Unlock()
	f.wake()
}

// Await defers w until the NATS server has confirmed every SUB queued
// before it, so that whatever w answers means "live".
func (f *Flusher) Await(w Waiter) {
	f.mu.Lock()
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	f.wake()
}

func (f *Flusher) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run makes and ends subscriptions in the order they were queued, then
// confirms new ones in batches, one round trip covering every SUB written
// before it, until stop is closed. While NATS is unreachable it keeps
// retrying, and the subscriptions go live when it comes back. Its owner
// runs it on a goroutine of its own and waits for it; Waiters still
// waiting when stop is closed never hear.
func (f *Flusher) Run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-f.kick:
		}
		for {
			f.mu.Lock()
			ops, batch := f.ops, f.waiters
			f.ops, f.waiters = nil, nil
			f.mu.Unlock()
			if len(ops) == 0 && len(batch) == 0 {
				break
			}
			for _, o := range ops {
				if o.subscribe {
					o.in.Subscribe(f.nc)
				} else {
					o.in.Unsubscribe()
				}
			}
			if len(batch) == 0 {
				continue
			}
			for f.nc.FlushTimeout(flushTimeout) != nil {
				select {
				case <-stop:
					return
				case <-time.After(retryAfter):
				}
			}
			for _, w := range batch {
				w.Confirmed()
			}
		}
	}
}
