package goio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// wait bounds every expected event; a passing test never waits for it.
const wait = 10 * time.Second

// TestMain fails the run if a Conn's reader or writer outlives the tests:
// every test closes what it started.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		left := leftover()
		for left != "" && time.Now().Before(deadline) {
			runtime.Gosched()
			left = leftover()
		}
		if left != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak:\n%s\n", left)
			code = 1
		}
	}
	os.Exit(code)
}

// leftover returns the stacks of the goroutines running a Conn's reader
// or writer.
func leftover() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var own []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "goio.(*Conn).reader") || strings.Contains(g, "goio.(*Conn).writer") {
			own = append(own, g)
		}
	}
	return strings.Join(own, "\n\n")
}

// event is which readiness callback ran.
type event string

const (
	readable event = "Readable"
	writable event = "Writable"
)

// eventSink records the readiness a Conn reports.
type eventSink chan event

func (e eventSink) send(ev event) {
	select {
	case e <- ev:
	default:
	}
}

func (e eventSink) wait(t *testing.T, want event) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev := <-e:
			if ev == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %v event", want)
		}
	}
}

// newPair serves the accepted side of a loopback TCP connection with a
// Conn, on every platform: a Conn is plain Go over a net.Conn.
func newPair(t *testing.T) (*Conn, eventSink, net.Conn) {
	t.Helper()
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
	var wg sync.WaitGroup
	g := New(nc, Config{
		Readable: func() { sink.send(readable) },
		Writable: func() { sink.send(writable) },
		Group:    &wg,
	})
	g.Start()
	t.Cleanup(func() {
		g.Close()
		_ = peer.Close()
		wg.Wait() // both goroutines end once closed
	})
	return g, sink, peer
}

// TestReadWrite: reads and writes behave like a non-blocking socket:
// EAGAIN when empty or full, Readable and Writable when that changes, and
// (0, nil) at EOF.
func TestReadWrite(t *testing.T) {
	g, sink, peer := newPair(t)
	buf := make([]byte, 16<<10) // the bridge's read buffer
	if _, err := g.Read(buf); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("read before any bytes: %v, want EAGAIN", err)
	}
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	sink.wait(t, readable)
	if n, err := g.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read = %q, %v; want hello", buf[:n], err)
	}

	// The peer does not read: the socket and then the Conn's own buffer fill.
	chunk := bytes.Repeat([]byte{'x'}, 16<<10)
	sent := 0
	for deadline := time.Now().Add(wait); ; {
		n, err := g.Write(chunk)
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
	sink.wait(t, writable)
	if n := <-got; n != sent {
		t.Fatalf("peer read %d of %d bytes", n, sent)
	}

	_ = peer.Close()
	sink.wait(t, readable)
	if n, err := g.Read(buf); n != 0 || err != nil {
		t.Fatalf("read at EOF = %d, %v; want 0, nil", n, err)
	}
}

// TestCloseWriteAfterQueued: CloseWrite half-closes only once what was
// queued is written, so the peer reads it all and then EOF, as after
// shutdown(SHUT_WR) on the epoll path.
func TestCloseWriteAfterQueued(t *testing.T) {
	g, _, peer := newPair(t)
	want := bytes.Repeat([]byte("close frame "), 1000)
	if n, err := g.Write(want); n != len(want) || err != nil {
		t.Fatalf("write = %d, %v", n, err)
	}
	g.CloseWrite()
	_ = peer.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("peer: %v after %d bytes, want EOF", err, len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("peer read %d bytes, want %d", len(got), len(want))
	}
}

// TestClose: Close still writes what was queued before it (the close
// frame), then closes the socket, so the peer reads it all and then EOF;
// before Start it closes the socket itself. Close is idempotent.
func TestClose(t *testing.T) {
	t.Run("after start", func(t *testing.T) {
		g, _, peer := newPair(t)
		want := bytes.Repeat([]byte("close frame "), 1000)
		if n, err := g.Write(want); n != len(want) || err != nil {
			t.Fatalf("write = %d, %v", n, err)
		}
		g.Close()
		g.Close()
		_ = peer.SetReadDeadline(time.Now().Add(wait))
		got, err := io.ReadAll(peer)
		if err != nil {
			t.Fatalf("peer: %v after %d bytes, want EOF", err, len(got))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("peer read %d bytes, want %d", len(got), len(want))
		}
	})
	t.Run("before start", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		g := New(a, Config{})
		g.Close()
		g.Close()
		if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("write on the closed conn: %v, want io.ErrClosedPipe", err)
		}
	})
}
