package bridge

import (
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// The outbox keeps nats.go's Publish off the workers. Publish takes the
// connection's lock, and a socket write to a frozen or blackholed NATS
// node holds it until the flusher timeout: a worker calling Publish then
// would stop reading every client it serves. Workers queue a job and go
// on; one goroutine publishes. Once a publish has been stuck for
// stallAfter, new jobs are refused at once and queued ones are answered
// unavailable by the watchdog, so a client hears within a second.
type outbox struct {
	s     *Server
	ch    chan pubJob
	bytes atomic.Int64 // payload bytes queued
	busy  atomic.Int64 // unix nanoseconds the running publish began; 0: idle
}

// jobKind is what a queued publish answers when it is done.
type jobKind uint8

const (
	jobPub jobKind = iota // core pub: ok with ref, if any
	jobAck                // acked pub through JetStream: answered by the PubAck
	jobReq                // request: answered by the reply or its timeout
	jobRaw                // raw-mode message: nothing to answer; close on failure
)

type pubJob struct {
	kind  jobKind
	c     *conn
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

func newOutbox(s *Server) *outbox {
	return &outbox{s: s, ch: make(chan pubJob, outboxJobs)}
}

// stalled reports whether the running publish has blocked for stallAfter.
func (o *outbox) stalled() bool {
	b := o.busy.Load()
	return b != 0 && time.Since(time.Unix(0, b)) > stallAfter
}

// send queues j, or refuses it when NATS is stuck or the queue is full.
// It never blocks.
func (o *outbox) send(j pubJob) *wire.Error {
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

// run publishes queued jobs until shutdown.
func (o *outbox) run() {
	defer o.s.wg.Done()
	for {
		select {
		case <-o.s.done:
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
func (o *outbox) watch() {
	defer o.s.wg.Done()
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-o.s.done:
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

func (o *outbox) publish(j pubJob) error {
	if j.kind == jobAck {
		// A tiny stall wait: at maxPendingPubs we refuse rather than
		// block.
		return o.s.pub.Publish(j.m)
	}
	return o.s.nc.PublishMsg(j.m)
}

// finish answers a job that was published, or failed to be.
func (o *outbox) finish(j pubJob, err error) {
	if err != nil {
		o.fail(j, natsError(err))
		return
	}
	o.s.metrics.published()
	if j.kind == jobPub && j.ref != "" {
		j.c.pushText(func(b []byte) []byte { return wire.AppendOK(b, j.ref) }, true)
	}
}

// fail answers a job that will not be published.
func (o *outbox) fail(j pubJob, e *wire.Error) {
	switch j.kind {
	case jobPub:
		if j.ref == "" {
			return // fire and forget: nobody to tell
		}
		j.c.pushText(func(b []byte) []byte { return wire.AppendErr(b, j.ref, e) }, true)
	case jobAck:
		if _, ref, ok := o.s.pub.Take(j.m); ok {
			j.c.pushText(func(b []byte) []byte { return wire.AppendErr(b, ref, e) }, true)
		}
	case jobReq:
		if p := o.s.req.take(j.ref); p != nil {
			p.c.pushText(func(b []byte) []byte { return wire.AppendErr(b, p.ref, e) }, true)
		}
	case jobRaw:
		ce := wsframe.CloseUnavailable
		if e.Code == wire.CodePayloadTooLarge {
			ce = wsframe.ErrTooBig
		}
		j.c.requestClose(ce)
	}
}
