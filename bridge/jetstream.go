package bridge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/streams"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// JetStream on the bridge's side: subscriptions with "from" are delivered
// by internal/streams, to which each such sub is a streams.Member; acked
// publishes go through jetstream's async publisher and are answered from
// its callbacks.

// maxPendingPubs bounds acked publishes awaiting their PubAck.
const maxPendingPubs = 1 << 16

// publisher tracks acked publishes in flight. It is safe for concurrent
// use.
type publisher struct {
	s    *Server
	js   jetstream.JetStream
	mu   sync.Mutex
	pubs map[*nats.Msg]pendingPub

	lookups chan pubJob // acked publishes waiting for lookupLoop
	cmu     sync.Mutex
	cache   map[string]lookupEntry // subject → does a stream capture it
}

type pendingPub struct {
	c   *conn
	ref string
}

// newJetStream opens the JetStream API on s.nc for acked publishes and
// stream subscriptions.
func newJetStream(s *Server) (*publisher, *streams.Streams, error) {
	p := &publisher{
		s:       s,
		pubs:    make(map[*nats.Msg]pendingPub),
		lookups: make(chan pubJob, lookupQueue),
		cache:   make(map[string]lookupEntry),
	}
	js, err := jetstream.New(s.nc,
		jetstream.WithDefaultTimeout(s.cfg.RequestTimeout),
		jetstream.WithPublishAsyncTimeout(s.cfg.RequestTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPendingPubs),
		jetstream.WithPublishAsyncAckHandler(p.acked),
		jetstream.WithPublishAsyncErrHandler(p.failed),
	)
	if err != nil {
		return nil, nil, err
	}
	p.js = js
	st := streams.New(streams.Config{
		JS:             js,
		RequestTimeout: s.cfg.RequestTimeout,
		WriteBuffer:    s.cfg.WriteBuffer,
		MaxFrame:       int(s.maxFrame),
		Logger:         s.log,
		Clock:          s.clock,
		Delivered: func(n, bytes, dropped int) {
			s.metrics.delivered(fanout{n: n, bytes: bytes, dropped: dropped})
		},
	})
	return p, st, nil
}

// jsSubscribe starts a JetStream subscription for cmd, whose id, subject,
// queue, uniqueness and the subscription limit are already checked. The
// ok, or the err, comes once the subscription is attached to its feed.
func (c *conn) jsSubscribe(cmd *wire.Command) *wire.Error {
	if cmd.Queue != "" {
		return wire.Errf(wire.CodeBadRequest, "queue cannot be combined with from: a stream subscription delivers every message to each subscriber")
	}
	from, e := wire.ParseFrom(cmd.From)
	if e != nil {
		return e
	}
	if c.catchups == nil {
		c.catchups = make(chan struct{}, c.s.cfg.MaxCatchupsPerConn)
	}
	sb := &sub{c: c, id: cmd.ID, subject: cmd.Subject}
	js, err := c.s.streams.Subscribe(sb, cmd.Subject, from)
	switch err {
	case nil:
	case streams.ErrBusy:
		return wire.Errf(wire.CodeUnavailable, "too many stream subscriptions are starting; retry")
	default:
		return wire.Errf(wire.CodeUnavailable, "shutting down")
	}
	sb.js = js
	c.addSub(sb)
	return nil
}

// The streams.Member side of a JetStream sub. streams calls these from
// its goroutines with feed locks held; each takes at most c.mu.

// SID implements streams.Member.
func (sb *sub) SID() string { return sb.id }

// Enqueue implements streams.Member.
func (sb *sub) Enqueue(frames []byte, at int64) bool {
	ok, _ := sb.c.push(frames, at, true)
	return ok
}

// Queued implements streams.Member.
func (sb *sub) Queued() (int, bool) { return sb.c.queued() }

// CatchupSlots implements streams.Limited: a connection's stream subs
// share MaxCatchupsPerConn catch-up slots.
func (sb *sub) CatchupSlots() chan struct{} { return sb.c.catchups }

// Compress implements streams.Member.
func (sb *sub) Compress(n int) bool { return sb.c.compress(n) }

// Attached implements streams.Member: the sub's ok.
func (sb *sub) Attached() {
	if sb.acked.CompareAndSwap(false, true) {
		sb.c.pushText(func(b []byte) []byte { return wire.AppendOK(b, sb.id) }, true)
	}
}

// Fail implements streams.Member: the worker drops the sub and answers
// the err (jsSettle).
func (sb *sub) Fail(err error) {
	e := natsError(err)
	if e.Code == wire.CodeInternal {
		sb.c.s.logLimited(sb.c.s.errLog, "stream subscription failed", "subject", sb.subject, "err", err)
	}
	sb.jsErr.Store(e)
	c := sb.c
	c.mu.Lock()
	c.acks = append(c.acks, sb)
	c.mu.Unlock()
	c.s.poller.Schedule(c.desc, evAcks)
}

// jsSettle runs on the worker for a JetStream sub whose setup failed.
func (c *conn) jsSettle(sb *sub) {
	if e := sb.jsErr.Load(); e != nil {
		c.settle(sb, e)
	}
}

// settle runs on the worker for a sub that failed after it was accepted
// (its NATS subscription or its stream): it drops the sub and answers the
// err, unless the client already unsubscribed. A raw-mode connection,
// which has no envelopes, is closed instead.
func (c *conn) settle(sb *sub, e *wire.Error) {
	i := slices.Index(c.subs, sb)
	if i < 0 {
		return
	}
	c.subs = slices.Delete(c.subs, i, i+1)
	c.release(sb)
	if c.raw != nil {
		c.closeWith(wsframe.CloseUnavailable, false)
		return
	}
	sb.acked.Store(true)
	c.pushText(func(b []byte) []byte { return wire.AppendErr(b, sb.id, e) }, false)
}

// jsPublish publishes m through JetStream, by way of the outbox, and
// answers ref with the stream and sequence from the PubAck callback. It
// never waits for the ack.
func (c *conn) jsPublish(ref string, m *nats.Msg) *wire.Error {
	p := c.s.pub
	p.mu.Lock()
	if len(c.pubs) >= c.s.cfg.MaxInflightAcks {
		p.mu.Unlock()
		c.s.metrics.inflightRefused[inflightAck].Add(1)
		return wire.Errf(wire.CodeTooManyRequests, "too many acked publishes in flight on this connection")
	}
	p.pubs[m] = pendingPub{c: c, ref: ref}
	c.pubs = append(c.pubs, m)
	p.mu.Unlock()
	var e *wire.Error
	if p.captured(m.Subject) {
		e = c.s.out.send(pubJob{kind: jobAck, c: c, m: m})
	} else {
		e = p.lookup(pubJob{kind: jobAck, c: c, m: m})
	}
	if e != nil {
		p.take(m)
		return e
	}
	return nil
}

// Acked publishes first learn whether a stream captures their subject:
// a core subscriber on it would otherwise take the message and leave the
// PubAck to time out, where the client must hear no_stream. The answer is
// cached per subject, so it costs one JetStream API request per subject
// and period, asked off the workers.
const (
	capturedFor    = 30 * time.Second // a stream captures the subject
	notCapturedFor = time.Second      // none does: streams may be added
	maxLookups     = 1 << 14          // cached subjects; the cache restarts beyond
	lookupQueue    = 1024
)

type lookupEntry struct {
	ok bool
	at time.Time
}

// captured reports whether a fresh cache entry says a stream captures
// subject.
func (p *publisher) captured(subject string) bool {
	p.cmu.Lock()
	e, ok := p.cache[subject]
	p.cmu.Unlock()
	return ok && e.ok && time.Since(e.at) < capturedFor
}

// lookup queues an acked publish whose subject is not known to be
// captured for the lookup goroutine. It never blocks.
func (p *publisher) lookup(j pubJob) *wire.Error {
	select {
	case p.lookups <- j:
		return nil
	default:
		return wire.Errf(wire.CodeUnavailable, "too many acked publishes waiting for a stream lookup")
	}
}

// lookupLoop answers lookups until shutdown: a stream captures the
// subject, and the publish goes to the outbox, or none does: no_stream.
func (p *publisher) lookupLoop() {
	defer p.s.wg.Done()
	for {
		var j pubJob
		select {
		case <-p.s.done:
			return
		case j = <-p.lookups:
		}
		ok, err := p.capture(j.m.Subject)
		var e *wire.Error
		switch {
		case err != nil:
			e = natsError(err)
		case ok:
			e = p.s.out.send(j)
		default:
			e = wire.Errf(wire.CodeNoStream, "no JetStream stream captures the subject")
		}
		if e != nil {
			p.s.out.fail(j, e)
		}
	}
}

// capture asks JetStream whether a stream captures subject, through the
// cache.
func (p *publisher) capture(subject string) (bool, error) {
	p.cmu.Lock()
	e, ok := p.cache[subject]
	p.cmu.Unlock()
	if ok && (e.ok && time.Since(e.at) < capturedFor || !e.ok && time.Since(e.at) < notCapturedFor) {
		return e.ok, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.s.cfg.RequestTimeout)
	defer cancel()
	names := p.js.StreamNames(ctx, jetstream.WithStreamListSubject(subject))
	found := false
	for range names.Name() {
		found = true
	}
	switch err := names.Err(); {
	case err == nil, errors.Is(err, jetstream.ErrEndOfData):
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		// No JetStream on the server: no stream captures anything.
	default:
		return false, err
	}
	p.cmu.Lock()
	if len(p.cache) >= maxLookups {
		clear(p.cache)
	}
	p.cache[subject] = lookupEntry{ok: found, at: time.Now()}
	p.cmu.Unlock()
	return found, nil
}

// take removes the acked publish m, if it is still pending, and returns
// whom to answer.
func (p *publisher) take(m *nats.Msg) (pendingPub, bool) {
	p.mu.Lock()
	pp, ok := p.pubs[m]
	if ok {
		delete(p.pubs, m)
		pp.c.pubs = removeOne(pp.c.pubs, m)
	}
	p.mu.Unlock()
	return pp, ok
}

// drop forgets c's acked publishes in flight: c is gone. Their PubAcks,
// when they come, find nothing to answer.
func (p *publisher) drop(c *conn) {
	p.mu.Lock()
	for _, m := range c.pubs {
		delete(p.pubs, m)
	}
	c.pubs = nil
	p.mu.Unlock()
}

// inflight is the number of acked publishes waiting for their PubAck.
func (p *publisher) inflight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pubs)
}

// acked runs on nats.go's ack goroutine; it only queues the ok.
func (p *publisher) acked(_ jetstream.JetStream, m *nats.Msg, pa *jetstream.PubAck) {
	pp, ok := p.take(m)
	if !ok {
		return
	}
	pp.c.pushText(func(b []byte) []byte {
		return wire.AppendPubAck(b, pp.ref, pa.Stream, pa.Sequence, pa.Duplicate)
	}, true)
}

// failed runs on nats.go's goroutines: no stream, timeout, disconnect or
// an error from the stream.
func (p *publisher) failed(_ jetstream.JetStream, m *nats.Msg, err error) {
	pp, ok := p.take(m)
	if !ok {
		return
	}
	e := natsError(err)
	if e.Code == wire.CodeInternal {
		p.s.logLimited(p.s.errLog, "acked publish failed", "subject", m.Subject, "err", err)
	}
	pp.c.pushText(func(b []byte) []byte { return wire.AppendErr(b, pp.ref, e) }, true)
}
