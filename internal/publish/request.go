package publish

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/wire"
)

// requester multiplexes every client request of the node onto one
// wildcard inbox subscription, so a request costs no goroutine and no
// NATS subscription, and never blocks a worker while it waits.
type requester struct {
	prefix string // "_INBOX.<nuid>."
	ns     *nats.Subscription

	mu       sync.Mutex
	seq      uint64
	pending  map[string]*pendingReq
	byMember map[Member][]string // tokens in flight, in order
}

type pendingReq struct {
	mb    Member
	ref   string
	timer *time.Timer
}

// pendingMsgs and pendingBytes size nats.go's buffer for the request
// inbox subscription. Replies only copy into connection queues, so it
// drains fast; it is large so that a burst never makes the bridge itself
// a slow consumer.
const (
	pendingMsgs  = 1 << 20
	pendingBytes = 512 << 20
)

func (r *requester) init(nc *nats.Conn) error {
	// A prefix of our own: sharing nats.go's response-mux prefix would put
	// two subscriptions on its replies, and nats-server sends a
	// no-responders status to only one of them, so nats.go's own
	// requests (the JetStream API among them) would wait for their
	// timeout instead of failing at once.
	r.prefix = nats.NewInbox() + "."
	r.pending = make(map[string]*pendingReq)
	r.byMember = make(map[Member][]string)
	ns, err := nc.Subscribe(r.prefix+"*", r.reply)
	if err != nil {
		return err
	}
	_ = ns.SetPendingLimits(pendingMsgs, pendingBytes)
	r.ns = ns
	return nil
}

// Request publishes m with a reply subject of ours and answers ref to mb
// when a reply, a no-responders status or the timeout comes first. It
// returns the refusal (too many requests of mb in flight, or as Publish)
// and never blocks.
func (o *Outbox) Request(mb Member, ref string, m *nats.Msg, timeout time.Duration) *wire.Error {
	r := &o.req
	r.mu.Lock()
	if len(r.byMember[mb]) >= o.cfg.MaxInflightRequests {
		r.mu.Unlock()
		o.cfg.RequestRefused()
		return wire.Errf(wire.CodeTooManyRequests, "too many requests in flight on this connection")
	}
	r.seq++
	token := strconv.FormatUint(r.seq, 36)
	p := &pendingReq{mb: mb, ref: ref}
	r.pending[token] = p
	r.byMember[mb] = append(r.byMember[mb], token)
	p.timer = time.AfterFunc(timeout, func() { r.expire(token) })
	r.mu.Unlock()
	m.Reply = r.prefix + token
	if e := o.send(pubJob{kind: jobReq, mb: mb, m: m, ref: token}); e != nil {
		r.take(token)
		return e
	}
	return nil
}

// Drop forgets mb's requests in flight: mb is gone, its answers with it.
// Their places are free at once; replies that come later find nothing.
func (o *Outbox) Drop(mb Member) { o.req.drop(mb) }

// Requests is the number of requests waiting for a reply.
func (o *Outbox) Requests() int { return o.req.inflight() }

// take removes the request with token, if it is still pending, and
// returns it; its answer is the caller's to send.
func (r *requester) take(token string) *pendingReq {
	r.mu.Lock()
	p := r.pending[token]
	if p != nil {
		delete(r.pending, token)
		if ts := removeOne(r.byMember[p.mb], token); len(ts) > 0 {
			r.byMember[p.mb] = ts
		} else {
			delete(r.byMember, p.mb)
		}
	}
	r.mu.Unlock()
	if p != nil {
		p.timer.Stop()
	}
	return p
}

func (r *requester) drop(mb Member) {
	r.mu.Lock()
	tokens := r.byMember[mb]
	delete(r.byMember, mb)
	for _, t := range tokens {
		if p := r.pending[t]; p != nil {
			p.timer.Stop()
			delete(r.pending, t)
		}
	}
	r.mu.Unlock()
}

func (r *requester) inflight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// removeOne drops the first v from s, keeping order.
func removeOne[T comparable](s []T, v T) []T {
	if i := slices.Index(s, v); i >= 0 {
		return slices.Delete(s, i, i+1)
	}
	return s
}

func (r *requester) expire(token string) {
	if p := r.take(token); p != nil {
		p.mb.Err(p.ref, wire.Errf(wire.CodeTimeout, "no reply in time"))
	}
}

// reply runs on the inbox subscription's delivery goroutine.
func (r *requester) reply(m *nats.Msg) {
	p := r.take(m.Subject[len(r.prefix):])
	if p == nil {
		return // late reply after a timeout
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		p.mb.Err(p.ref, wire.Errf(wire.CodeNoResponders, "no service is listening on the subject"))
		return
	}
	p.mb.Reply(p.ref, m)
}
