// Package memtrim hands freed heap back to the operating system after
// waves of connections, which Go's background scavenger would take
// minutes to do, or would never do for memory under the GC goal.
//
// Two waves matter to an edge that holds many idle connections. A mass
// disconnect (a node drained by its peers, a reconnect storm moving
// elsewhere) frees the memory of the clients that left. A wave of
// arrivals leaves garbage behind: a TLS handshake allocates tens of KiB
// that are garbage a moment later, yet the heap they grew stays resident
// (the scavenger keeps up to the GC goal), about 4 KiB per new wss://
// connection at 5,000. A Trimmer watches the connection count and runs
// the trim a little after either wave has passed, so at most
// logarithmically often.
//
// It knows counts and timers, not connections. A Trimmer is safe for
// concurrent use.
package memtrim

import (
	"runtime/debug"
	"sync"
	"time"
)

// After is how many connections a wave must add or remove, and (for a
// disconnect) at least half of the peak, before memory is handed back.
const After = 1000

// Trimmer decides when to hand memory back. Create it with New.
type Trimmer struct {
	delay time.Duration
	free  func()

	mu    sync.Mutex
	n     int  // connections now
	peak  int  // most connections since the last trim
	floor int  // fewest connections since the last trim
	wave  bool // an arrival wave's trim is pending: each arrival postpones it
	t     *time.Timer
	done  bool
}

// New returns a Trimmer that calls free (debug.FreeOSMemory when nil)
// delay (one second when zero) after a wave.
func New(delay time.Duration, free func()) *Trimmer {
	if delay <= 0 {
		delay = time.Second
	}
	if free == nil {
		free = debug.FreeOSMemory
	}
	return &Trimmer{delay: delay, free: free}
}

// Arrived records that a connection arrived, leaving n. A trim is due
// once connections grew by After and at least doubled since the last
// one, and each further arrival postpones it: the wave ends first.
func (m *Trimmer) Arrived(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n, m.peak = n, max(m.peak, n)
	switch {
	case m.wave:
		m.schedule()
	case n-m.floor >= After && n >= 2*m.floor:
		m.floor, m.wave = n, true
		m.schedule()
	}
}

// Left records that a connection left, leaving n. A trim is due once
// After connections, and at least half of the peak, have left since the
// last one.
func (m *Trimmer) Left(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n, m.floor = n, min(m.floor, n)
	if m.peak-n < After || n > m.peak/2 {
		return
	}
	m.peak, m.floor = n, n
	m.schedule() // debounced: the rest of the wave leaves first
}

// Stop cancels a pending trim; later waves trim nothing. Idempotent.
func (m *Trimmer) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done = true
	if m.t != nil {
		m.t.Stop()
	}
}

// schedule runs the trim delay from now. Callers hold mu.
func (m *Trimmer) schedule() {
	switch {
	case m.done:
	case m.t == nil:
		m.t = time.AfterFunc(m.delay, m.fire)
	default:
		m.t.Reset(m.delay)
	}
}

func (m *Trimmer) fire() {
	m.mu.Lock()
	if m.done {
		m.mu.Unlock()
		return
	}
	m.wave, m.floor, m.peak = false, m.n, m.n
	m.mu.Unlock()
	m.free()
}
