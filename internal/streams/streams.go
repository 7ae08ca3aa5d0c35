package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream subscriptions ("sub" with "from") and acked publishes. The
// design is in docs/ARCHITECTURE-jetstream.md: each subscription catches
// up from history with a short-lived ordered consumer of its own, then
// switches, at a sequence boundary, to one ordered consumer per (stream,
// subject) shared by the node (a feed).

const (
	// maxJSStarting bounds the subscriptions being set up or caught up at
	// once (each holds a goroutine until it is live).
	maxJSStarting = 16384
	// maxFeedStarts bounds concurrent feed creations (a few JetStream API
	// round trips each).
	maxFeedStarts = 64
	// maxCatchups bounds the catch-up consumers alive at once; more
	// subscriptions wait for a slot.
	maxCatchups = 256
	// catchupPrefetch is how many messages a catch-up consumer buffers in
	// the bridge.
	catchupPrefetch = 64
	// consumerIdle is the InactiveThreshold of every consumer the bridge
	// creates: the server removes them on its own if the bridge dies.
	// Ordered consumers recreate themselves if it fires while we are
	// merely cut off.
	consumerIdle = 30 * time.Second
	// maxPendingPubs bounds acked publishes awaiting their PubAck.
	maxPendingPubs = 1 << 16
)

// jsState is the server's JetStream side: the feeds, the goroutines that
// set up and catch up subscriptions, and acked publishes in flight. It is
// safe for concurrent use.
type jsState struct {
	s      *Server
	js     jetstream.JetStream
	ctx    context.Context // canceled by shutdown
	cancel context.CancelFunc

	starting atomic.Int64
	starts   chan struct{} // semaphore: feed creations
	catchups chan struct{} // semaphore: catch-up consumers

	mu     sync.Mutex
	feeds  map[string]*feed // by subject pattern (one stream per pattern)
	closed bool
	wg     sync.WaitGroup // every goroutine started by spawn

	pubMu sync.Mutex
	pubs  map[*nats.Msg]pendingPub
}

type pendingPub struct {
	c   *conn
	ref string
}

func newJetStream(s *Server) (*jsState, error) {
	r := &jsState{
		s:        s,
		starts:   make(chan struct{}, maxFeedStarts),
		catchups: make(chan struct{}, maxCatchups),
		feeds:    make(map[string]*feed),
		pubs:     make(map[*nats.Msg]pendingPub),
	}
	js, err := jetstream.New(s.nc,
		jetstream.WithDefaultTimeout(s.cfg.RequestTimeout),
		jetstream.WithPublishAsyncTimeout(s.cfg.RequestTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPendingPubs),
		jetstream.WithPublishAsyncAckHandler(r.pubAcked),
		jetstream.WithPublishAsyncErrHandler(r.pubFailed),
	)
	if err != nil {
		return nil, err
	}
	r.js = js
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// spawn runs f on a goroutine that shutdown waits for. It fails once
// shutdown has begun.
func (r *jsState) spawn(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// shutdown cancels every setup and catch-up, waits for them (they delete
// their consumers) and stops every feed, deleting its consumer. It runs
// before nc.Drain, once the clients are gone; ctx bounds the wait.
func (r *jsState) shutdown(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	waitCtx(ctx, r.wg.Wait)

	r.mu.Lock()
	feeds := make([]*feed, 0, len(r.feeds))
	for _, f := range r.feeds {
		feeds = append(feeds, f)
	}
	clear(r.feeds)
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range feeds {
		select {
		case <-f.ready:
		default:
			continue // its start was cut short by r.cancel
		}
		if f.err != nil {
			continue
		}
		wg.Go(f.stop)
	}
	waitCtx(ctx, wg.Wait)
}

// waitCtx runs wait and returns when it does or when ctx ends.
func waitCtx(ctx context.Context, wait func()) {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// deleteConsumer removes a consumer we created. It runs after the
// subscription's context is gone, so it has its own deadline.
func (r *jsState) deleteConsumer(stream, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.RequestTimeout)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, stream, name) // if this fails, consumerIdle removes it
}

// fromKind is where a JetStream subscription starts.
type fromKind uint8

const (
	fromNew fromKind = iota
	fromAll
	fromLast
	fromAfter // stream sequences strictly after after
	fromTime  // messages stored at or after time
)

type startPos struct {
	kind  fromKind
	after uint64
	time  time.Time
}

// parseFrom decodes a sub's "from": "new", "all", "last", {"after": N} or
// {"time": "<RFC 3339>"}.
func parseFrom(raw json.RawMessage) (startPos, *opError) {
	bad := errf(codeBadRequest, `from must be "new", "all", "last", {"after": N} or {"time": "<RFC 3339>"}`)
	var word string
	if err := json.Unmarshal(raw, &word); err == nil {
		switch word {
		case "new":
			return startPos{kind: fromNew}, nil
		case "all":
			return startPos{kind: fromAll}, nil
		case "last":
			return startPos{kind: fromLast}, nil
		}
		return startPos{}, bad
	}
	var obj struct {
		After *uint64 `json:"after"`
		Time  *string `json:"time"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return startPos{}, bad
	}
	switch {
	case obj.After != nil && obj.Time == nil:
		return startPos{kind: fromAfter, after: *obj.After}, nil
	case obj.Time != nil && obj.After == nil:
		t, err := time.Parse(time.RFC3339, *obj.Time)
		if err != nil {
			return startPos{}, errf(codeBadRequest, "from.time must be an RFC 3339 timestamp")
		}
		return startPos{kind: fromTime, time: t}, nil
	}
	return startPos{}, bad
}

// jsSub is the state of a JetStream subscription (sub with "from").
type jsSub struct {
	sb     *sub
	from   startPos
	ctx    context.Context // ends with the subscription
	cancel context.CancelFunc
	err    atomic.Pointer[opError] // why the setup failed, for the worker

	mu       sync.Mutex
	feed     *feed // set once attached
	released bool

	// Guarded by feed.mu.
	idx      int    // position in feed.members; -1 once removed
	live     bool   // the feed delivers to the client directly
	base     uint64 // the catch-up covers sequences up to base
	last     uint64 // the feed delivers only sequences above last
	buf      []byte // frames the feed delivered while catching up
	bufN     int    // how many frames buf holds
	overflow bool   // buf outgrew its limit and was dropped
}

// jsSubscribe starts a JetStream subscription for cmd, whose id, subject,
// queue, uniqueness and the subscription limit are already checked. The
// ok, or the err, comes once the subscription is attached to its feed.
func (c *conn) jsSubscribe(cmd *command) *opError {
	if cmd.Queue != "" {
		return errf(codeBadRequest, "queue cannot be combined with from: a stream subscription delivers every message to each subscriber")
	}
	from, e := parseFrom(cmd.From)
	if e != nil {
		return e
	}
	r := c.s.js
	if r.starting.Add(1) > maxJSStarting {
		r.starting.Add(-1)
		return errf(codeUnavailable, "too many stream subscriptions are starting; retry")
	}
	sb := &sub{c: c, id: cmd.ID, subject: cmd.Subject}
	ctx, cancel := context.WithCancel(r.ctx)
	sb.js = &jsSub{sb: sb, from: from, ctx: ctx, cancel: cancel, idx: -1}
	if !r.spawn(func() { r.run(sb.js) }) {
		cancel()
		r.starting.Add(-1)
		return errf(codeUnavailable, "shutting down")
	}
	c.addSub(sb)
	return nil
}

// jsUnsubscribe ends a JetStream subscription. It never blocks: a catch-up
// in progress is canceled and cleans up after itself.
func (s *Server) jsUnsubscribe(sb *sub) {
	js := sb.js
	js.cancel()
	js.mu.Lock()
	js.released = true
	f := js.feed
	js.feed = nil
	js.mu.Unlock()
	if f != nil {
		f.remove(js)
		s.js.release(f)
	}
}

// fail reports a setup failure; the worker answers it (jsSettle).
func (js *jsSub) fail(e *opError) {
	js.err.Store(e)
	c := js.sb.c
	c.mu.Lock()
	c.acks = append(c.acks, js.sb)
	c.mu.Unlock()
	c.s.poller.Schedule(c.desc, evAcks)
}

// jsSettle runs on the worker for a JetStream sub whose setup failed: it
// drops the sub and sends the err, unless the client already unsubscribed.
func (c *conn) jsSettle(sb *sub) {
	e := sb.js.err.Load()
	if e == nil {
		return
	}
	i := slices.Index(c.subs, sb)
	if i < 0 {
		return
	}
	c.subs = slices.Delete(c.subs, i, i+1)
	c.release(sb)
	sb.acked.Store(true)
	c.sendText(func(b []byte) []byte { return appendErr(b, sb.id, e) })
}

// jsPublish publishes m through JetStream and answers ref with the stream
// and sequence from the PubAck callback. It never waits for the ack.
func (c *conn) jsPublish(ref string, m *nats.Msg) *opError {
	r := c.s.js
	r.pubMu.Lock()
	r.pubs[m] = pendingPub{c: c, ref: ref}
	r.pubMu.Unlock()
	// A tiny stall wait: at maxPendingPubs we refuse rather than block
	// the worker.
	if _, err := r.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Microsecond)); err != nil {
		r.takePub(m)
		return natsError(err)
	}
	c.s.metrics.published()
	return nil
}

func (r *jsState) takePub(m *nats.Msg) (pendingPub, bool) {
	r.pubMu.Lock()
	p, ok := r.pubs[m]
	delete(r.pubs, m)
	r.pubMu.Unlock()
	return p, ok
}

// pubAcked runs on nats.go's ack goroutine; it only queues the ok.
func (r *jsState) pubAcked(_ jetstream.JetStream, m *nats.Msg, pa *jetstream.PubAck) {
	p, ok := r.takePub(m)
	if !ok {
		return
	}
	p.c.enqueueText(func(b []byte) []byte { return appendPubAck(b, p.ref, pa.Stream, pa.Sequence, pa.Duplicate) })
}

// pubFailed runs on nats.go's goroutines: no stream, timeout, disconnect
// or an error from the stream.
func (r *jsState) pubFailed(_ jetstream.JetStream, m *nats.Msg, err error) {
	p, ok := r.takePub(m)
	if !ok {
		return
	}
	e := natsError(err)
	if e.code == codeInternal {
		r.s.log.Warn("acked publish failed", "subject", m.Subject, "err", err)
	}
	p.c.enqueueText(func(b []byte) []byte { return appendErr(b, p.ref, e) })
}
