package bridge

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"wsbridge/netpoll"
)

// eventSink records the events scheduled on a Desc.
type eventSink chan netpoll.Event

func (e eventSink) Handle(ev netpoll.Event) {
	select {
	case e <- ev:
	default:
	}
}

func (e eventSink) wait(t *testing.T, want netpoll.Event) {
	t.Helper()
	deadline := time.After(confWait)
	for {
		select {
		case ev := <-e:
			if ev&want != 0 {
				return
			}
		case <-deadline:
			t.Fatalf("no %v event", want)
		}
	}
}

// newGoIOPair serves the accepted side of a loopback TCP connection with
// goIO, on both backends: goIO is plain Go over a net.Conn.
func newGoIOPair(t *testing.T) (*goIO, eventSink, net.Conn) {
	t.Helper()
	p, err := netpoll.New(netpoll.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{poller: p}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sink := make(eventSink, 64)
	g := newGoIO(s, nc, netpoll.NewDesc(-1, sink))
	g.start()
	t.Cleanup(func() {
		g.close()
		_ = peer.Close()
		s.wg.Wait() // both goroutines end once closed
		_ = p.Close()
	})
	return g, sink, peer
}

// TestGoIOReadWrite: reads and writes behave like a non-blocking socket:
// EAGAIN when empty or full, Readable and Writable when that changes, and
// (0, nil) at EOF.
func TestGoIOReadWrite(t *testing.T) {
	g, sink, peer := newGoIOPair(t)
	buf := make([]byte, readSize)
	if _, err := g.read(buf); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("read before any bytes: %v, want EAGAIN", err)
	}
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, netpoll.Readable)
	if n, err := g.read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read = %q, %v; want hello", buf[:n], err)
	}

	// The peer does not read: the socket and then goIO's own buffer fill.
	chunk := bytes.Repeat([]byte{'x'}, 16<<10)
	sent := 0
	for deadline := time.Now().Add(confWait); ; {
		n, err := g.write(chunk)
		sent += n
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no EAGAIN after %d bytes", sent)
		}
	}
	got := make(chan int)
	go func() {
		n, _ := io.ReadFull(peer, make([]byte, sent))
		got <- n
	}()
	sink.wait(t, netpoll.Writable)
	if n := <-got; n != sent {
		t.Fatalf("peer read %d of %d bytes", n, sent)
	}

	_ = peer.Close()
	sink.wait(t, netpoll.Readable)
	if n, err := g.read(buf); n != 0 || err != nil {
		t.Fatalf("read at EOF = %d, %v; want 0, nil", n, err)
	}
}

// TestGoIOCloseWriteAfterQueued: closeWrite half-closes only once what was
// queued is written, so the peer reads it all and then EOF, as after
// shutdown(SHUT_WR) on the epoll path.
func TestGoIOCloseWriteAfterQueued(t *testing.T) {
	g, _, peer := newGoIOPair(t)
	want := bytes.Repeat([]byte("close frame "), 1000)
	if n, err := g.write(want); n != len(want) || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	g.closeWrite()
	_ = peer.SetReadDeadline(time.Now().Add(confWait))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("peer: %v after %d bytes, want EOF", err, len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes, want %d", len(got), len(want))
	}
}
