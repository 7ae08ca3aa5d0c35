package bridge

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// handshakeRate is a token bucket on the node's WebSocket upgrades
// (MaxHandshakeRate per second, one second deep), so that the clients of a
// dead node arrive as a short queue of retries, not a storm that starves
// the clients already here.
type handshakeRate struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take reserves one handshake. When none is left it returns how long until
// one is, rounded up to whole seconds for Retry-After.
func (s *Server) takeHandshake(now time.Time) (ok bool, retryAfter int) {
	rate := s.cfg.MaxHandshakeRate
	if rate <= 0 {
		return true, 0
	}
	burst := max(1, rate)
	h := &s.hsRate
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.IsZero() {
		h.tokens = burst
	} else {
		h.tokens = min(burst, h.tokens+rate*now.Sub(h.last).Seconds())
	}
	h.last = now
	if h.tokens >= 1 {
		h.tokens--
		return true, 0
	}
	return false, max(1, int(math.Ceil((1-h.tokens)/rate)))
}

// rejectRetry is a 503 with Retry-After: come back in after seconds.
func rejectRetry(reason string, after int) error {
	return ws.RejectConnectionError(
		ws.RejectionStatus(503),
		ws.RejectionReason(reason+"\n"),
		ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: "+strconv.Itoa(after)+"\r\n")),
	)
}
