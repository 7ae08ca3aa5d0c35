package bridge

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"wsbridge/internal/wire"

	"github.com/nats-io/nats.go"
)

// requester multiplexes every client request of the node onto one
// wildcard inbox subscription, so a request costs no goroutine and no
// NATS subscription, and never blocks a worker while it waits.
type requester struct {
	s      *Server
	prefix string // "_INBOX.<nuid>."
	ns     *nats.Subscription

	mu      sync.Mutex
	seq     uint64
	pending map[string]*pendingReq
}

type pendingReq struct {
	c     *conn
	ref   string
	timer *time.Timer
}

func newRequester(s *Server) (*requester, error) {
	// A prefix of our own: sharing nats.go's response-mux prefix would put
	// two subscriptions on its replies, and nats-server sends a
	// no-responders status to only one of them, so nats.go's own
	// requests (the JetStream API among them) would wait for their
	// timeout instead of failing at once.
	r := &requester{s: s, prefix: nats.NewInbox() + ".", pending: make(map[string]*pendingReq)}
	ns, err := s.nc.Subscribe(r.prefix+"*", r.reply)
	if err != nil {
		return nil, err
	}
	_ = ns.SetPendingLimits(pendingMsgs, pendingBytes)
	r.ns = ns
	return r, nil
}

// request publishes m with a reply subject of ours and answers the client
// when a reply, a no-responders status or the timeout comes first.
func (r *requester) request(c *conn, ref string, m *nats.Msg, timeout time.Duration) *wire.Error {
	r.mu.Lock()
	if len(c.reqs) >= r.s.cfg.MaxInflightRequests {
		r.mu.Unlock()
		r.s.metrics.inflightRefused[inflightReq].Add(1)
		return wire.Errf(wire.CodeTooManyRequests, "too many requests in flight on this connection")
	}
	r.seq++
	token := strconv.FormatUint(r.seq, 36)
	p := &pendingReq{c: c, ref: ref}
	r.pending[token] = p
	c.reqs = append(c.reqs, token)
	p.timer = time.AfterFunc(timeout, func() { r.expire(token) })
	r.mu.Unlock()
	m.Reply = r.prefix + token
	if e := r.s.out.send(pubJob{kind: jobReq, c: c, m: m, ref: token}); e != nil {
		r.take(token)
		return e
	}
	return nil
}

// take removes the request with token, if it is still pending, and
// returns it; its answer is the caller's to send.
func (r *requester) take(token string) *pendingReq {
	r.mu.Lock()
	p := r.pending[token]
	if p != nil {
		delete(r.pending, token)
		p.c.reqs = removeOne(p.c.reqs, token)
	}
	r.mu.Unlock()
	if p != nil {
		p.timer.Stop()
	}
	return p
}

// drop forgets c's requests in flight: c is gone, its answers with it.
func (r *requester) drop(c *conn) {
	r.mu.Lock()
	tokens := c.reqs
	c.reqs = nil
	for _, t := range tokens {
		if p := r.pending[t]; p != nil {
			p.timer.Stop()
			delete(r.pending, t)
		}
	}
	r.mu.Unlock()
}

// inflight is the number of requests waiting for a reply.
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
		p.c.pushText(func(b []byte) []byte {
			return wire.AppendErr(b, p.ref, wire.Errf(wire.CodeTimeout, "no reply in time"))
		}, true)
	}
}

// reply runs on the inbox subscription's delivery goroutine.
func (r *requester) reply(m *nats.Msg) {
	p := r.take(m.Subject[len(r.prefix):])
	if p == nil {
		return // late reply after a timeout
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		p.c.pushText(func(b []byte) []byte {
			return wire.AppendErr(b, p.ref, wire.Errf(wire.CodeNoResponders, "no service is listening on the subject"))
		}, true)
		return
	}
	p.c.pushText(func(b []byte) []byte {
		b = append(b, `{"op":"reply","ref":`...)
		b = wire.AppendString(b, p.ref)
		b = wire.AppendBody(b, m.Data, m.Header, "")
		return append(b, '}')
	}, true)
}
