package bridge

import (
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"wsbridge/internal/metrics"
	"wsbridge/internal/streams"
	"wsbridge/internal/subscribe"
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
	ns  *nats.Subscription // set and used by the flusher goroutine only
	d   *dispatcher        // delivers ns's messages
	// ready is set once the server has confirmed the SUB (a flush round
	// trip): from then on an ok to a client means "live".
	ready atomic.Bool
	// err is why the NATS subscription could not be made; its subscribers
	// get it instead of their ok.
	err atomic.Pointer[wire.Error]
	rr  atomic.Uint32 // round-robin cursor for queue groups

	mu      sync.RWMutex
	members []*sub
}

// frameCache builds the frames of one message for its local subscribers.
// The envelope's receiver-independent tail is encoded, and compressed, once
// per message; a subscriber's frame is its header and sid prefix in front
// of it (wsframe.Fanout), so the cost does not depend on how clients name
// their subscriptions. Raw connections get the payload alone. A
// dispatcher owns one and reuses it for every message it delivers.
type frameCache struct {
	env, raw wsframe.Fanout
}

// reset ends the message.
func (fc *frameCache) reset() {
	fc.env.Reset()
	fc.raw.Reset()
}

// sub is one client's subscription.
type sub struct {
	c     *conn
	id    string
	pre   []byte // wire.AppendMsgPrefix of id, encoded once
	in    *interest
	idx   int                        // position in in.members, guarded by in.mu
	acked atomic.Bool                // the client has its ok
	js    *streams.Sub               // set for JetStream subscriptions (in is nil then)
	jsErr atomic.Pointer[wire.Error] // why a JetStream sub failed, for the worker
	// subject is the pattern of a JetStream subscription; core ones use
	// in.key.subject.
	subject string
	// confirmed, made only for a raw-mode sub (whose 101 waits for it), is
	// closed by Confirmed once NATS has confirmed or refused the SUB;
	// the flusher owns the field from Await on. An interest has no
	// channel of its own: most never have a waiter, and a channel costs
	// 96 bytes per distinct subject.
	confirmed chan struct{}
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

// subscribe adds a local subscriber to the node's interest in (subject,
// queue). The first subscriber creates the interest; its NATS
// subscription is made by the flusher goroutine, never here: the caller
// may be a worker, and nats.go's Subscribe takes the connection lock that
// a stuck NATS write holds. imu is never held across a nats.go call.
func (s *Server) subscribe(c *conn, id, subject, queue string) (*sub, *wire.Error) {
	key := ikey{subject, queue}
	pre := wire.AppendMsgPrefix(nil, id)
	s.imu.Lock()
	in := s.interests[key]
	created := in == nil
	if created {
		if s.flusher.Full() {
			s.imu.Unlock()
			return nil, wire.Errf(wire.CodeUnavailable, "too many subscriptions are waiting for NATS; retry")
		}
		// A channel subscription feeding a shared dispatcher: nats.go
		// starts no goroutine for it, so a node with 100,000 distinct
		// subjects does not carry 100,000 goroutines.
		in = &interest{s: s, key: key, d: s.dispatcherFor()}
		s.interests[key] = in
	}
	sb := &sub{c: c, id: id, pre: pre, in: in}
	in.mu.Lock()
	sb.idx = len(in.members)
	in.members = append(in.members, sb)
	in.mu.Unlock()
	if created {
		s.flusher.Subscribe(in)
	}
	s.imu.Unlock()
	return sb, nil
}

// unsubscribe removes a local subscriber; with the last one the interest
// goes and the flusher unsubscribes on NATS.
func (s *Server) unsubscribe(sb *sub) {
	in := sb.in
	s.imu.Lock()
	in.mu.Lock()
	var moved *sub
	if in.members, moved = swapRemove(in.members, sb.idx); moved != nil {
		moved.idx = sb.idx
	}
	empty := len(in.members) == 0
	in.mu.Unlock()
	if empty && s.interests[in.key] == in {
		delete(s.interests, in.key)
		s.flusher.Unsubscribe(in)
	}
	s.imu.Unlock()
}

// The flusher makes and ends an interest's NATS subscription, and tells a
// sub waiting for its ok when the SUB is confirmed.
var (
	_ subscribe.Interest = (*interest)(nil)
	_ subscribe.Waiter   = (*sub)(nil)
)

// Subscribe implements subscribe.Interest: it makes in's NATS
// subscription, on the flusher's goroutine.
func (in *interest) Subscribe(nc *nats.Conn) {
	ns, err := nc.ChanQueueSubscribe(in.key.subject, in.key.queue, in.d.ch)
	if err != nil {
		in.err.Store(natsError(err))
		// Its subscribers get the err; a later sub tries afresh.
		in.s.imu.Lock()
		if in.s.interests[in.key] == in {
			delete(in.s.interests, in.key)
		}
		in.s.imu.Unlock()
		return
	}
	in.d.add(ns, in)
	in.ns = ns
}

// Unsubscribe implements subscribe.Interest: it ends in's NATS
// subscription, if it was made.
func (in *interest) Unsubscribe() {
	if in.ns == nil {
		return
	}
	in.d.remove(in.ns)
	_ = in.ns.Unsubscribe()
}

// Confirmed implements subscribe.Waiter: the NATS server has the SUB of
// sb's interest (or refused it), so the worker may answer the client.
func (sb *sub) Confirmed() {
	if sb.in.err.Load() == nil {
		sb.in.ready.Store(true)
	}
	if sb.confirmed != nil {
		close(sb.confirmed) // a raw handshake waits for it
	}
	sb.c.mu.Lock()
	sb.c.acks = append(sb.c.acks, sb)
	sb.c.mu.Unlock()
	sb.c.s.poller.Schedule(sb.c.desc, evAcks)
}

// deliver encodes m once and queues each local subscriber's frame of it;
// connections whose queue was empty are added to d's wake list. It never
// touches a socket, so one slow client cannot hold up NATS or the others.
// It runs on the interest's one dispatcher goroutine.
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
	defer fc.reset()
	var out metrics.Fanout
	defer func() { in.s.metrics.Delivered(out) }()
	if in.key.queue != "" {
		// Queue group: NATS picked this node; pick one local member,
		// skipping any that can no longer take it.
		start := in.rr.Add(1)
		for i := range n {
			sb := in.members[(int(start)+i)%n]
			fr := fc.frame(sb, m)
			if int64(len(fr)) > in.s.maxFrame {
				break // larger than the hello's max_frame promises
			}
			if ok, first := sb.c.push(fr, d.now, false); ok {
				out.Add(true, fr)
				d.owe(sb.c, first)
				return
			}
		}
		out.Drop()
		return
	}
	for _, sb := range in.members {
		fr := fc.frame(sb, m)
		if int64(len(fr)) > in.s.maxFrame {
			out.Drop() // larger than the hello's max_frame promises
			continue
		}
		ok, first := sb.c.push(fr, d.now, false)
		out.Add(ok, fr)
		d.owe(sb.c, first)
	}
}

// frame returns sb's frame of m. It is valid until the next frame or
// reset.
func (fc *frameCache) frame(sb *sub, m *nats.Msg) []byte {
	deflate := sb.c.compress(len(m.Data))
	if sb.c.raw != nil {
		if !fc.raw.Started() {
			op := ws.OpBinary
			if utf8.Valid(m.Data) {
				op = ws.OpText
			}
			fc.raw.SetTail(append(fc.raw.Tail(op), m.Data...))
		}
		return fc.raw.Frame(nil, deflate)
	}
	if !fc.env.Started() {
		fc.env.SetTail(wire.AppendMsgTail(fc.env.Tail(ws.OpText), m.Subject, m.Data, m.Header, m.Reply, 0))
	}
	return fc.env.Frame(sb.pre, deflate)
}

// retained is the memory fc holds, in bytes.
func (fc *frameCache) retained() int { return fc.env.Cap() + fc.raw.Cap() }
