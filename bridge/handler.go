package bridge

import (
	"strings"
	"time"

	"wsbridge/internal/metrics"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"

	"github.com/nats-io/nats.go"
)

const maxIDLen = 64

// command runs one JSON command from the client and answers it. size is
// the message's size as it arrived, for the metrics.
func (c *conn) command(p []byte, size int) {
	cmd, oerr := wire.Decode(p)
	op := metrics.InInvalid
	if oerr == nil {
		switch cmd.Op {
		case "sub":
			op, oerr = metrics.InSub, c.sub(&cmd)
		case "unsub":
			op, oerr = metrics.InUnsub, c.unsub(&cmd)
		case "pub":
			op, oerr = metrics.InPub, c.pub(&cmd)
		case "req":
			op, oerr = metrics.InReq, c.req(&cmd)
		case "auth":
			op, oerr = metrics.InAuth, c.refresh(&cmd)
		case "ping":
			op = metrics.InPing
			c.pushText(func(b []byte) []byte { return wire.AppendPong(b, cmd.ID) }, false)
		default:
			oerr = wire.Errf(wire.CodeBadRequest, "unknown op")
		}
	}
	c.s.metrics.Received(op, size)
	if oerr != nil {
		c.pushText(func(b []byte) []byte { return wire.AppendErr(b, cmd.ID, oerr) }, false)
	}
}

func validID(id string) *wire.Error {
	if id == "" || len(id) > maxIDLen {
		return wire.Errf(wire.CodeBadRequest, "id must be 1 to 64 characters")
	}
	return nil
}

// checkSubject applies the subject rules shared by every op: validity
// first, then the reserved subjects, then the client's permissions. queue
// matters for subscriptions only.
func (c *conn) checkSubject(subject, queue string, pattern bool) *wire.Error {
	switch {
	case !wire.ValidSubject(subject, pattern):
		return wire.Errf(wire.CodeInvalidSubject, "invalid subject")
	case wire.Reserved(subject):
		return wire.Errf(wire.CodePermissionDenied, "subjects starting with $ or _INBOX. are reserved")
	case pattern && queue != "" && !c.ident.CanSubscribeQueue(subject, queue):
		return wire.Errf(wire.CodePermissionDenied, "not allowed to subscribe to this subject in this queue group")
	case pattern && queue == "" && !c.ident.CanSubscribeQueue(subject, ""):
		return wire.Errf(wire.CodePermissionDenied, "not allowed to subscribe to this subject")
	case !pattern && !c.ident.CanPublish(subject):
		return wire.Errf(wire.CodePermissionDenied, "not allowed to publish to this subject")
	}
	return nil
}

func (c *conn) findSub(id string) int {
	for i, sb := range c.subs {
		if sb.id == id {
			return i
		}
	}
	return -1
}

func (c *conn) sub(cmd *wire.Command) *wire.Error {
	if e := validID(cmd.ID); e != nil {
		return e
	}
	if cmd.Subject == "" {
		return wire.Errf(wire.CodeBadRequest, "sub needs a subject")
	}
	if cmd.Queue != "" && !wire.ValidQueue(cmd.Queue) {
		return wire.Errf(wire.CodeBadRequest, "invalid queue name")
	}
	if e := c.checkSubject(cmd.Subject, cmd.Queue, true); e != nil {
		return e
	}
	if c.findSub(cmd.ID) >= 0 {
		return wire.Errf(wire.CodeDuplicateID, "a subscription with this id exists")
	}
	if len(c.subs) >= c.s.cfg.MaxSubscriptions {
		return wire.Errf(wire.CodeTooManySubscriptions, "subscription limit reached")
	}
	if cmd.From != nil {
		return c.jsSubscribe(cmd)
	}
	sb, e := c.s.subscribe(c, cmd.ID, cmd.Subject, cmd.Queue)
	if e != nil {
		return e
	}
	c.addSub(sb)
	if sb.in.ready.Load() {
		sb.acked.Store(true)
		c.pushText(func(b []byte) []byte { return wire.AppendOK(b, cmd.ID) }, false)
		return nil
	}
	c.s.flusher.Await(sb)
	return nil
}

func (c *conn) unsub(cmd *wire.Command) *wire.Error {
	i := c.findSub(cmd.ID)
	if i < 0 {
		return wire.Errf(wire.CodeNotFound, "no subscription with this id")
	}
	sb := c.subs[i]
	c.subs = append(c.subs[:i], c.subs[i+1:]...)
	c.release(sb)
	if sb.acked.CompareAndSwap(false, true) {
		// The sub's own ok was still waiting for the flush: answer it
		// first so replies stay in request order.
		c.pushText(func(b []byte) []byte { return wire.AppendOK(b, sb.id) }, false)
	}
	c.pushText(func(b []byte) []byte { return wire.AppendOK(b, cmd.ID) }, false)
	return nil
}

// sendAcks answers subs whose interest became live, and JetStream subs
// whose setup failed.
func (c *conn) sendAcks(ids []*sub) {
	for _, sb := range ids {
		if sb.js != nil {
			c.jsSettle(sb)
			continue
		}
		if e := sb.in.err.Load(); e != nil {
			c.settle(sb, e)
			continue
		}
		if sb.acked.CompareAndSwap(false, true) {
			c.pushText(func(b []byte) []byte { return wire.AppendOK(b, sb.id) }, false)
		}
	}
}

// dropInterest removes every subscription of the connection.
func (c *conn) dropInterest() {
	for _, sb := range c.subs {
		c.release(sb)
	}
	c.subs = nil
}

// addSub records a new subscription of the connection.
func (c *conn) addSub(sb *sub) {
	c.subs = append(c.subs, sb)
	c.s.metrics.Subscribed()
}

// release ends one subscription, core NATS or JetStream. The caller takes
// it out of c.subs.
func (c *conn) release(sb *sub) {
	c.s.metrics.Unsubscribed()
	if sb.js != nil {
		sb.js.Unsubscribe()
		return
	}
	c.s.unsubscribe(sb)
}

// message builds the NATS message for pub and req.
func (c *conn) message(cmd *wire.Command) (*nats.Msg, *wire.Error) {
	if e := c.checkSubject(cmd.Subject, "", false); e != nil {
		return nil, e
	}
	data, e := cmd.Payload()
	if e != nil {
		return nil, e
	}
	if int64(len(data)) > c.s.cfg.MaxPayload {
		return nil, wire.Errf(wire.CodePayloadTooLarge, "payload exceeds max_payload")
	}
	if !c.s.natsUp.Load() {
		return nil, wire.Errf(wire.CodeUnavailable, "NATS is unavailable")
	}
	if h := wire.ReservedHeader(cmd.Headers); h != "" {
		return nil, wire.Errf(wire.CodeBadRequest, "header "+h+" is reserved")
	}
	m := &nats.Msg{Subject: cmd.Subject, Data: data, Header: nats.Header(cmd.Headers)}
	c.stamp(m)
	return m, nil
}

// stamp sets the identity headers a service can trust, since clients can
// set no Wsbridge-* header: the token's sub, when there is one, and the
// node.
func (c *conn) stamp(m *nats.Msg) {
	if m.Header == nil {
		m.Header = make(nats.Header, 2)
	}
	if sub := c.ident.Subject(); sub != "" {
		m.Header[wire.HeaderSub] = []string{sub}
	}
	m.Header[wire.HeaderNode] = c.s.nodeHeader
}

func (c *conn) pub(cmd *wire.Command) *wire.Error {
	if cmd.ID != "" {
		if e := validID(cmd.ID); e != nil {
			return e
		}
	}
	m, e := c.message(cmd)
	if e != nil {
		return e
	}
	if cmd.Ack || cmd.MsgID != "" {
		if cmd.Ack && cmd.ID == "" {
			return wire.Errf(wire.CodeBadRequest, "ack requires an id")
		}
		if cmd.MsgID != "" {
			if m.Header == nil {
				m.Header = nats.Header{}
			}
			m.Header.Set(nats.MsgIdHdr, cmd.MsgID)
		}
		if cmd.Ack {
			return c.jsPublish(cmd.ID, m)
		}
	}
	// The ok comes from the outbox once nats.go has taken the message.
	return c.s.out.Publish(c, cmd.ID, m)
}

func (c *conn) req(cmd *wire.Command) *wire.Error {
	if e := validID(cmd.ID); e != nil {
		return e
	}
	m, e := c.message(cmd)
	if e != nil {
		return e
	}
	timeout := c.s.cfg.RequestTimeout
	if cmd.TimeoutMS > 0 {
		// Clamped before the multiplication, which would overflow for
		// large values into a negative, immediate timeout.
		timeout = time.Duration(min(cmd.TimeoutMS, c.s.cfg.MaxRequestTimeout.Milliseconds())) * time.Millisecond
	}
	timeout = min(timeout, c.s.cfg.MaxRequestTimeout)
	return c.s.out.Request(c, cmd.ID, m, timeout)
}

// refresh replaces the connection's identity with a new token's. The
// subject must not change; subscriptions the new permissions no longer
// allow are removed, each with an err whose ref is the sub id.
func (c *conn) refresh(cmd *wire.Command) *wire.Error {
	ident, err := c.s.cfg.Auth.Authenticate(cmd.Token)
	if err != nil {
		return wire.Errf(wire.CodeUnauthorized, strings.TrimPrefix(err.Error(), "auth: "))
	}
	if ident.Subject() != c.ident.Subject() {
		return wire.Errf(wire.CodePermissionDenied, "the new token is for a different subject")
	}
	c.ident = ident
	kept := c.subs[:0]
	for _, sb := range c.subs {
		if c.ident.CanSubscribeQueue(sb.pattern(), sb.queue()) {
			kept = append(kept, sb)
			continue
		}
		c.release(sb)
		// The err answers the sub: a flush still pending for it must not
		// send an ok afterwards.
		sb.acked.Store(true)
		c.pushText(func(b []byte) []byte {
			return wire.AppendErr(b, sb.id, wire.Errf(wire.CodePermissionDenied, "the refreshed token no longer allows this subscription"))
		}, false)
	}
	clear(c.subs[len(kept):])
	c.subs = kept
	c.armExpiry()
	if cmd.ID != "" {
		c.pushText(func(b []byte) []byte { return wire.AppendOK(b, cmd.ID) }, false)
	}
	return nil
}

// armExpiry (re)starts the timer that closes the connection when its
// identity expires.
func (c *conn) armExpiry() {
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	exp := c.ident.Expires()
	if exp.IsZero() {
		return
	}
	c.expiry = time.AfterFunc(time.Until(exp), func() { c.s.poller.Schedule(c.desc, evExpired) })
}

// expired closes the connection if its identity has expired: an err
// token_expired, then close 1008.
func (c *conn) expired() {
	exp := c.ident.Expires()
	if exp.IsZero() || time.Now().Before(exp) {
		return // refreshed in the meantime
	}
	if c.raw == nil {
		c.pushText(func(b []byte) []byte {
			return wire.AppendErr(b, "", wire.Errf(wire.CodeTokenExpired, "the token expired; reconnect with a new one"))
		}, false)
	}
	c.closeWith(wsframe.CloseExpired, false)
}
