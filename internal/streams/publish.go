package streams

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Acker is the client end of acked publishes (pub with "ack"): it hears
// each one's outcome once, from nats.go's goroutines, and must not block.
type Acker interface {
	// Acked says the message was stored at seq in stream; duplicate, that
	// the stream had it already (same Nats-Msg-Id).
	Acked(ref, stream string, seq uint64, duplicate bool)
	// AckFailed says it was not, or that the outcome is unknown (a
	// timeout: the PubAck may have been lost).
	AckFailed(ref string, err error)
}

// Publisher tracks acked publishes from their send to their PubAck, per
// client, and knows which subjects a stream captures. It is safe for
// concurrent use.
type Publisher struct {
	js      jetstream.JetStream
	timeout time.Duration

	mu      sync.Mutex
	pubs    map[*nats.Msg]pending
	byOwner map[Acker][]*nats.Msg

	cmu     sync.Mutex
	cache   map[string]captureEntry // subject → does a stream capture it
	lookups chan lookup
}

type pending struct {
	owner Acker
	ref   string
}

type captureEntry struct {
	ok bool
	at time.Time
}

type lookup struct {
	subject string
	done    func(captured bool, err error)
}

// An acked publish first learns whether a stream captures its subject: a
// core subscriber on it would otherwise take the message and leave the
// PubAck to time out, where the client must hear no_stream. The answer
// is cached per subject, so it costs one JetStream API request per
// subject and period.
const (
	capturedFor    = 30 * time.Second // a stream captures the subject
	notCapturedFor = time.Second      // none does: streams may be added
	maxCaptures    = 1 << 14          // cached subjects; the cache restarts beyond
	lookupQueue    = 1024
	// maxPendingPubs bounds acked publishes awaiting their PubAck in
	// nats.go, node-wide.
	maxPendingPubs = 1 << 16
)

// NewPublisher opens the JetStream API on nc, with timeout for its
// requests and PubAcks, answering acked publishes through their Ackers.
// The JetStream it returns serves Streams too; opts add to its options.
func NewPublisher(nc *nats.Conn, timeout time.Duration, opts ...jetstream.JetStreamOpt) (*Publisher, jetstream.JetStream, error) {
	p := &Publisher{
		timeout: timeout,
		pubs:    make(map[*nats.Msg]pending),
		byOwner: make(map[Acker][]*nats.Msg),
		cache:   make(map[string]captureEntry),
		lookups: make(chan lookup, lookupQueue),
	}
	js, err := jetstream.New(nc, append([]jetstream.JetStreamOpt{
		jetstream.WithDefaultTimeout(timeout),
		jetstream.WithPublishAsyncTimeout(timeout),
		jetstream.WithPublishAsyncMaxPending(maxPendingPubs),
		jetstream.WithPublishAsyncAckHandler(p.acked),
		jetstream.WithPublishAsyncErrHandler(p.failed),
	}, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	p.js = js
	return p, js, nil
}

// Track records an acked publish of owner, answered later with ref,
// unless owner already has max in flight.
func (p *Publisher) Track(owner Acker, ref string, m *nats.Msg, max int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.byOwner[owner]) >= max {
		return false
	}
	p.pubs[m] = pending{owner: owner, ref: ref}
	p.byOwner[owner] = append(p.byOwner[owner], m)
	return true
}

// Take removes the acked publish m, if it is still pending, and returns
// whom to answer.
func (p *Publisher) Take(m *nats.Msg) (owner Acker, ref string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp, ok := p.pubs[m]
	if !ok {
		return nil, "", false
	}
	delete(p.pubs, m)
	ms := p.byOwner[pp.owner]
	for i, x := range ms {
		if x == m {
			ms = append(ms[:i], ms[i+1:]...)
			break
		}
	}
	if len(ms) == 0 {
		delete(p.byOwner, pp.owner)
	} else {
		p.byOwner[pp.owner] = ms
	}
	return pp.owner, pp.ref, true
}

// Drop forgets owner's acked publishes in flight: the client is gone.
// Their PubAcks, when they come, find nothing to answer.
func (p *Publisher) Drop(owner Acker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.byOwner[owner] {
		delete(p.pubs, m)
	}
	delete(p.byOwner, owner)
}

// Inflight is the number of acked publishes waiting for their PubAck.
func (p *Publisher) Inflight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pubs)
}

// Publish sends a tracked message. It takes nats.go's connection lock:
// callers keep it off paths other clients wait on. At maxPendingPubs it
// fails rather than blocks.
func (p *Publisher) Publish(m *nats.Msg) error {
	_, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Microsecond))
	return err
}

func (p *Publisher) acked(_ jetstream.JetStream, m *nats.Msg, pa *jetstream.PubAck) {
	if owner, ref, ok := p.Take(m); ok {
		owner.Acked(ref, pa.Stream, pa.Sequence, pa.Duplicate)
	}
}

func (p *Publisher) failed(_ jetstream.JetStream, m *nats.Msg, err error) {
	if owner, ref, ok := p.Take(m); ok {
		owner.AckFailed(ref, err)
	}
}

// Captured reports whether a fresh cache entry says a stream captures
// subject. It never blocks on NATS.
func (p *Publisher) Captured(subject string) bool {
	p.cmu.Lock()
	e, ok := p.cache[subject]
	p.cmu.Unlock()
	return ok && e.ok && time.Since(e.at) < capturedFor
}

// Lookup queues a question for Run: does a stream capture subject? done
// gets the answer on Run's goroutine. It reports false, and asks nothing,
// when too many questions wait.
func (p *Publisher) Lookup(subject string, done func(captured bool, err error)) bool {
	select {
	case p.lookups <- lookup{subject, done}:
		return true
	default:
		return false
	}
}

// Run answers lookups until stop is closed; its owner runs it on a
// goroutine of its own and waits for it.
func (p *Publisher) Run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case l := <-p.lookups:
			ok, err := p.capture(l.subject)
			l.done(ok, err)
		}
	}
}

// capture asks JetStream whether a stream captures subject, through the
// cache.
func (p *Publisher) capture(subject string) (bool, error) {
	p.cmu.Lock()
	e, ok := p.cache[subject]
	p.cmu.Unlock()
	if ok && (e.ok && time.Since(e.at) < capturedFor || !e.ok && time.Since(e.at) < notCapturedFor) {
		return e.ok, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
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
	if len(p.cache) >= maxCaptures {
		clear(p.cache)
	}
	p.cache[subject] = captureEntry{ok: found, at: time.Now()}
	p.cmu.Unlock()
	return found, nil
}
