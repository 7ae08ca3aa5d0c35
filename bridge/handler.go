package bridge

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

const maxIDLen = 64

// command runs one JSON command from the client and answers it. wire is
// the message's size as it arrived, for the metrics.
func (c *conn) command(p []byte, wire int) {
	cmd, oerr := decodeCommand(p)
	op := inInvalid
	if oerr == nil {
		switch cmd.Op {
		case "sub":
			op, oerr = inSub, c.sub(&cmd)
		case "unsub":
			op, oerr = inUnsub, c.unsub(&cmd)
		case "pub":
			op, oerr = inPub, c.pub(&cmd)
		case "req":
			op, oerr = inReq, c.req(&cmd)
		case "auth":
			op, oerr = inAuth, c.refresh(&cmd)
		case "ping":
			op = inPing
			c.sendText(func(b []byte) []byte { return appendPong(b, cmd.ID) })
		default:
			oerr = errf(codeBadRequest, "unknown op")
		}
	}
	c.s.metrics.received(op, wire)
	if oerr != nil {
		c.sendText(func(b []byte) []byte { return appendErr(b, cmd.ID, oerr) })
	}
}

func validID(id string) *opError {
	if id == "" || len(id) > maxIDLen {
		return errf(codeBadRequest, "id must be 1 to 64 characters")
	}
	return nil
}

// checkSubject applies the subject rules shared by every op.
func (c *conn) checkSubject(subject string, pattern bool) *opError {
	switch {
	case !validSubject(subject, pattern):
		return errf(codeInvalidSubject, "invalid subject")
	case reserved(subject):
		return errf(codePermissionDenied, "subjects starting with $ or _INBOX. are reserved")
	case pattern && !c.ident.CanSubscribe(subject):
		return errf(codePermissionDenied, "not allowed to subscribe to this subject")
	case !pattern && !c.ident.CanPublish(subject):
		return errf(codePermissionDenied, "not allowed to publish to this subject")
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

func (c *conn) sub(cmd *command) *opError {
	if e := validID(cmd.ID); e != nil {
		return e
	}
	if e := c.checkSubject(cmd.Subject, true); e != nil {
		return e
	}
	if cmd.Queue != "" && !validQueue(cmd.Queue) {
		return errf(codeBadRequest, "invalid queue name")
	}
	if c.findSub(cmd.ID) >= 0 {
		return errf(codeDuplicateID, "a subscription with this id exists")
	}
	if len(c.subs) >= c.s.cfg.MaxSubscriptions {
		return errf(codeTooManySubscriptions, "subscription limit reached")
	}
	if cmd.From != nil {
		return c.jsSubscribe(cmd)
	}
	sb, err := c.s.subscribe(c, cmd.ID, cmd.Subject, cmd.Queue)
	if err != nil {
		return natsError(err)
	}
	c.addSub(sb)
	if sb.in.ready.Load() {
		sb.acked.Store(true)
		c.sendText(func(b []byte) []byte { return appendOK(b, cmd.ID) })
		return nil
	}
	c.s.awaitFlush(sb)
	return nil
}

func (c *conn) unsub(cmd *command) *opError {
	i := c.findSub(cmd.ID)
	if i < 0 {
		return errf(codeNotFound, "no subscription with this id")
	}
	sb := c.subs[i]
	c.subs = append(c.subs[:i], c.subs[i+1:]...)
	c.release(sb)
	if sb.acked.CompareAndSwap(false, true) {
		// The sub's own ok was still waiting for the flush: answer it
		// first so replies stay in request order.
		c.sendText(func(b []byte) []byte { return appendOK(b, sb.id) })
	}
	c.sendText(func(b []byte) []byte { return appendOK(b, cmd.ID) })
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
		if sb.acked.CompareAndSwap(false, true) {
			c.sendText(func(b []byte) []byte { return appendOK(b, sb.id) })
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
	c.s.metrics.subs.Add(1)
}

// release ends one subscription, core NATS or JetStream. The caller takes
// it out of c.subs.
func (c *conn) release(sb *sub) {
	c.s.metrics.subs.Add(-1)
	if sb.js != nil {
		c.s.jsUnsubscribe(sb)
		return
	}
	c.s.unsubscribe(sb)
}

// message builds the NATS message for pub and req.
func (c *conn) message(cmd *command) (*nats.Msg, *opError) {
	if e := c.checkSubject(cmd.Subject, false); e != nil {
		return nil, e
	}
	data, e := cmd.payload()
	if e != nil {
		return nil, e
	}
	if int64(len(data)) > c.s.cfg.MaxPayload {
		return nil, errf(codePayloadTooLarge, "payload exceeds max_payload")
	}
	if !c.s.nc.IsConnected() {
		return nil, errf(codeUnavailable, "NATS is unavailable")
	}
	m := &nats.Msg{Subject: cmd.Subject, Data: data}
	if len(cmd.Headers) > 0 {
		m.Header = nats.Header(cmd.Headers)
	}
	return m, nil
}

func (c *conn) pub(cmd *command) *opError {
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
			return errf(codeBadRequest, "ack requires an id")
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
	if err := c.s.nc.PublishMsg(m); err != nil {
		return natsError(err)
	}
	c.s.metrics.published()
	if cmd.ID != "" {
		c.sendText(func(b []byte) []byte { return appendOK(b, cmd.ID) })
	}
	return nil
}

func (c *conn) req(cmd *command) *opError {
	if e := validID(cmd.ID); e != nil {
		return e
	}
	m, e := c.message(cmd)
	if e != nil {
		return e
	}
	timeout := c.s.cfg.RequestTimeout
	if cmd.TimeoutMS > 0 {
		timeout = time.Duration(cmd.TimeoutMS) * time.Millisecond
	}
	timeout = min(timeout, c.s.cfg.MaxRequestTimeout)
	if err := c.s.req.request(c, cmd.ID, m, timeout); err != nil {
		return natsError(err)
	}
	return nil
}

// refresh replaces the connection's identity with a new token's. The
// subject must not change; subscriptions the new permissions no longer
// allow are removed, each with an err whose ref is the sub id.
func (c *conn) refresh(cmd *command) *opError {
	ident, err := c.s.cfg.Auth.Authenticate(cmd.Token)
	if err != nil {
		return errf(codeUnauthorized, strings.TrimPrefix(err.Error(), "auth: "))
	}
	if ident.Subject() != c.ident.Subject() {
		return errf(codePermissionDenied, "the new token is for a different subject")
	}
	c.ident = ident
	kept := c.subs[:0]
	for _, sb := range c.subs {
		if c.ident.CanSubscribe(sb.pattern()) {
			kept = append(kept, sb)
			continue
		}
		c.release(sb)
		// The err answers the sub: a flush still pending for it must not
		// send an ok afterwards.
		sb.acked.Store(true)
		c.sendText(func(b []byte) []byte {
			return appendErr(b, sb.id, errf(codePermissionDenied, "the refreshed token no longer allows this subscription"))
		})
	}
	clear(c.subs[len(kept):])
	c.subs = kept
	c.armExpiry()
	if cmd.ID != "" {
		c.sendText(func(b []byte) []byte { return appendOK(b, cmd.ID) })
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
		c.sendText(func(b []byte) []byte {
			return appendErr(b, "", errf(codeTokenExpired, "the token expired; reconnect with a new one"))
		})
	}
	c.closeWith(closeExpired, false)
}
