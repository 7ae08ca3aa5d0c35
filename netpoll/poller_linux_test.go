//go:build !portable

package netpoll

import (
	"syscall"
	"testing"
)

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
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
