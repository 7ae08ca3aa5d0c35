package publish

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/streams"
	"wsbridge/internal/wire"
)

// Member is the client end of publishes and requests. Its methods are
// called from the Outbox's goroutines, nats.go's delivery goroutine and
// request timers, with no lock of this package held; they must not block.
// A Member is a map key (its requests in flight are found by it), so it
// must be comparable: a pointer, in practice.
type Member interface {
	// OK answers ref: nats.go took its publish.
	OK(ref string)
	// Err answers ref, a publish, an acked publish or a request, with e.
	Err(ref string, e *wire.Error)
	// Reply answers request ref with m, the reply as nats.go delivered
	// it.
	Reply(ref string, m *nats.Msg)
	// Abort says a raw-mode message failed with e: the client has no
	// envelope to hear it in, so it is to be closed.
	Abort(e *wire.Error)
}

// Config is an Outbox's configuration.
type Config struct {
	// NATS is the connection publishes and requests go out on. Required.
	NATS *nats.Conn
	// JetStream sends acked publishes and tracks their PubAcks. Required
	// for PublishAcked and FailAcked.
	JetStream *streams.Publisher
	// MapError maps an error from nats.go onto the protocol's codes.
	// Required: the caller keeps the one such mapping.
	MapError func(error) *wire.Error
	// MaxInflightRequests caps one Member's requests waiting for their
	// reply; zero or less means 64.
	MaxInflightRequests int
	// Published, when not nil, is called on the publisher goroutine for
	// each message nats.go took.
	Published func()
	// RequestRefused, when not nil, is called for each request refused
	// for MaxInflightRequests.
	RequestRefused func()
}

// Outbox keeps nats.go's Publish off the workers. Publish takes the
// connection's lock, and a socket write to a frozen or blackholed NATS
// node holds it until the flusher timeout: a worker calling Publish then
// would stop reading every client it serves. Workers queue a job and go
// on; one goroutine publishes. Once a publish has been stuck for
// stallAfter, new jobs are refused at once and queued ones are answered
// unavailable by the watchdog, so a client hears within a second.
//
// Make it with New, then Start it; Close stops it.
type Outbox struct {
	cfg   Config
	ch    chan pubJob
	bytes atomic.Int64 // payload bytes queued
	busy  atomic.Int64 // unix nanoseconds the running publish began; 0: idle
	req   requester

	startOnce, closeOnce sync.Once
	done                 chan struct{}
	wg                   sync.WaitGroup
}

// jobKind is what a queued publish answers when it is done.
type jobKind uint8

const (
	jobPub jobKind = iota // core pub: ok with ref, if any
	jobAck                // acked pub through JetStream: answered by the PubAck
	jobReq                // request: answered by the reply or its timeout
	jobRaw                // raw-mode message: nothing to answer; abort on failure
)

type pubJob struct {
	kind  jobKind
	mb    Member
	m     *nats.Msg
	ref   string // jobPub: the client's id; jobReq: the request token
	bytes int64
}

const (
	// outboxJobs and outboxBytes bound the queue; beyond either a publish
	// is refused with unavailable.
	outboxJobs  = 1 << 14
	outboxBytes = 64 << 20
	// stallAfter is how long one publish may block before NATS counts as
	// stuck.
	stallAfter = 500 * time.Millisecond
	// watchEvery is the watchdog's period.
	watchEvery = 100 * time.Millisecond
)

var errStuck = wire.Errf(wire.CodeUnavailable, "NATS is not accepting messages")

// New makes an Outbox on cfg.NATS and subscribes its request inbox. It
// publishes nothing until Start.
func New(cfg Config) (*Outbox, error) {
	if cfg.NATS == nil {
		return nil, errors.New("publish: Config.NATS is required")
	}
	if cfg.MapError == nil {
		return nil, errors.New("publish: Config.MapError is required")
	}
	if cfg.MaxInflightRequests <= 0 {
		cfg.MaxInflightRequests = 64
	}
	if cfg.Published == nil {
		cfg.Published = func() {}
	}
	if cfg.RequestRefused == nil {
		cfg.RequestRefused = func() {}
	}
	o := &Outbox{cfg: cfg, ch: make(chan pubJob, outboxJobs), done: make(chan struct{})}
	if err := o.req.init(cfg.NATS); err != nil {
		return nil, err
	}
	return o, nil
}

// Start starts the publisher and the watchdog. Calls after the first do
// nothing.
func (o *Outbox) Start() {
	o.startOnce.Do(func() {
		o.wg.Add(2)
		go o.run()
		go o.watch()
	})
}

// Close stops the publisher and the watchdog, waits for them and ends the
// request inbox's subscription; a publish in progress finishes first, so
// close or drain NATS before. Jobs still queued are not answered.
// Publishes and requests made after Close are queued and never sent.
// Close is idempotent.
func (o *Outbox) Close() {
	o.closeOnce.Do(func() {
		close(o.done)
		o.wg.Wait()
		_ = o.req.ns.Unsubscribe() // fails harmlessly on a drained or closed connection
	})
	o.wg.Wait()
}

// Publish queues a core publish of m and answers ref ok once nats.go has
// taken it; an empty ref is fire and forget. It returns the refusal when
// NATS is stuck or the queue is full, and never blocks.
func (o *Outbox) Publish(mb Member, ref string, m *nats.Msg) *wire.Error {
	return o.send(pubJob{kind: jobPub, mb: mb, m: m, ref: ref})
}

// PublishAcked queues m, already tracked by Config.JetStream, for
// JetStream; the PubAck answers it through its streams.Acker. A failure
// to send it is answered to mb with Err. It returns the refusal as
// Publish does; the caller then forgets the tracked publish.
func (o *Outbox) PublishAcked(mb Member, m *nats.Msg) *wire.Error {
	return o.send(pubJob{kind: jobAck, mb: mb, m: m})
}

// FailAcked answers an acked publish that will not be sent: if m is still
// tracked by Config.JetStream, it is forgotten there and mb hears e.
func (o *Outbox) FailAcked(mb Member, m *nats.Msg, e *wire.Error) {
	o.fail(pubJob{kind: jobAck, mb: mb, m: m}, e)
}

// PublishRaw queues m, a raw-mode message, which has nothing to answer;
// if it fails, mb is aborted. It returns the refusal as Publish does.
func (o *Outbox) PublishRaw(mb Member, m *nats.Msg) *wire.Error {
	return o.send(pubJob{kind: jobRaw, mb: mb, m: m})
}

// stalled reports whether the running publish has blocked for stallAfter.
func (o *Outbox) stalled() bool {
	b := o.busy.Load()
	return b != 0 && time.Since(time.Unix(0, b)) > stallAfter
}

// send queues j, or refuses it when NATS is stuck or the queue is full.
// It never blocks.
func (o *Outbox) send(j pubJob) *wire.Error {
	if o.stalled() {
		return errStuck
	}
	j.bytes = int64(len(j.m.Data))
	if o.bytes.Add(j.bytes) > outboxBytes {
		o.bytes.Add(-j.bytes)
		return errStuck
	}
	select {
	case o.ch <- j:
		return nil
	default:
		o.bytes.Add(-j.bytes)
		return errStuck
	}
}

// run publishes queued jobs until Close.
func (o *Outbox) run() {
	defer o.wg.Done()
	for {
		select {
		case <-o.done:
			return
		case j := <-o.ch:
			o.bytes.Add(-j.bytes)
			o.busy.Store(time.Now().UnixNano())
			err := o.publish(j)
			o.busy.Store(0)
			o.finish(j, err)
		}
	}
}

// watch answers queued jobs unavailable while a publish is stuck.
func (o *Outbox) watch() {
	defer o.wg.Done()
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-o.done:
			return
		case <-t.C:
		}
		for o.stalled() {
			select {
			case j := <-o.ch:
				o.bytes.Add(-j.bytes)
				o.fail(j, errStuck)
			default:
				goto next
			}
		}
	next:
	}
}

func (o *Outbox) publish(j pubJob) error {
	if j.kind == jobAck {
		// A tiny stall wait: at maxPendingPubs we refuse rather than
		// block.
		return o.cfg.JetStream.Publish(j.m)
	}
	return o.cfg.NATS.PublishMsg(j.m)
}

// finish answers a job that was published, or failed to be.
func (o *Outbox) finish(j pubJob, err error) {
	if err != nil {
		o.fail(j, o.cfg.MapError(err))
		return
	}
	o.cfg.Published()
	if j.kind == jobPub && j.ref != "" {
		j.mb.OK(j.ref)
	}
}

// fail answers a job that will not be published.
func (o *Outbox) fail(j pubJob, e *wire.Error) {
	switch j.kind {
	case jobPub:
		if j.ref == "" {
			return // fire and forget: nobody to tell
		}
		j.mb.Err(j.ref, e)
	case jobAck:
		if _, ref, ok := o.cfg.JetStream.Take(j.m); ok {
			j.mb.Err(ref, e)
		}
	case jobReq:
		if p := o.req.take(j.ref); p != nil {
			p.mb.Err(p.ref, e)
		}
	case jobRaw:
		j.mb.Abort(e)
	}
}
