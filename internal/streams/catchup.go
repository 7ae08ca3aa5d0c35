package streams

import (
	"context"
	"errors"
	"time"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"

	"github.com/nats-io/nats.go/jetstream"
)

// errConnGone stops a catch-up whose connection stopped taking frames.
var errConnGone = errors.New("streams: connection closed")

// pauseAfter is how long a catch-up waits for room in its client's queue
// before it deletes its consumer, to open a new one when room comes.
const pauseAfter = time.Second

// catchIdle is how long a catch-up waits for a message before it asks the
// server whether anything is left.
const catchIdle = 2 * time.Second

// run sets up one JetStream subscription: attach to the feed (from then on
// nothing stored later is missed), ok, catch up from history through the
// feed's position, then go live on the feed. It owns the subscription
// until then; afterwards the feed serves it with no goroutine.
func (r *Streams) run(js *Sub) {
	defer r.starting.Add(-1)
	defer js.cancel()
	f, err := r.acquire(js.ctx, js.subject)
	if err != nil {
		r.setupFailed(js, err)
		return
	}
	if !js.attach(f) {
		r.release(f)
		return
	}
	js.m.Attached()
	if err := r.catchUp(js, f); err != nil {
		r.setupFailed(js, err)
	}
}

// setupFailed reports err to the client unless the subscription ended
// anyway (unsub, close, shutdown).
func (r *Streams) setupFailed(js *Sub, err error) {
	if js.ctx.Err() != nil || errors.Is(err, errConnGone) {
		return
	}
	js.m.Fail(err)
}

// attach makes js a member of f, buffering, at f's current position.
func (js *Sub) attach(f *feed) bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.released {
		return false
	}
	js.feed = f
	f.mu.Lock()
	defer f.mu.Unlock()
	js.base = f.last
	switch js.from.Kind {
	case wire.FromNew:
		js.last = f.last
	case wire.FromAfter:
		js.last = js.from.After
	}
	f.add(js)
	return true
}

// catchUp delivers the stream's matches from js.from through js.base,
// then switches js to live. If the feed's buffer for js overflows first,
// the boundary moves up to the feed's position and the catch-up goes on.
func (r *Streams) catchUp(js *Sub, f *feed) error {
	cu := catchup{r: r, js: js, cursor: js.last}
	defer cu.close()
	if cu.cursor < js.base {
		r.replays.Add(1) // history to replay
	}
	for {
		if cu.cursor < js.base {
			if err := cu.through(js.base); err != nil {
				return err
			}
		}
		if err := cu.waitRoom(); err != nil {
			return err
		}
		if js.goLive(f, cu.cursor) {
			return nil
		}
	}
}

// goLive flushes what the feed buffered and makes js live, unless the
// buffer overflowed: then it moves the boundary and returns false.
func (js *Sub) goLive(f *feed, cursor uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if js.idx < 0 {
		return true // unsubscribed or the feed stopped
	}
	if js.overflow {
		js.overflow, js.buf, js.base = false, nil, f.last
		return false
	}
	if len(js.buf) > 0 {
		// Whole frames, in stream order; buffered during the catch-up, so
		// not timed.
		if js.m.Enqueue(js.buf, 0) {
			f.r.cfg.Delivered(js.bufN, len(js.buf), 0)
		} else {
			f.r.cfg.Delivered(0, 0, js.bufN)
		}
	}
	js.buf, js.bufN = nil, 0
	js.last = max(js.last, cursor, f.last)
	js.live = true
	return true
}

// catchup is one subscription's short-lived ordered consumer.
type catchup struct {
	r      *Streams
	js     *Sub
	cursor uint64 // last sequence sent to the client
	sent   bool   // cursor came from a delivered message

	cons    jetstream.Consumer
	stream  string
	it      jetstream.MessagesContext
	unhook  func() bool
	slot    bool          // holds a node-wide slot (Streams.catchups)
	own     chan struct{} // the member's own slots (Limited), when held
	ownSlot bool
	fresh   bool // cons was just created: its info is current
	// got is the delivery sequence of the last message received from
	// consumer gotFrom.
	gotFrom string
	got     uint64
	held    jetstream.Msg // first message past the boundary
	body    []byte
	frame   []byte
}

// through sends every match up to base, in order.
func (cu *catchup) through(base uint64) error {
	if cu.held != nil {
		if seq := msgSeq(cu.held); seq > base {
			return nil
		}
	}
	for {
		if err := cu.open(); err != nil {
			return err
		}
		m := cu.held
		cu.held = nil
		if m == nil {
			var err error
			if m, err = cu.next(); err != nil {
				if cu.js.ctx.Err() != nil {
					return cu.js.ctx.Err()
				}
				cu.r.log.Debug("catch-up consumer failed; recreating", "subject", cu.js.subject, "err", err)
				cu.close()
				if err := cu.backoff(); err != nil {
					return err
				}
				continue
			}
			if m == nil {
				return nil // nothing left in the stream
			}
		}
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		if seq > base {
			cu.held = m
			return nil
		}
		if seq > cu.cursor && !wire.Reserved(m.Subject()) {
			if err := cu.send(m, seq); err != nil {
				return err
			}
		}
		if md.NumPending == 0 {
			// Nothing more matches up to the stream's end, which is at
			// or past base: the feed has the rest.
			return nil
		}
	}
}

// open creates the consumer if there is none: from js.from the first
// time, after the cursor once something was sent. It retries until the
// subscription ends; only a missing stream is final.
func (cu *catchup) open() error {
	if cu.it != nil {
		return nil
	}
	js, r := cu.js, cu.r
	if err := cu.acquire(); err != nil {
		return err
	}
	js.mu.Lock()
	f := js.feed
	js.mu.Unlock()
	if f == nil {
		return errConnGone // released
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{js.subject},
		InactiveThreshold: consumerIdle,
	}
	switch {
	case cu.sent || js.from.Kind == wire.FromAfter || js.from.Kind == wire.FromNew:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cu.cursor+1
	case js.from.Kind == wire.FromAll:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case js.from.Kind == wire.FromLast:
		cfg.DeliverPolicy = jetstream.DeliverLastPolicy
	case js.from.Kind == wire.FromTime:
		t := js.from.Time
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	for {
		// Not canceled with js.ctx: a create cut short may still happen
		// on the server, and then nobody would delete it.
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
		cons, err := r.js.OrderedConsumer(ctx, f.stream, cfg)
		cancel()
		if err == nil {
			cu.cons, cu.stream, cu.fresh = cons, f.stream, true
			if err := js.ctx.Err(); err != nil {
				return err // close deletes it
			}
			break
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		r.log.Debug("catch-up consumer", "subject", js.subject, "err", err)
		if err := cu.backoff(); err != nil {
			return err
		}
	}
	it, err := cu.cons.Messages(jetstream.PullMaxMessages(catchupPrefetch), jetstream.PullHeartbeat(feedHeartbeat))
	if err != nil {
		cu.close()
		return err
	}
	cu.it = it
	// A reset inside the iterator can wait on backoff: Stop ends it.
	cu.unhook = context.AfterFunc(js.ctx, it.Stop)
	return nil
}

// next returns the next message, or nil when the consumer has nothing
// left to deliver.
func (cu *catchup) next() (jetstream.Msg, error) {
	if cu.fresh {
		cu.fresh = false
		if info := cu.cons.CachedInfo(); info != nil && info.NumPending == 0 {
			return nil, nil // nothing matched when it was created
		}
	}
	for {
		ctx, cancel := context.WithTimeout(cu.js.ctx, catchIdle)
		m, err := cu.it.Next(jetstream.NextContext(ctx))
		cancel()
		if err == nil {
			if md, err := m.Metadata(); err == nil {
				cu.gotFrom, cu.got = md.Consumer, md.Sequence.Consumer
			}
			return m, nil
		}
		if cu.js.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		// Quiet for a while: the stream may have lost what the consumer
		// counted (a purge), so ask. Done only if nothing is pending and
		// everything it delivered has reached us (none in transit).
		ictx, icancel := context.WithTimeout(cu.js.ctx, cu.r.cfg.RequestTimeout)
		info, err := cu.cons.Info(ictx)
		icancel()
		if err != nil || info.NumPending != 0 {
			continue
		}
		var got uint64
		if info.Name == cu.gotFrom {
			got = cu.got
		}
		if info.Delivered.Consumer == got {
			return nil, nil
		}
	}
}

// send queues one message for the client, after waiting for room.
func (cu *catchup) send(m jetstream.Msg, seq uint64) error {
	if err := cu.waitRoom(); err != nil {
		return err
	}
	cu.body = wire.AppendBody(cu.body[:0], m.Data(), m.Headers(), "")
	cu.frame = wire.AppendMsgFrame(cu.frame[:0], cu.js.sid, m.Subject(), cu.body, seq)
	fr := cu.frame
	if cu.js.m.Compress(len(m.Data())) {
		// History is per client: compressed per client.
		fr = wsframe.AppendDeflated(fr[len(fr):], fr)
	}
	if cu.r.tooBig(fr) {
		cu.r.cfg.Delivered(0, 0, 1)
		cu.cursor, cu.sent = seq, true
		return nil
	}
	if !cu.js.m.Enqueue(fr, cu.r.cfg.Clock()) {
		cu.r.cfg.Delivered(0, 0, 1)
		return errConnGone
	}
	cu.cursor, cu.sent = seq, true
	cu.r.cfg.Delivered(1, len(fr), 0)
	return nil
}

// waitRoom paces the catch-up to the client: history is sent only while
// the write queue is at most half full, so a big backlog never makes a
// client that keeps reading a slow consumer.
func (cu *catchup) waitRoom() error {
	d := time.Millisecond
	released := false
	since := time.Now()
	for {
		n, open := cu.js.m.Queued()
		if !open {
			return errConnGone
		}
		if n <= cu.r.cfg.WriteBuffer/2 {
			if released {
				return cu.acquire()
			}
			return nil
		}
		if cu.slot {
			// A client that does not read must not hold a node-wide slot
			// while it waits: others' catch-ups take it meanwhile.
			<-cu.r.catchups
			cu.slot, released = false, true
		}
		if cu.it != nil && time.Since(since) > pauseAfter {
			// Nor a consumer: its prefetched messages, heartbeats and
			// resets would load JetStream for nothing. open starts a
			// new one after the cursor once there is room.
			cu.pause()
		}
		t := time.NewTimer(d)
		select {
		case <-cu.js.ctx.Done():
			t.Stop()
			return cu.js.ctx.Err()
		case <-t.C:
		}
		d = min(2*d, 50*time.Millisecond)
	}
}

// acquire takes the member's own catch-up slot, if its client limits
// them (Limited), then a node-wide one; it waits for both until the
// subscription ends. The member's slot is kept until close: it bounds how
// many catch-ups one client runs, waiting or not.
func (cu *catchup) acquire() error {
	ctx := cu.js.ctx
	if !cu.ownSlot {
		if l, ok := cu.js.m.(Limited); ok {
			if slots := l.CatchupSlots(); slots != nil {
				select {
				case slots <- struct{}{}:
					cu.own, cu.ownSlot = slots, true
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	if !cu.slot {
		select {
		case cu.r.catchups <- struct{}{}:
			cu.slot = true
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (cu *catchup) backoff() error {
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-cu.js.ctx.Done():
		return cu.js.ctx.Err()
	case <-t.C:
		return nil
	}
}

// close stops and deletes the consumer, if any, and frees the slot.
func (cu *catchup) close() {
	cu.pause()
	if cu.ownSlot {
		<-cu.own
		cu.own, cu.ownSlot = nil, false
	}
}

// pause stops and deletes the consumer, if any, and frees the node-wide
// slot; the client's own slot is kept. open resumes after the cursor.
func (cu *catchup) pause() {
	if cu.unhook != nil {
		cu.unhook()
		cu.unhook = nil
	}
	if cu.it != nil {
		cu.it.Stop()
		cu.it = nil
	}
	if cu.cons != nil {
		if info := cu.cons.CachedInfo(); info != nil {
			cu.r.deleteConsumer(cu.stream, info.Name)
		}
		cu.cons = nil
	}
	cu.held = nil
	if cu.slot {
		<-cu.r.catchups
		cu.slot = false
	}
}

func msgSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}
