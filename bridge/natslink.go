package bridge

import (
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"wsbridge/internal/metrics"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// The NATS link as client paths see it. nats.go's IsConnected, Stats and
// Publish take the connection's lock, which a socket write to a frozen or
// blackholed NATS node holds for up to the flusher timeout; so workers,
// /readyz and /metrics read s.natsUp, kept from nats.go's status events by
// watchNATS, and publishes go through the outbox (internal/publish).

// Frames every JSON client gets when the link changes (docs/PROTOCOL.md).
var (
	statusUp   = wsframe.AppendFrame(nil, ws.OpText, wire.AppendStatus(nil, true))
	statusDown = wsframe.AppendFrame(nil, ws.OpText, wire.AppendStatus(nil, false))
)

// link values stored in conn.natsShown.
const (
	linkUnknown int32 = iota
	linkUp
	linkDown
)

func linkOf(up bool) int32 {
	if up {
		return linkUp
	}
	return linkDown
}

// watchNATS follows the connection's status events until shutdown. The
// listener is registered by New before it reads the first state, so no
// change is missed between the two.
func (s *Server) watchNATS(ch chan nats.Status) {
	defer s.wg.Done()
	defer s.nc.RemoveStatusListener(ch)
	for {
		select {
		case <-s.done:
			return
		case st, ok := <-ch:
			if !ok {
				return
			}
			s.linkChanged(st == nats.CONNECTED)
		}
	}
}

// linkChanged records the new state and tells every JSON client.
func (s *Server) linkChanged(up bool) {
	was := s.natsUp.Swap(up)
	if was == up {
		return
	}
	if up {
		s.natsDownSince.Store(0)
		if s.everUp.Swap(true) {
			s.metrics.Reconnected()
			s.streams.Relinked()
		}
	} else {
		s.natsDownSince.Store(time.Now().UnixNano())
	}
	if s.draining.Load() {
		return // clients are being closed; the drain owns the link now
	}
	for _, c := range s.snapshot() {
		c.tellNATS(up)
	}
}

// tellNATS queues a status frame unless the client already knows the
// state (from its hello or an earlier status). Safe from any goroutine.
func (c *conn) tellNATS(up bool) {
	if c.raw != nil {
		return // raw mode has no envelopes
	}
	v := linkOf(up)
	if c.natsShown.Swap(v) == v {
		return
	}
	f := statusDown
	if up {
		f = statusUp
	}
	if ok, _ := c.push(f, 0, true); ok {
		c.s.metrics.Sent(metrics.OutStatus, 1, len(f))
	}
}

// helloFrame returns the hello for a new client and notes which link state
// it announced; start catches up with changes since.
func (s *Server) helloFrame(c *conn) []byte {
	up := s.natsUp.Load()
	c.natsShown.Store(linkOf(up))
	if up {
		return s.helloUp
	}
	return s.helloDown
}
