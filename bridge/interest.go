package bridge

import (
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"wsbridge/internal/streams"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
)

// ikey identifies node-wide interest: one NATS subscription per distinct
// (subject, queue), however many local clients share it.
type ikey struct{ subject, queue string }

// interest is one NATS subscription and the local subscribers it feeds.
type interest struct {
	s   *Server
	key ikey
	ns  *nats.Subscription
	d   *dispatcher // delivers ns's messages
	// ready is set once the server has confirmed the SUB (a flush round
	// trip): from then on an ok to a client means "live".
	ready atomic.Bool
	rr    atomic.Uint32 // round-robin cursor for queue groups

	mu      sync.RWMutex
	members []*sub
}

// frameCache builds the frames of one message, each distinct shape once.
// A dispatcher owns one and reuses it for every message it delivers.
type frameCache struct {
	body []byte // receiver-independent part of the envelope
	wsframe.Cache[frameKey]
}

func (fc *frameCache) reset() {
	fc.body = fc.body[:0]
	fc.Cache.Reset()
}

type frameKey struct {
	raw     bool
	deflate bool
	sid     string
}

// sub is one client's subscription.
type sub struct {
	c     *conn
	id    string
	in    *interest
	idx   int                        // position in in.members, guarded by in.mu
	acked atomic.Bool                // the client has its ok
	js    *streams.Sub               // set for JetStream subscriptions (in is nil then)
	jsErr atomic.Pointer[wire.Error] // why a JetStream sub failed, for the worker
	// subject is the pattern of a JetStream subscription; core ones use
	// in.key.subject.
	subject string
}

// pattern is the subject the client subscribed to.
func (sb *sub) pattern() string {
	if sb.in != nil {
		return sb.in.key.subject
	}
	return sb.subject
}

// queue is the sub's queue group; "" for plain and JetStream subs.
func (sb *sub) queue() string {
	if sb.in != nil {
		return sb.in.key.queue
	}
	return ""
}

// pendingLimit sizes nats.go's buffer for the request inbox subscription.
// Replies only copy into connection queues, so it drains fast; it is large
// so that a burst never makes the bridge itself a slow consumer.
const (
	pendingMsgs  = 1 << 20
	pendingBytes = 512 << 20
)

// subscribe adds a local subscriber to the node's interest in (subject,
// queue), subscribing on NATS when it is the first.
func (s *Server) subscribe(c *conn, id, subject, queue string) (*sub, error) {
	key := ikey{subject, queue}
	s.imu.Lock()
	defer s.imu.Unlock()
	in := s.interests[key]
	if in == nil {
		in = &interest{s: s, key: key}
		// A channel subscription feeding a shared dispatcher: nats.go
		// starts no goroutine for it, so a node with 100,000 distinct
		// subjects does not carry 100,000 goroutines.
		d := s.dispatcherFor()
		ns, err := s.nc.ChanQueueSubscribe(subject, queue, d.ch)
		if err != nil {
			return nil, err
		}
		in.ns, in.d = ns, d
		d.add(ns, in)
		s.interests[key] = in
	}
	sb := &sub{c: c, id: id, in: in}
	in.mu.Lock()
	sb.idx = len(in.members)
	in.members = append(in.members, sb)
	in.mu.Unlock()
	return sb, nil
}

// unsubscribe removes a local subscriber and the NATS subscription with the
// last one.
func (s *Server) unsubscribe(sb *sub) {
	in := sb.in
	s.imu.Lock()
	defer s.imu.Unlock()
	in.mu.Lock()
	var moved *sub
	if in.members, moved = swapRemove(in.members, sb.idx); moved != nil {
		moved.idx = sb.idx
	}
	empty := len(in.members) == 0
	in.mu.Unlock()
	if empty {
		delete(s.interests, in.key)
		in.d.remove(in.ns)
		_ = in.ns.Unsubscribe()
	}
}

// deliver builds each distinct frame of m once and queues it on the local
// subscribers; connections whose queue was empty are added to d's wake
// list. It never touches a socket, so one slow client cannot hold up NATS
// or the others. It runs on the interest's one dispatcher goroutine.
func (in *interest) deliver(m *nats.Msg, d *dispatcher) {
	if wire.Reserved(m.Subject) {
		// Never leak system traffic or other clients' replies to a
		// client subscribed to ">".
		return
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	n := len(in.members)
	if n == 0 {
		return
	}
	fc := &d.fc
	fc.reset()
	var out fanout
	defer func() { in.s.metrics.delivered(out) }()
	if in.key.queue != "" {
		// Queue group: NATS picked this node; pick one local member,
		// skipping any that can no longer take it.
		start := in.rr.Add(1)
		for i := range n {
			sb := in.members[(int(start)+i)%n]
			fr := fc.frame(sb, m)
			if ok, first := sb.c.push(fr, d.now, false); ok {
				out.add(true, fr)
				d.owe(sb.c, first)
				return
			}
		}
		out.dropped++
		return
	}
	for _, sb := range in.members {
		fr := fc.frame(sb, m)
		ok, first := sb.c.push(fr, d.now, false)
		out.add(ok, fr)
		d.owe(sb.c, first)
	}
}

// frame returns the frame for sb's shape of m, building it on first use.
// The result is valid until the next reset.
func (fc *frameCache) frame(sb *sub, m *nats.Msg) []byte {
	k := frameKey{raw: sb.c.raw != nil, deflate: sb.c.compress(len(m.Data)), sid: sb.id}
	if k.raw {
		k.sid = ""
	}
	if !k.deflate {
		return fc.build(k, sb, m)
	}
	plain := k
	plain.deflate = false
	if f, ok := fc.Lookup(k); ok {
		return f
	}
	return fc.Deflated(k, fc.build(plain, sb, m))
}

// build returns the plain frame of shape k, building it on first use.
func (fc *frameCache) build(k frameKey, sb *sub, m *nats.Msg) []byte {
	if f, ok := fc.Lookup(k); ok {
		return f
	}
	if k.raw {
		op := ws.OpBinary
		if utf8.Valid(m.Data) {
			op = ws.OpText
		}
		return fc.Add(k, wsframe.AppendFrame(fc.Buffer(), op, m.Data))
	}
	if len(fc.body) == 0 {
		fc.body = wire.AppendBody(fc.body, m.Data, m.Header, m.Reply)
	}
	return fc.Add(k, wire.AppendMsgFrame(fc.Buffer(), sb.id, m.Subject, fc.body, 0))
}
