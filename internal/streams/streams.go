// Package streams delivers JetStream subscriptions to clients. The node
// has one ordered consumer per (stream, subject) (a feed), which fans each
// message out to its live members with no goroutine per member and keeps
// its most recent messages in a bounded resume window. A sub with "from"
// inside the window is served from memory; one from below it joins a
// catch-up shared by the feed's members that are behind (one ordered
// consumer from the lowest start) until it reaches the window. Either way
// it switches to live at a sequence boundary under the feed's lock: no
// gap, no duplicate.
//
// It owns the feeds, their windows, the catch-ups and their consumers, and
// a cache of which stream covers a subject. It knows the wire envelopes it
// builds (internal/wire) and nothing of sockets: each subscription's
// client is a Member, which takes frames without blocking.
//
// Lock order: Sub.mu → feed.mu → whatever a Member takes inside its
// methods (the bridge's connection lock). A catch-up's state and its
// members' positions are guarded by its feed's mu. Member methods never
// call back into this package. Every exported method is safe for
// concurrent use.
package streams

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/wire"
)

// Member is the client end of one JetStream subscription. Its methods are
// called from this package's goroutines and from the NATS delivery
// goroutine, with feed locks held: they must not block or call back.
type Member interface {
	// SID is the subscription id the client chose.
	SID() string
	// Enqueue appends complete frames to the client's write queue and
	// wakes its writer. at is Config.Clock's reading when the message was
	// taken from NATS, 0 when untimed. It reports false once the client
	// no longer takes frames (closed, or cut as a slow consumer).
	Enqueue(frames []byte, at int64) bool
	// Queued reports the bytes waiting in the client's write queue and
	// whether it still takes frames.
	Queued() (n int, open bool)
	// Compress reports whether a message of n bytes goes out compressed.
	Compress(n int) bool
	// Attached says the subscription is attached to its feed: nothing
	// stored from now on will be missed, so the sub can be answered ok.
	Attached()
	// Fail says the subscription failed for good (no stream covers the
	// subject, …): it delivers nothing more.
	Fail(err error)
}

// Limited is a Member whose client bounds its catch-ups: CatchupSlots
// returns a semaphore shared by the client's subscriptions (a buffered
// channel, one token per catch-up), so one client cannot hold every
// node-wide slot. A nil channel means no limit.
type Limited interface {
	CatchupSlots() chan struct{}
}

// Config configures Streams.
type Config struct {
	// JS is the JetStream API the feeds and catch-ups use.
	JS jetstream.JetStream
	// RequestTimeout bounds each JetStream API request.
	RequestTimeout time.Duration
	// WriteBuffer is the members' write queue limit in bytes: catch-ups
	// send history only while a member's queue is at most half full, and a
	// member catching up buffers at most half of it from the feed.
	WriteBuffer int
	// MaxFrame is the largest frame sent to a member (hello's
	// max_frame); a message whose frame is larger is dropped, counted by
	// Delivered. Zero means no limit.
	MaxFrame int
	// Logger receives debug lines about consumers; nil discards them.
	Logger *slog.Logger
	// Clock timestamps deliveries for Member.Enqueue; nil passes 0.
	Clock func() int64
	// Delivered counts the outcome of each fan-out: frames queued, their
	// bytes, and frames dropped because a member no longer took them. It
	// runs on delivery paths and must not block; nil ignores.
	Delivered func(n, bytes, dropped int)
	// Window is how many of its most recent messages each feed keeps to
	// serve resuming subscriptions from memory; zero keeps none (every
	// resume reads JetStream).
	Window int
	// WindowBytes bounds each feed's window in bytes (message bodies and
	// subjects); zero means no byte bound beyond Window.
	WindowBytes int
	// Resumed observes each subscription with "from" other than "new"
	// when it goes live: d from Subscribe, and whether it read JetStream
	// history (false: served from the window alone). It must not block;
	// nil ignores.
	Resumed func(d time.Duration, fromJetStream bool)
}

// Errors Subscribe returns.
var (
	ErrBusy   = errors.New("streams: too many stream subscriptions are starting")
	ErrClosed = errors.New("streams: shutting down")
)

const (
	// maxJSStarting bounds the subscriptions being set up or caught up at
	// once (each holds a goroutine until it is live).
	maxJSStarting = 16384
	// maxFeedStarts bounds concurrent feed creations (a few JetStream API
	// round trips each).
	maxFeedStarts = 64
	// maxCatchups bounds the catch-ups pulling history at once; more
	// wait for a slot. A catch-up waiting for room in its client's queue
	// gives its slot back at once and deletes its consumer after
	// pauseAfter, opening a new one after its cursor when room comes.
	maxCatchups = 256
	// catchupPrefetch is how many messages a catch-up consumer buffers in
	// the bridge.
	catchupPrefetch = 64
	// consumerIdle is the InactiveThreshold of every consumer the bridge
	// creates: the server removes them on its own if the bridge dies.
	// Ordered consumers recreate themselves if it fires while we are
	// merely cut off.
	consumerIdle = 30 * time.Second
)

// Streams is a node's JetStream delivery: its feeds and the goroutines
// that set up and catch up subscriptions.
type Streams struct {
	cfg    Config
	js     jetstream.JetStream
	log    *slog.Logger
	ctx    context.Context // canceled by shutdown
	cancel context.CancelFunc

	starting atomic.Int64
	starts   chan struct{} // semaphore: feed creations
	catchups chan struct{} // semaphore: catch-up consumers
	replays  atomic.Uint64 // subscriptions that had history to replay
	fromWin  atomic.Uint64 // resumes served from a window alone
	fromJS   atomic.Uint64 // resumes that read JetStream history
	created  atomic.Uint64 // catch-up consumers created
	lookups  lookupCache

	mu     sync.Mutex
	feeds  map[string]*feed // by subject pattern (one stream per pattern)
	closed bool
	wg     sync.WaitGroup // every goroutine started by spawn
}

// New returns Streams delivering through cfg.JS. Shutdown stops it.
func New(cfg Config) *Streams {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = func() int64 { return 0 }
	}
	if cfg.Delivered == nil {
		cfg.Delivered = func(int, int, int) {}
	}
	if cfg.Resumed == nil {
		cfg.Resumed = func(time.Duration, bool) {}
	}
	r := &Streams{
		cfg:      cfg,
		js:       cfg.JS,
		log:      cfg.Logger,
		starts:   make(chan struct{}, maxFeedStarts),
		catchups: make(chan struct{}, maxCatchups),
		feeds:    make(map[string]*feed),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.lookups.watch(r)
	return r
}

// Stats are counters since New.
type Stats struct {
	// Catchups is how many subscriptions had history to replay, from the
	// window or JetStream.
	Catchups uint64
	// ResumesFromWindow and ResumesFromJetStream split the subscriptions
	// with "from" (other than "new") that went live by whether they read
	// JetStream history.
	ResumesFromWindow, ResumesFromJetStream uint64
	// CatchupConsumers is how many catch-up consumers were created (each
	// serving one or more subscriptions).
	CatchupConsumers uint64
}

// Stats returns the counters.
func (r *Streams) Stats() Stats {
	return Stats{
		Catchups:             r.replays.Load(),
		ResumesFromWindow:    r.fromWin.Load(),
		ResumesFromJetStream: r.fromJS.Load(),
		CatchupConsumers:     r.created.Load(),
	}
}

// tooBig reports whether frame exceeds Config.MaxFrame.
func (r *Streams) tooBig(frame []byte) bool {
	return r.cfg.MaxFrame > 0 && len(frame) > r.cfg.MaxFrame
}

// spawn runs f on a goroutine that shutdown waits for. It fails once
// shutdown has begun.
func (r *Streams) spawn(f func()) bool {
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

// Shutdown cancels every setup and catch-up, waits for them (they delete
// their consumers) and stops every feed, deleting its consumer. Call it
// before draining the NATS connection, once the clients are gone; ctx
// bounds the wait. Subscribe fails afterwards.
func (r *Streams) Shutdown(ctx context.Context) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.lookups.stop()
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
func (r *Streams) deleteConsumer(stream, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, stream, name) // if this fails, consumerIdle removes it
}

// Sub is one JetStream subscription (sub with "from").
type Sub struct {
	r       *Streams
	m       Member
	sid     string // m.SID(), fixed
	pre     []byte // wire.AppendMsgPrefix of sid, fixed
	subject string
	from    wire.From
	ctx     context.Context // ends with the subscription
	cancel  context.CancelFunc
	slots   chan struct{} // the client's catch-up slots (Limited), or nil
	begun   time.Time     // when Subscribe was called
	wake    chan struct{} // its catch-up handed it back (cap 1)

	mu       sync.Mutex
	feed     *feed // set once attached
	released bool

	// Guarded by feed.mu.
	idx    int      // position in feed.members (live); -1 otherwise
	last   uint64   // the feed delivers only sequences above last
	cursor uint64   // catching up: every match up to cursor was sent
	cu     *catchup // the catch-up serving it, if any
	cuErr  error    // why its catch-up gave up for good
	gone   bool     // stopped taking frames or left the feed
	// resolved says cursor is known; false while a "last" or "time" start
	// waits for JetStream to place it.
	resolved bool
	readJS   bool   // it read JetStream history
	frames   []byte // scratch for frames built from the window
}

// Subscribe starts a JetStream subscription of m to subject (a valid
// pattern the caller has checked) from from. It returns at once; m hears
// Attached, then the history and the live tail, or Fail.
func (r *Streams) Subscribe(m Member, subject string, from wire.From) (*Sub, error) {
	if r.starting.Add(1) > maxJSStarting {
		r.starting.Add(-1)
		return nil, ErrBusy
	}
	ctx, cancel := context.WithCancel(r.ctx)
	js := &Sub{r: r, m: m, sid: m.SID(), pre: wire.AppendMsgPrefix(nil, m.SID()), subject: subject, from: from, ctx: ctx, cancel: cancel,
		begun: time.Now(), wake: make(chan struct{}, 1), idx: -1}
	if l, ok := m.(Limited); ok {
		js.slots = l.CatchupSlots()
	}
	if !r.spawn(func() { r.run(js) }) {
		cancel()
		r.starting.Add(-1)
		return nil, ErrClosed
	}
	return js, nil
}

// Unsubscribe ends the subscription. It never blocks: a catch-up in
// progress is canceled and cleans up after itself. It is idempotent.
func (js *Sub) Unsubscribe() {
	js.cancel()
	js.mu.Lock()
	js.released = true
	f := js.feed
	js.feed = nil
	js.mu.Unlock()
	if f != nil {
		f.remove(js)
		js.r.release(f)
	}
}
