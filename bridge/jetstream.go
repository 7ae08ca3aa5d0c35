package bridge

import (
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/metrics"
	"wsbridge/internal/streams"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// JetStream on the bridge's side: subscriptions with "from" are delivered
// by internal/streams, to which each such sub is a streams.Member; acked
// publishes are tracked by a streams.Publisher, to which each connection
// is a streams.Acker, and sent through the outbox.

// newJetStream opens the JetStream API on s.nc for acked publishes and
// stream subscriptions.
func newJetStream(s *Server) (*streams.Publisher, *streams.Streams, error) {
	// The trace counts every JetStream API request the node sends
	// (wsbridge_jetstream_api_requests_total), not pulls or publishes.
	p, js, err := streams.NewPublisher(s.nc, s.cfg.RequestTimeout, jetstream.WithClientTrace(&jetstream.ClientTrace{
		RequestSent: func(string, []byte) { s.metrics.JetStreamRequest() },
	}))
	if err != nil {
		return nil, nil, err
	}
	st := streams.New(streams.Config{
		JS:             js,
		RequestTimeout: s.cfg.RequestTimeout,
		WriteBuffer:    s.cfg.WriteBuffer,
		MaxFrame:       int(s.maxFrame),
		Logger:         s.log,
		Clock:          s.clock,
		Delivered: func(n, bytes, dropped int) {
			s.metrics.Delivered(metrics.FanoutOf(n, bytes, dropped))
		},
		Window:      max(s.cfg.ResumeWindow, 0),
		WindowBytes: max(s.cfg.ResumeWindowBytes, 0),
		Resumed:     s.metrics.Resumed,
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
// answers ref with the stream and sequence from the PubAck (Acked). It
// never waits for the ack, nor for the lookup of whether a stream
// captures the subject.
func (c *conn) jsPublish(ref string, m *nats.Msg) *wire.Error {
	p := c.s.pub
	if !p.Track(c, ref, m, c.s.cfg.MaxInflightAcks) {
		c.s.metrics.InflightRefused(metrics.InflightAck)
		return wire.Errf(wire.CodeTooManyRequests, "too many acked publishes in flight on this connection")
	}
	var e *wire.Error
	switch {
	case p.Captured(m.Subject):
		e = c.s.out.PublishAcked(c, m)
	case !p.Lookup(m.Subject, func(captured bool, err error) {
		var e *wire.Error
		switch {
		case err != nil:
			e = natsError(err)
		case captured:
			e = c.s.out.PublishAcked(c, m)
		default:
			e = wire.Errf(wire.CodeNoStream, "no JetStream stream captures the subject")
		}
		if e != nil {
			c.s.out.FailAcked(c, m, e)
		}
	}):
		e = wire.Errf(wire.CodeUnavailable, "too many acked publishes waiting for a stream lookup")
	}
	if e != nil {
		p.Take(m)
	}
	return e
}

// Acked implements streams.Acker; it runs on nats.go's ack goroutine and
// only queues the ok.
func (c *conn) Acked(ref, stream string, seq uint64, duplicate bool) {
	c.pushText(func(b []byte) []byte { return wire.AppendPubAck(b, ref, stream, seq, duplicate) }, true)
}

// AckFailed implements streams.Acker: no stream, timeout, disconnect or
// an error from the stream.
func (c *conn) AckFailed(ref string, err error) {
	e := natsError(err)
	if e.Code == wire.CodeInternal {
		c.s.logLimited(c.s.errLog, "acked publish failed", "err", err)
	}
	c.pushText(func(b []byte) []byte { return wire.AppendErr(b, ref, e) }, true)
}
