package netpoll

import (
	"sync"
	"sync/atomic"
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

// TestAddWithoutFD: a Desc with fd -1 is accepted by Add on every backend
// and reached through Schedule alone.
func TestAddWithoutFD(t *testing.T) {
	p := newPoller(t, 1)
	r := &recorder{events: make(chan Event, 1)}
	d := NewDesc(-1, r)
	if err := p.Add(d); err != nil {
		t.Fatalf("Add(fd -1): %v", err)
	}
	p.Schedule(d, User)
	waitEvent(t, r, User)
	if err := p.Remove(d); err != nil {
		t.Fatalf("Remove(fd -1): %v", err)
	}
}
