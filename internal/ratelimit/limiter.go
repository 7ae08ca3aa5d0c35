package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket shared by a node: rate per second, one second
// deep, that tells a refused caller when to come back. On the node's
// WebSocket upgrades it makes the clients of a dead node arrive as a
// short queue of retries, not a storm that starves the clients already
// here. The zero value is ready and full; it is safe for concurrent use.
type Limiter struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// Take reserves one event at now, at rate per second (unlimited if rate
// <= 0). When none is left it returns how long until one is, rounded up
// to whole seconds for Retry-After.
func (l *Limiter) Take(now time.Time, rate float64) (ok bool, retryAfter int) {
	if rate <= 0 {
		return true, 0
	}
	burst := max(1, rate)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = burst
	} else {
		l.tokens = min(burst, l.tokens+rate*now.Sub(l.last).Seconds())
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true, 0
	}
	return false, max(1, int(math.Ceil((1-l.tokens)/rate)))
}
