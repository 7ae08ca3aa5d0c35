package bridge

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// rawMode is the configuration of a /ws/raw connection: no envelope,
// inbound messages published verbatim to pub, NATS messages on sub sent as
// one frame each.
type rawMode struct {
	sub, pub, queue string
}

// parseRaw validates the query of a /ws/raw handshake. It returns the HTTP
// status to refuse it with: 400 for invalid subjects, 403 for refused ones.
func (s *Server) parseRaw(q url.Values, ident Identity) (*rawMode, int, error) {
	rm := &rawMode{sub: q.Get("sub"), pub: q.Get("pub"), queue: q.Get("queue")}
	switch {
	case rm.sub == "" && rm.pub == "":
		return nil, http.StatusBadRequest, errors.New("raw mode needs sub, pub or both")
	case rm.sub != "" && !wire.ValidSubject(rm.sub, true):
		return nil, http.StatusBadRequest, errors.New("invalid sub subject")
	case rm.pub != "" && !wire.ValidSubject(rm.pub, false):
		return nil, http.StatusBadRequest, errors.New("invalid pub subject")
	case rm.queue != "" && (rm.sub == "" || !wire.ValidQueue(rm.queue)):
		return nil, http.StatusBadRequest, errors.New("invalid queue")
	case rm.sub != "" && (wire.Reserved(rm.sub) || !ident.CanSubscribeQueue(rm.sub, rm.queue)):
		return nil, http.StatusForbidden, errors.New("not allowed to subscribe to sub (in this queue group)")
	case rm.pub != "" && (wire.Reserved(rm.pub) || !ident.CanPublish(rm.pub)):
		return nil, http.StatusForbidden, errors.New("not allowed to publish to pub")
	}
	return rm, 0, nil
}

// start runs on the connection's first event: the expiry timer, and a
// status frame if the NATS link changed since the hello.
func (c *conn) start() {
	c.armExpiry()
	if c.raw == nil {
		// The hello went out with the 101; tell the client if the NATS
		// link changed since, before it was registered for status frames.
		c.tellNATS(c.s.natsUp.Load())
	}
}

// subscribeRaw makes a raw-mode connection's sub= subscription live before
// its 101 is sent: the NATS subscription is confirmed by a round trip, so
// a message published once the client has the 101 reaches it. It runs on
// the handshake goroutine, bounded by what is left of HandshakeTimeout.
func (s *Server) subscribeRaw(c *conn) error {
	sb, e := s.subscribe(c, "", c.raw.sub, c.raw.queue)
	if e != nil {
		return e
	}
	sb.acked.Store(true) // raw mode has no ok
	c.addSub(sb)
	if !sb.in.ready.Load() {
		confirmed := make(chan struct{})
		sb.confirmed = confirmed // the flusher's from Await on
		s.flusher.Await(sb)
		t := time.NewTimer(s.cfg.HandshakeTimeout)
		defer t.Stop()
		select {
		case <-confirmed:
		case <-t.C:
			return errors.New("bridge: NATS did not confirm the subscription in time")
		}
	}
	if e := sb.in.err.Load(); e != nil {
		return e
	}
	return nil
}

// rawMessage publishes one inbound raw-mode message verbatim.
func (c *conn) rawMessage(p []byte) error {
	if c.raw.pub == "" {
		return wsframe.CloseNoPublish
	}
	if !c.s.natsUp.Load() {
		return wsframe.CloseUnavailable
	}
	// p is the read buffer: the outbox gets a copy.
	m := &nats.Msg{Subject: c.raw.pub, Data: append([]byte(nil), p...)}
	c.stamp(m)
	if c.s.out.PublishRaw(c, m) != nil {
		return wsframe.CloseUnavailable
	}
	return nil
}
