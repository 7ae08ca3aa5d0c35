// Package ratelimit holds the token buckets a bridge node limits itself
// with: a connection's inbound messages (Bucket), lines of a log that a
// flood could otherwise fill a disk with (Log), the node's WebSocket
// upgrades (Limiter), and the connections a node and one address may hold
// at once (Slots).
//
// It is arithmetic only: callers pass the time in, so its tests need no
// clock and no sleeps. It knows nothing of connections, HTTP or loggers.
// A Bucket belongs to one goroutine; a Log, a Limiter and Slots are safe
// for concurrent use.
package ratelimit

// Bucket is a token bucket on a connection's inbound messages: rate per
// second, burst deep. It lives in the connection and is touched only by
// its worker, so it takes no lock. The zero value is empty; Fill it for a
// new connection.
type Bucket struct {
	tokens  float64
	last    int64 // unix nanoseconds of the last refill
	refused int   // messages refused since the last one allowed
}

// Fill gives b burst tokens, so that a new connection may send a burst
// at once.
func (b *Bucket) Fill(burst int) { b.tokens = float64(burst) }

// Take takes a token for one inbound message at now (unix nanoseconds),
// refilled at rate (> 0) per second up to burst. ok is false when the
// message must be refused. abusive reports a client that keeps going far
// past its limit, more than max(4×burst, 20) refusals in a row, which is
// to be closed; an overshoot of a few bursts is only refused.
func (b *Bucket) Take(now int64, rate float64, burst int) (ok, abusive bool) {
	if b.last != 0 {
		b.tokens = min(b.tokens+rate*float64(now-b.last)/1e9, float64(burst))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.refused = 0
		return true, false
	}
	b.refused++
	return false, b.refused > max(4*burst, 20)
}
