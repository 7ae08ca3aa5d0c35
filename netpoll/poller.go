package netpoll

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// Event is a set of readiness conditions delivered to a Handler.
type Event uint32

const (
	// Readable means the socket may have data or a pending EOF or error:
	// read until EAGAIN.
	Readable Event = 1 << iota
	// Writable means the socket's send buffer has room again.
	Writable
	// Hangup means the peer closed or the socket failed; a read will
	// report it.
	Hangup
	// User is the first bit free for callers of Schedule; netpoll passes
	// it through untouched.
	User
)

// Handler handles the events of one descriptor. Handle runs on a pool
// worker and must not block for long: it does non-blocking I/O and returns.
type Handler interface {
	Handle(ev Event)
}

// Config configures a Poller.
type Config struct {
	// Workers is the number of goroutines that run handlers; zero means
	// 4×GOMAXPROCS.
	Workers int
	// OnWaitError is called if epoll_wait fails for good; nil ignores.
	OnWaitError func(error)
}

// ErrClosed is returned by methods of a closed Poller.
var ErrClosed = errors.New("netpoll: poller closed")

// Desc is a descriptor registered with a Poller.
type Desc struct {
	fd      int
	h       Handler
	pending atomic.Uint32 // events not yet handed to h
	queued  atomic.Bool   // in the ready queue or running
	removed atomic.Bool
	next    *Desc // ready queue link, guarded by Poller.mu
}

// Fd returns the descriptor number.
func (d *Desc) Fd() int { return d.fd }

// Poller multiplexes descriptors onto a bounded worker pool.
type Poller struct {
	ep epoll

	mu         sync.Mutex
	cond       sync.Cond
	head, tail *Desc
	queued     int // descriptors in the ready queue
	closed     bool
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// New starts an epoll instance (none with the portable backend) and
// cfg.Workers worker goroutines. Close stops them.
func New(cfg Config) (*Poller, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	p := &Poller{}
	p.cond.L = &p.mu
	ep, err := newEpoll(cfg.OnWaitError)
	if err != nil {
		return nil, err
	}
	p.ep = ep
	p.wg.Add(cfg.Workers)
	for i := 0; i < cfg.Workers; i++ {
		go p.work()
	}
	return p, nil
}

// NewDesc returns a Desc for fd whose events go to h. Create it before Add
// so the handler can refer to it from its first event. A Desc with fd -1 is
// never added to epoll: its owner feeds it events with Schedule alone.
func NewDesc(fd int, h Handler) *Desc { return &Desc{fd: fd, h: h} }

// Add registers d's descriptor, edge-triggered for reads, writes and
// hangups. The caller keeps ownership of the fd and must Remove d before
// closing it. A Desc with fd -1 has nothing to watch: Add is a no-op.
func (p *Poller) Add(d *Desc) error {
	if d.fd < 0 {
		return nil
	}
	return p.ep.add(d.fd, func(ev Event) { p.Schedule(d, ev) })
}

// Remove unregisters d. Events already merged may still be handled once
// more; handlers guard against that with their own state. Remove is
// idempotent, and a nil d is a no-op.
func (p *Poller) Remove(d *Desc) error {
	if d == nil || d.removed.Swap(true) || d.fd < 0 {
		return nil
	}
	return p.ep.del(d.fd)
}

// Schedule merges ev into d's pending events and queues d for a worker
// unless it is already queued or running. It never blocks on I/O and is
// safe to call from any goroutine, including epoll callbacks and NATS
// handlers. Each Desc occupies at most one queue slot, so the queue is
// bounded by the number of descriptors.
func (p *Poller) Schedule(d *Desc, ev Event) {
	if ev == 0 {
		return
	}
	d.pending.Or(uint32(ev))
	if d.queued.CompareAndSwap(false, true) {
		p.push(d)
	}
}

func (p *Poller) push(d *Desc) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if p.tail == nil {
		p.head = d
	} else {
		p.tail.next = d
	}
	p.tail = d
	p.queued++
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *Poller) pop() *Desc {
	p.mu.Lock()
	for p.head == nil && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	d := p.head
	p.queued--
	p.head = d.next
	if p.head == nil {
		p.tail = nil
	}
	d.next = nil
	p.mu.Unlock()
	return d
}

func (p *Poller) work() {
	defer p.wg.Done()
	for {
		d := p.pop()
		if d == nil {
			return
		}
		if ev := Event(d.pending.Swap(0)); ev != 0 {
			d.h.Handle(ev)
		}
		// Events that arrived while the handler ran go to the back of the
		// queue, so a busy descriptor cannot starve the others.
		d.queued.Store(false)
		if d.pending.Load() != 0 && d.queued.CompareAndSwap(false, true) {
			p.push(d)
		}
	}
}

// Queued reports how many descriptors wait for a worker: a queue that
// stays long means the workers cannot keep up.
func (p *Poller) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queued
}

// Close stops the epoll loop and the workers, waiting for running handlers
// to return. Descriptors still queued are not handled. Close is idempotent.
func (p *Poller) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.ep.close()
		p.mu.Lock()
		p.closed = true
		p.head, p.tail, p.queued = nil, nil, 0
		p.mu.Unlock()
		p.cond.Broadcast()
		p.wg.Wait()
	})
	return err
}
