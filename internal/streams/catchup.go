package streams

import (
	"context"
	"errors"
	"slices"
	"time"

	"wsbridge/internal/wire"

	"github.com/nats-io/nats.go/jetstream"
)

// errConnGone stops a subscription whose connection stopped taking frames.
var errConnGone = errors.New("streams: connection closed")

const (
	// catchIdle is how long a catch-up waits for a message before it asks
	// the server whether anything is left.
	catchIdle = 2 * time.Second
	// catchupGather is how long a new catch-up waits for more members
	// before it fixes its start: in a reconnect storm the subscriptions
	// that are behind arrive within milliseconds of each other and share
	// one consumer.
	catchupGather = 20 * time.Millisecond
)

// run sets up one JetStream subscription: attach to the feed (from then on
// nothing stored later is missed), ok, catch up from the window or, below
// it, from JetStream, then go live on the feed. It owns the subscription
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
	if err := r.follow(js, f); err != nil {
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

// attach makes js a subscriber of f and places its cursor.
func (js *Sub) attach(f *feed) bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.released {
		return false
	}
	js.feed = f
	f.mu.Lock()
	defer f.mu.Unlock()
	js.resolved = true
	switch js.from.Kind {
	case wire.FromNew:
		js.cursor = max(f.last, f.newest)
	case wire.FromAfter:
		js.cursor = js.from.After
	case wire.FromAll:
		js.cursor = 0
	case wire.FromLast:
		if s := f.win.lastSeq(); s > 0 {
			js.cursor = s - 1
		} else {
			js.resolved = false // the last match is older than the window
		}
	case wire.FromTime:
		js.resolved = false
	}
	if !js.resolved || js.cursor < max(f.last, f.newest) {
		js.r.replays.Add(1) // history, in the window (maybe still being read) or below
	}
	return true
}

// follow catches js up, from the window when it covers js's cursor, else
// through a catch-up shared with the feed's other members below it, and
// makes it live. Each turn sends at most half a write buffer, so a client
// with a long history waits for its own reads, not others' behind it.
func (r *Streams) follow(js *Sub, f *feed) error {
	var own chan struct{} // the client's catch-up slot, once taken
	defer func() {
		if own != nil {
			<-own
		}
	}()
	for turn := 0; ; turn++ {
		below := f.below(js)
		if own == nil && js.slots != nil && below {
			// Below the window: the client's own slot first, so that one
			// client's subscriptions cannot fill the node's catch-ups. It
			// is kept until the sub is live, waiting for room included.
			select {
			case js.slots <- struct{}{}:
				own = js.slots
			case <-js.ctx.Done():
				return js.ctx.Err()
			}
		}
		// The first catch-up is joined at once, so that JetStream places a
		// "last" or "time" start near the attach; it paces the member by
		// Queued itself, and a member it hands back waits for room here.
		if turn > 0 || !below {
			if err := js.waitRoom(); err != nil {
				f.leave(js)
				return err
			}
		}
		var cu *catchup
		f.mu.Lock()
		switch {
		case js.gone || f.stopped:
			f.mu.Unlock()
			return errConnGone
		case js.cuErr != nil:
			err := js.cuErr
			f.mu.Unlock()
			return err
		case js.cu != nil:
			// Still served by its catch-up.
		case js.resolved && f.win.covers(js.cursor):
			done := f.serve(js)
			gone := js.gone
			f.mu.Unlock()
			if !done {
				continue
			}
			if gone {
				return errConnGone
			}
			r.resumed(js)
			return nil
		case own == nil && js.slots != nil:
			f.mu.Unlock() // fell below the window meanwhile: take the slot
			continue
		default:
			cu = f.join(js)
		}
		f.mu.Unlock()
		if cu != nil {
			r.spawn(cu.run) // fails only at shutdown, which ends js too
		}
		select {
		case <-js.wake:
		case <-js.ctx.Done():
			f.leave(js)
			return js.ctx.Err()
		}
	}
}

// below reports whether js needs a catch-up: its cursor is below the
// window or not placed yet.
func (f *feed) below(js *Sub) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !js.resolved || !f.win.covers(js.cursor)
}

// leave takes js out of its catch-up, if any.
func (f *feed) leave(js *Sub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if js.cu != nil {
		js.cu.leave(js)
	}
}

// resumed counts a subscription with "from" that went live.
func (r *Streams) resumed(js *Sub) {
	if js.from.Kind == wire.FromNew {
		return
	}
	if js.readJS {
		r.fromJS.Add(1)
	} else {
		r.fromWin.Add(1)
	}
	r.cfg.Resumed(time.Since(js.begun), js.readJS)
}

// waitRoom paces a catch-up to the client: history is sent only while
// the write queue is at most half full, so a big backlog never makes a
// client that keeps reading a slow consumer.
func (js *Sub) waitRoom() error {
	d := time.Millisecond
	for {
		n, open := js.m.Queued()
		if !open {
			return errConnGone
		}
		if n <= js.r.cfg.WriteBuffer/2 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-js.ctx.Done():
			t.Stop()
			return js.ctx.Err()
		case <-t.C:
		}
		d = min(2*d, 50*time.Millisecond)
	}
}

// join puts js, below the window, into a catch-up of f that will read
// what it lacks, or a new one, which it returns for the caller to start.
// f.mu is held.
func (f *feed) join(js *Sub) *catchup {
	js.readJS = true
	if js.resolved {
		for _, cu := range f.cus {
			if cu.accepts(js.cursor) {
				cu.add(js)
				return nil
			}
		}
	}
	cu := &catchup{f: f, r: f.r, shared: js.resolved, from: js.from, start: js.cursor + 1}
	cu.ctx, cu.cancel = context.WithCancel(f.r.ctx)
	f.cus = append(f.cus, cu)
	cu.add(js)
	return cu
}

// catchup is one ordered consumer reading a feed's history for the
// members below its window, from the lowest start, until each reaches
// the window. Its fields under "guarded" are guarded by f.mu; the rest
// belong to its goroutine.
type catchup struct {
	f      *feed
	r      *Streams
	shared bool      // started by sequence: others may join
	from   wire.From // the first member's, for a private one
	ctx    context.Context
	cancel context.CancelFunc

	// Guarded by f.mu.
	members []*Sub
	start   uint64 // the first sequence it asks for
	fixed   bool   // start is fixed: the consumer is being created
	pos     uint64 // every match up to pos has been offered
	target  uint64 // the feed's position when the consumer was created
	done    bool
	// targetSeen: the feed had received target itself (feed.lastSeen),
	// so the stream holds it; shorts counts the ends short refused.
	targetSeen bool
	shorts     int

	cons    jetstream.Consumer
	stream  string
	it      jetstream.MessagesContext
	unhook  func() bool
	slot    bool
	fresh   bool // cons was just created: its info is current
	gotFrom string
	got     uint64 // delivery sequence of the last message from gotFrom
	body    []byte
	frame   []byte
}

// accepts reports whether a member at cursor can join: it is not started
// yet, or it has not read past cursor.
func (cu *catchup) accepts(cursor uint64) bool {
	if !cu.shared || cu.done {
		return false
	}
	if !cu.fixed {
		cu.start = min(cu.start, cursor+1)
		return true
	}
	return cursor >= cu.pos
}

func (cu *catchup) add(js *Sub) {
	js.cu = cu
	cu.members = append(cu.members, js)
}

// leave removes js and hands it back to its goroutine; the last member
// out ends the catch-up. f.mu is held.
func (cu *catchup) leave(js *Sub) {
	if i := slices.Index(cu.members, js); i >= 0 {
		cu.drop(i)
	}
	if len(cu.members) == 0 {
		cu.end()
	}
}

// drop hands member i back to its goroutine. f.mu is held.
func (cu *catchup) drop(i int) {
	js := cu.members[i]
	last := len(cu.members) - 1
	cu.members[i] = cu.members[last]
	cu.members[last] = nil
	cu.members = cu.members[:last]
	js.cu = nil
	select {
	case js.wake <- struct{}{}:
	default:
	}
}

// end stops the catch-up, handing back any members. f.mu is held.
func (cu *catchup) end() {
	if cu.done {
		return
	}
	cu.done = true
	cu.cancel()
	for len(cu.members) > 0 {
		cu.drop(len(cu.members) - 1)
	}
	if i := slices.Index(cu.f.cus, cu); i >= 0 {
		cu.f.cus = slices.Delete(cu.f.cus, i, i+1)
	}
}

// run is the catch-up's goroutine: gather members, take a consumer slot,
// read until every member has reached the window.
func (cu *catchup) run() {
	defer cu.close()
	if cu.shared && !cu.pause(catchupGather) {
		return
	}
	select {
	case cu.r.catchups <- struct{}{}:
		cu.slot = true
	case <-cu.ctx.Done():
		return
	}
	for cu.ctx.Err() == nil {
		if err := cu.open(); err != nil {
			cu.fail(err)
			return
		}
		for {
			m, err := cu.next()
			if err != nil {
				if cu.ctx.Err() != nil {
					return
				}
				cu.r.log.Debug("catch-up consumer failed; recreating", "subject", cu.f.subject, "err", err)
				cu.stop()
				if !cu.pause(250 * time.Millisecond) {
					return
				}
				break
			}
			if cu.offer(m) {
				return
			}
		}
	}
}

// open creates the consumer from the lowest member's cursor (or by the
// first member's policy until its start is known). It retries until the
// catch-up ends; only a missing stream is final.
func (cu *catchup) open() error {
	f, r := cu.f, cu.r
	f.mu.Lock()
	if cu.done {
		f.mu.Unlock()
		return cu.ctx.Err()
	}
	cu.fixed = true
	resolved := true
	start := cu.start
	for i, js := range cu.members {
		resolved = resolved && js.resolved
		if i == 0 || js.cursor+1 < start {
			start = js.cursor + 1
		}
	}
	cu.start, cu.pos, cu.target, cu.targetSeen = start, start-1, f.last, f.lastSeen
	f.mu.Unlock()

	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{f.subject},
		InactiveThreshold: consumerIdle,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
	}
	if !resolved {
		switch cu.from.Kind {
		case wire.FromLast:
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverLastPolicy, 0
		case wire.FromTime:
			t := cu.from.Time
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, 0, &t
		}
	}
	for {
		// Not canceled with cu.ctx: a create cut short may still happen
		// on the server, and then nobody would delete it.
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
		cons, err := r.js.OrderedConsumer(ctx, f.stream, cfg)
		cancel()
		if err == nil {
			r.created.Add(1)
			cu.cons, cu.stream, cu.fresh = cons, f.stream, true
			if err := cu.ctx.Err(); err != nil {
				return err // close deletes it
			}
			break
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.lookups.forget(f.stream)
			return err
		}
		r.log.Debug("catch-up consumer", "subject", f.subject, "err", err)
		if !cu.pause(250 * time.Millisecond) {
			return cu.ctx.Err()
		}
	}
	it, err := cu.cons.Messages(jetstream.PullMaxMessages(catchupPrefetch), jetstream.PullHeartbeat(feedHeartbeat))
	if err != nil {
		cu.stop()
		return err
	}
	cu.it = it
	// A reset inside the iterator can wait on backoff: Stop ends it.
	cu.unhook = context.AfterFunc(cu.ctx, it.Stop)
	return nil
}

// fail ends the catch-up for good, telling its members why.
func (cu *catchup) fail(err error) {
	f := cu.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if cu.ctx.Err() == nil {
		for _, js := range cu.members {
			js.cuErr = err
		}
	}
	cu.end()
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
		ctx, cancel := context.WithTimeout(cu.ctx, catchIdle)
		m, err := cu.it.Next(jetstream.NextContext(ctx))
		cancel()
		if err == nil {
			if md, err := m.Metadata(); err == nil {
				cu.gotFrom, cu.got = md.Consumer, md.Sequence.Consumer
			}
			return m, nil
		}
		if cu.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		// Quiet for a while: the stream may have lost what the consumer
		// counted (a purge), so ask. Done only if nothing is pending and
		// everything it delivered has reached us (none in transit).
		ictx, icancel := context.WithTimeout(cu.ctx, cu.r.cfg.RequestTimeout)
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

// offer sends message m (nil: the consumer has nothing left) to the
// members that lack it, and hands back those that reached the window,
// whose queue is over half full (they come back when it drains) or that
// stopped taking frames. It reports whether the catch-up is over.
func (cu *catchup) offer(m jetstream.Msg) bool {
	var (
		seq  uint64
		end  = m == nil
		size int
	)
	if m != nil {
		md, err := m.Metadata()
		if err != nil {
			return false
		}
		seq, end = md.Sequence.Stream, md.NumPending == 0
		size = len(m.Data())
		cu.body = wire.AppendBody(cu.body[:0], m.Data(), m.Headers(), "")
	}
	f := cu.f
	limit := f.r.cfg.WriteBuffer / 2
	now := f.r.cfg.Clock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if cu.done {
		return true
	}
	if m != nil && seq > cu.pos {
		cu.pos = seq
	}
	if end && cu.short() {
		end = false
	}
	for i := 0; i < len(cu.members); {
		js := cu.members[i]
		if m != nil && !js.resolved {
			js.resolved, js.cursor = true, seq-1 // its policy's first match
		}
		if m != nil && seq > js.cursor && wire.Reserved(m.Subject()) {
			js.cursor = seq // a stream may capture $ or _INBOX. subjects: never to clients
		}
		if m != nil && seq > js.cursor {
			n, open := js.m.Queued()
			if !open || n > limit {
				js.gone = !open
				cu.drop(i)
				continue
			}
			cu.frame = appendFrame(cu.frame[:0], js, m.Subject(), cu.body, seq, size)
			switch {
			case f.r.tooBig(cu.frame):
				f.r.cfg.Delivered(0, 0, 1)
			case !js.m.Enqueue(cu.frame, now):
				f.r.cfg.Delivered(0, 0, 1)
				js.gone = true
				cu.drop(i)
				continue
			default:
				f.r.cfg.Delivered(1, len(cu.frame), 0)
			}
			js.cursor = seq
		}
		if end {
			// Nothing more matched when this was sent, and the stream's end
			// was then at or past target.
			js.resolved, js.cursor = true, max(js.cursor, cu.target)
		}
		if js.resolved && f.win.covers(js.cursor) {
			cu.drop(i)
			continue
		}
		i++
	}
	if len(cu.members) == 0 {
		cu.end()
		return true
	}
	return false
}

// maxShort bounds how many times a catch-up refuses to end; see short.
const maxShort = 3

// short reports whether the consumer's "nothing pending" must not be
// believed yet: the feed has received target, so the stream holds a match
// past pos, but a consumer on a replica that has not applied it counts
// nothing pending (measured on an R3 stream: 8 of 300 consumers created
// right after an acked publish), and ending would skip the members to
// target. The catch-up reads on instead, a few idle periods at most: a
// purge may really have removed it. f.mu is held.
func (cu *catchup) short() bool {
	if !cu.targetSeen || cu.pos >= cu.target || cu.shorts >= maxShort {
		return false
	}
	cu.shorts++
	cu.r.log.Debug("catch-up consumer behind the feed; waiting", "subject", cu.f.subject, "pos", cu.pos, "target", cu.target)
	return true
}

// pause waits d unless the catch-up ends first; it reports whether it
// did not.
func (cu *catchup) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-cu.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stop stops and deletes the consumer, if any.
func (cu *catchup) stop() {
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
}

// close ends the catch-up, deletes its consumer and frees its slot.
func (cu *catchup) close() {
	cu.f.mu.Lock()
	cu.end()
	cu.f.mu.Unlock()
	cu.stop()
	if cu.slot {
		<-cu.r.catchups
		cu.slot = false
	}
}
