package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// feed is the node's live tail of one stream for one subject pattern: a
// single ordered consumer whose messages go to every live member, encoded
// once whatever their sids. Members still catching up get them buffered
// instead.
type feed struct {
	r       *Streams
	subject string
	refs    int           // guarded by r.mu
	ready   chan struct{} // closed when started (or failed, err set)
	err     error
	stream  string
	ccMu    sync.Mutex // guards cons and cc once started (relink swaps them)
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext

	mu      sync.Mutex
	last    uint64 // every match up to last has reached the members
	members []*Sub // live
	stopped bool
	win     window     // the most recent messages, for resumes
	newest  uint64     // the stream's last sequence when the feed started
	cus     []*catchup // catch-ups of members below the window

	// lastSeen (under mu): last is a message the feed received for
	// clients, not the stream's position when the feed started nor a
	// reserved subject.
	lastSeen bool

	// Used only by the consumer's delivery goroutine (under mu): the
	// message's frames, its envelope encoded and compressed once.
	frames wsframe.Fanout
}

// acquire returns the running feed for subject, starting it if needed,
// with a reference the caller gives back with release.
func (r *Streams) acquire(ctx context.Context, subject string) (*feed, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nats.ErrConnectionClosed
	}
	if f := r.feeds[subject]; f != nil {
		f.refs++
		r.mu.Unlock()
		select {
		case <-f.ready:
		case <-ctx.Done():
			r.release(f)
			return nil, ctx.Err()
		}
		if f.err != nil {
			r.release(f)
			return nil, f.err
		}
		return f, nil
	}
	f := &feed{r: r, subject: subject, refs: 1, ready: make(chan struct{}),
		win: window{maxN: r.cfg.Window, maxBytes: r.cfg.WindowBytes}}
	r.feeds[subject] = f
	r.mu.Unlock()

	err := f.start()
	if err != nil {
		f.err = err
		r.mu.Lock()
		if r.feeds[subject] == f {
			delete(r.feeds, subject)
		}
		f.refs--
		r.mu.Unlock()
	}
	close(f.ready)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Feeds is the number of feeds, running or starting.
func (r *Streams) Feeds() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.feeds)
}

// release gives back a reference; the last one stops the feed. It never
// blocks, so the worker may call it.
func (r *Streams) release(f *feed) {
	r.mu.Lock()
	f.refs--
	if f.refs > 0 || r.feeds[f.subject] != f || r.closed {
		// Still used, already failed, or shutdown stops it.
		r.mu.Unlock()
		return
	}
	delete(r.feeds, f.subject)
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		f.stop()
	}()
}

// start finds the stream and starts an ordered consumer that reads the
// stream's tail into the window, as much of it as the window holds, and
// goes on with whatever is stored later.
func (f *feed) start() error {
	r := f.r
	select {
	case r.starts <- struct{}{}:
		defer func() { <-r.starts }()
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	st, err := r.streamFor(ctx, f.subject)
	if err != nil {
		return err
	}
	info := st.CachedInfo()
	f.stream = info.Config.Name
	f.newest = info.State.LastSeq
	f.last = tailStart(info.State, f.win.maxN, f.win.maxBytes) - 1
	f.win.from = f.last
	// The create is not canceled by shutdown: one cut short may still
	// happen on the server, and then nobody would delete it.
	cctx, ccancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
	defer ccancel()
	cons, err := st.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{f.subject},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       f.last + 1,
		InactiveThreshold: consumerIdle,
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.lookups.forget(f.stream)
		}
		return err
	}
	// A 1s heartbeat (nats.go's default is 5s) notices a consumer lost
	// with its NATS node within ~2s, not ~10s, and recreates it.
	cc, err := cons.Consume(f.deliver, jetstream.PullHeartbeat(feedHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		r.log.Debug("stream feed", "stream", f.stream, "subject", f.subject, "err", err)
	}))
	if err != nil {
		r.deleteConsumer(f.stream, cons.CachedInfo().Name)
		return err
	}
	f.cons, f.cc = cons, cc
	return nil
}

// feedHeartbeat is the idle heartbeat of feed and catch-up consumers.
const feedHeartbeat = time.Second

// tailStart is the first sequence of the tail a new feed reads into a
// window of n messages and maxBytes bytes: the stream's average message
// size estimates how many fit, so a stream of large messages is not read
// further back than the window keeps.
func tailStart(st jetstream.StreamState, n, maxBytes int) uint64 {
	if n <= 0 || st.Msgs == 0 {
		return st.LastSeq + 1
	}
	if maxBytes > 0 && st.Bytes > 0 {
		avg := max(st.Bytes/st.Msgs, 1)
		n = min(n, int(min(uint64(maxBytes)/avg, uint64(n))))
	}
	if uint64(n) >= st.LastSeq {
		return max(st.FirstSeq, 1)
	}
	return max(st.FirstSeq, st.LastSeq-uint64(n)+1)
}

// stop ends the feed and deletes its consumer.
func (f *feed) stop() {
	f.mu.Lock()
	f.stopped = true
	for _, js := range f.members {
		js.idx = -1
	}
	f.members = nil
	for len(f.cus) > 0 {
		f.cus[0].end() // removes itself
	}
	f.mu.Unlock()
	f.ccMu.Lock() // a relink in progress finishes first, or sees stopped
	defer f.ccMu.Unlock()
	f.cc.Stop()
	if info := f.cons.CachedInfo(); info != nil {
		f.r.deleteConsumer(f.stream, info.Name)
	}
}

// streamFor finds the stream whose subjects cover pattern: the stream
// names API answers with streams that overlap it, so the first answer is
// checked and, if it only overlaps, the others.
func (r *Streams) streamFor(ctx context.Context, pattern string) (jetstream.Stream, error) {
	if name, ok := r.lookups.get(pattern); ok {
		st, err := r.js.Stream(ctx, name)
		if err == nil && streamCovers(st.CachedInfo().Config, pattern) {
			return st, nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, err
		}
		r.lookups.forget(name) // deleted or changed: ask again
	}
	st, err := r.lookupStream(ctx, pattern)
	if err != nil {
		return nil, err
	}
	r.lookups.put(pattern, st.CachedInfo().Config.Name)
	return st, nil
}

// lookupStream asks JetStream which stream covers pattern.
func (r *Streams) lookupStream(ctx context.Context, pattern string) (jetstream.Stream, error) {
	name, err := r.js.StreamNameBySubject(ctx, pattern)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w: %v", jetstream.ErrJetStreamNotEnabled, err)
	}
	if err != nil {
		return nil, err
	}
	st, err := r.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	if streamCovers(st.CachedInfo().Config, pattern) {
		return st, nil
	}
	names := r.js.StreamNames(ctx, jetstream.WithStreamListSubject(pattern))
	for n := range names.Name() {
		if n == name {
			continue
		}
		st, err := r.js.Stream(ctx, n)
		if err == nil && streamCovers(st.CachedInfo().Config, pattern) {
			return st, nil
		}
	}
	return nil, fmt.Errorf("%w: no stream covers %q", jetstream.ErrStreamNotFound, pattern)
}

func streamCovers(cfg jetstream.StreamConfig, pattern string) bool {
	subjects := cfg.Subjects
	if len(subjects) == 0 {
		subjects = []string{cfg.Name}
	}
	for _, s := range subjects {
		if subjectCovers(s, pattern) {
			return true
		}
	}
	return false
}

// subjectCovers reports whether every subject that pattern matches is
// also matched by filter.
func subjectCovers(filter, pattern string) bool {
	ft, pt := strings.Split(filter, "."), strings.Split(pattern, ".")
	for i, f := range ft {
		if f == ">" {
			return len(pt) > i
		}
		if i >= len(pt) {
			return false
		}
		switch p := pt[i]; {
		case p == ">":
			return false
		case f == "*":
		case p != f:
			return false
		}
	}
	return len(ft) == len(pt)
}

// add attaches a member; f.mu must be held.
func (f *feed) add(js *Sub) {
	js.idx = len(f.members)
	f.members = append(f.members, js)
}

// remove detaches a member, live or catching up, if it is still
// attached.
func (f *feed) remove(js *Sub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	js.gone = true
	if js.cu != nil {
		js.cu.leave(js)
	}
	if js.idx < 0 {
		return
	}
	last := len(f.members) - 1
	if js.idx < last {
		moved := f.members[last]
		f.members[js.idx], moved.idx = moved, js.idx
	}
	f.members[last] = nil
	f.members = f.members[:last]
	js.idx = -1
}

// deliver is the consumer's handler: it keeps the message in the window
// and queues it on live members. It never blocks.
func (f *feed) deliver(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || seq <= f.last {
		return // the ordered consumer resumes after a reset at last+1; be sure
	}
	f.last = seq
	f.lastSeen = !wire.Reserved(m.Subject())
	f.win.add(seq, m)
	if len(f.members) == 0 {
		return
	}
	subject := m.Subject()
	if wire.Reserved(subject) {
		return // a stream may capture $ or _INBOX. subjects: never to clients
	}
	f.frames.SetTail(wire.AppendMsgTail(f.frames.Tail(ws.OpText), subject, m.Data(), m.Headers(), "", seq))
	defer f.frames.Reset()
	now := f.r.cfg.Clock()
	var out fanout
	for _, js := range f.members {
		if seq <= js.last {
			continue // the client asked to start after it
		}
		fr := f.frames.Frame(js.pre, js.m.Compress(len(m.Data())))
		if f.r.tooBig(fr) {
			out.dropped++
			continue
		}
		js.last = seq
		out.add(js.m.Enqueue(fr, now), fr)
	}
	f.r.cfg.Delivered(out.n, out.bytes, out.dropped)
}

// fanout is one message's outcome across a feed's members, so that
// Config.Delivered runs once per message.
type fanout struct{ n, bytes, dropped int }

func (f *fanout) add(ok bool, frame []byte) {
	if ok {
		f.n++
		f.bytes += len(frame)
	} else {
		f.dropped++
	}
}
