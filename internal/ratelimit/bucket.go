package bridge

import (
	"time"

	"wsbridge/internal/wsframe"
)

// bucket is a token bucket on a connection's inbound messages (RateLimit
// per second, RateBurst deep). It lives in the conn and is touched only by
// its worker.
type bucket struct {
	tokens  float64
	last    int64 // unix nanoseconds of the last refill
	refused int   // messages refused since the last one allowed
}

// allow takes a token for one inbound message. It returns false when the
// message must be refused, and closes the connection when the client
// keeps going far past its limit: more than max(4×burst, 20) refusals in a
// row. An overshoot of a few bursts only earns rate_limited errors.
func (c *conn) allow() bool {
	rate := c.s.cfg.RateLimit
	if rate <= 0 {
		return true
	}
	b := &c.bucket
	now := time.Now().UnixNano()
	if b.last != 0 {
		b.tokens = min(b.tokens+rate*float64(now-b.last)/1e9, float64(c.s.cfg.RateBurst))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.refused = 0
		return true
	}
	b.refused++
	if b.refused > max(4*c.s.cfg.RateBurst, 20) {
		c.closeWith(wsframe.CloseRateLimited, false)
	}
	return false
}
