package ratelimit

import (
	"sync"
	"time"
)

// Log lets a burst of log lines through and then one per interval,
// counting the rest, so a flood of refused handshakes cannot fill a disk.
// It is safe for concurrent use. Make one with NewLog.
type Log struct {
	burst    float64
	interval time.Duration

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// NewLog returns a Log that writes burst lines at once, then one per
// interval.
func NewLog(burst int, interval time.Duration) *Log {
	return &Log{burst: float64(burst), interval: interval, tokens: float64(burst)}
}

// Allow reports whether a line may be written now and, if so, how many
// were suppressed since the last one written.
func (l *Log) Allow(now time.Time) (ok bool, suppressed int) {
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
