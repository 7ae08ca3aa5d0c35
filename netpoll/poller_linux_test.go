package netpoll

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// recorder counts events and checks a Desc's handler never overlaps itself.
type recorder struct {
	events  chan Event
	running atomic.Int32
	overlap atomic.Bool
	calls   atomic.Int64
}

func (r *recorder) Handle(ev Event) {
	if r.running.Add(1) > 1 {
		r.overlap.Store(true)
	}
	r.calls.Add(1)
	select {
	case r.events <- ev:
	default:
	}
	r.running.Add(-1)
}

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

func newPoller(t *testing.T, workers int) *Poller {
	t.Helper()
	p, err := New(Config{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func waitEvent(t *testing.T, r *recorder, want Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev&want != 0 {
				return
			}
		case <-deadline:
			t.Fatalf("no %v event", want)
		}
	}
}

func TestReadableAndHangup(t *testing.T) {
	p := newPoller(t, 2)
	a, b := socketpair(t)
	r := &recorder{events: make(chan Event, 16)}
	d := NewDesc(a, r)
	if err := p.Add(d); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, r, Writable) // a new socket is writable at once
	if _, err := syscall.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, r, Readable)
	syscall.Shutdown(b, syscall.SHUT_WR)
	waitEvent(t, r, Hangup)
}

// TestScheduleNeverOverlaps: events from many goroutines are merged; a
// handler never runs twice at once for one Desc.
func TestScheduleNeverOverlaps(t *testing.T) {
	p := newPoller(t, 4)
	r := &recorder{events: make(chan Event, 1)}
	d := NewDesc(-1, r)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				p.Schedule(d, User)
			}
		}()
	}
	wg.Wait()
	// The last Schedule is always followed by at least one Handle.
	deadline := time.Now().Add(5 * time.Second)
	for d.queued.Load() || d.pending.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("desc still queued")
		}
		time.Sleep(time.Millisecond)
	}
	if r.overlap.Load() {
		t.Fatal("handler ran concurrently with itself")
	}
	if r.calls.Load() == 0 || r.calls.Load() > 16000 {
		t.Fatalf("%d calls for 16000 schedules", r.calls.Load())
	}
}

// TestFairness: a descriptor that reschedules itself forever does not
// starve another.
func TestFairness(t *testing.T) {
	p := newPoller(t, 1)
	var busy *Desc
	spin := handlerFunc(func(Event) { p.Schedule(busy, User) })
	busy = NewDesc(-1, spin)
	p.Schedule(busy, User)
	r := &recorder{events: make(chan Event, 1)}
	other := NewDesc(-1, r)
	p.Schedule(other, User)
	waitEvent(t, r, User)
}

type handlerFunc func(Event)

func (f handlerFunc) Handle(ev Event) { f(ev) }

func TestRemoveStopsEvents(t *testing.T) {
	p := newPoller(t, 1)
	a, b := socketpair(t)
	r := &recorder{events: make(chan Event, 16)}
	d := NewDesc(a, r)
	if err := p.Add(d); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, r, Writable)
	if err := p.Remove(d); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(d); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	// A witness socket written after the removed one: once epoll has
	// reported the witness, it would have reported the removed one too.
	wa, wb := socketpair(t)
	w := &recorder{events: make(chan Event, 16)}
	if err := p.Add(NewDesc(wa, w)); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, w, Writable)
	before := r.calls.Load()
	syscall.Write(b, []byte("x"))
	syscall.Write(wb, []byte("x"))
	waitEvent(t, w, Readable)
	if r.calls.Load() != before {
		t.Fatal("events after Remove")
	}
}

func TestCloseIdempotent(t *testing.T) {
	p, err := New(Config{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Schedule(NewDesc(-1, handlerFunc(func(Event) { t.Error("handled after Close") })), User)
}
