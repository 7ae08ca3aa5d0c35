package bridge

import (
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"wsbridge/internal/wsframe"
)

// allow takes a token from the connection's bucket (RateLimit per second,
// RateBurst deep) for one inbound message. It returns false when the
// message must be refused, and closes the connection when the client
// keeps going far past its limit; an overshoot of a few bursts only earns
// rate_limited errors.
func (c *conn) allow() bool {
	rate := c.s.cfg.RateLimit
	if rate <= 0 {
		return true
	}
	ok, abusive := c.bucket.Take(time.Now().UnixNano(), rate, c.s.cfg.RateBurst)
	if abusive {
		c.closeWith(wsframe.CloseRateLimited, false)
	}
	return ok
}

// takeHandshake reserves one WebSocket upgrade from the node's
// MaxHandshakeRate. When none is left it returns the Retry-After seconds.
func (s *Server) takeHandshake(now time.Time) (ok bool, retryAfter int) {
	return s.hsRate.Take(now, s.cfg.MaxHandshakeRate)
}

// rejectRetry is a 503 with Retry-After: come back in after seconds.
func rejectRetry(reason string, after int) error {
	return ws.RejectConnectionError(
		ws.RejectionStatus(503),
		ws.RejectionReason(reason+"\n"),
		ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: "+strconv.Itoa(after)+"\r\n")),
	)
}
