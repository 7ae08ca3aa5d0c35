package bridge

import (
	"sync"
	"time"
)

// logLimiter lets a burst of log lines through and then one per interval,
// counting the rest, so a flood of refused handshakes cannot fill a disk.
// It is safe for concurrent use.
type logLimiter struct {
	burst    float64
	interval time.Duration

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

func newLogLimiter(burst int, interval time.Duration) *logLimiter {
	return &logLimiter{burst: float64(burst), interval: interval, tokens: float64(burst)}
}

// allow reports whether a line may be written now and, if so, how many
// were suppressed since the last one written.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+float64(now.Sub(l.last))/float64(l.interval))
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
