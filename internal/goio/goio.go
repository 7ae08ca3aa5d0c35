package bridge

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsbridge/internal/tlsconn"
	"wsbridge/netpoll"
)

// goIO is the portable backend's connection I/O (netpoll.Portable): where
// there is no epoll, a connection keeps its net.Conn, TLS or not, and a
// reader and a writer goroutine do blocking I/O on it for the same
// worker-driven protocol code. They exchange bytes with the worker
// through two small buffers that behave like a non-blocking socket (read
// and write return EAGAIN when they would block) and schedule
// Readable/Writable on the connection's Desc when that changes. It costs
// two goroutines and a read buffer per connection: fine for development,
// not for a production fan-out (README.md, "Portable backend").
//
// It is built on every platform so that conn can name it; only prepare
// with netpoll.Portable creates one.
type goIO struct {
	nc   net.Conn // the connection: a TCP conn, or a tls.Conn over one
	raw  net.Conn // the socket under nc (nc itself for plain TCP)
	s    *Server
	desc *netpoll.Desc

	mu           sync.Mutex
	in           []byte // bytes read and not yet taken by the worker; a window into the reader's buffer
	inErr        error  // the reader's final error (io.EOF included)
	out          []byte // bytes accepted from the worker, not yet written
	outErr       error
	wantWritable bool
	shut         bool // closeWrite asked: half-close once out is written

	more     chan struct{} // the worker drained in: read again
	kick     chan struct{} // out has bytes, or shut was set
	done     chan struct{}
	closed   atomic.Bool
	started  atomic.Bool
	lingerAt atomic.Int64 // unix nanoseconds; set by close: the last write deadline
}

const (
	// goReadSize is the reader goroutine's buffer, held for the
	// connection's life: small, since every idle connection has one.
	goReadSize = 4 << 10
	goOutMax   = 64 << 10 // bytes the writer goroutine holds before EAGAIN
	goWriteTTL = 30 * time.Second
	// goLinger bounds how long a closed connection's writer keeps
	// writing what was queued before it (the close frame above all).
	goLinger = 2 * time.Second
)

func newGoIO(s *Server, nc net.Conn, d *netpoll.Desc) *goIO {
	g := &goIO{nc: nc, raw: nc, s: s, desc: d,
		more: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if tc, ok := nc.(*tls.Conn); ok {
		g.raw = tc.NetConn()
		if t := tlsconn.Of(tc); t != nil {
			g.raw = t.NetConn() // under the bridge's transport, which passes through until attach
		}
	}
	return g
}

// start runs the reader and writer goroutines, owned by the Server's
// WaitGroup; close stops them.
func (g *goIO) start() {
	g.started.Store(true)
	g.s.wg.Add(2)
	go g.reader()
	go g.writer()
}

func (g *goIO) reader() {
	defer g.s.wg.Done()
	buf := make([]byte, goReadSize)
	for {
		n, err := g.nc.Read(buf)
		if n == 0 && err == nil {
			continue
		}
		g.mu.Lock()
		// The worker has taken everything before (that is what more
		// said), so buf can be handed over without a copy.
		g.in, g.inErr = buf[:n], err
		g.mu.Unlock()
		g.s.poller.Schedule(g.desc, netpoll.Readable)
		if err != nil {
			return
		}
		select {
		case <-g.more:
		case <-g.done:
			return
		}
	}
}

// writer writes what the worker queued. It owns closing the socket: after
// close it still writes what is queued, within goLinger, so the close
// frame reaches the peer, then closes, which also stops the reader.
func (g *goIO) writer() {
	defer g.s.wg.Done()
	defer func() { _ = g.raw.Close() }()
	var spare []byte
	halfClosed := false
	for {
		closing := false
		select {
		case <-g.kick:
		case <-g.done:
			closing = true
		}
		for {
			g.mu.Lock()
			data := g.out
			g.out = spare[:0]
			wake := g.wantWritable
			g.wantWritable = false
			shut := g.shut
			g.mu.Unlock()
			if len(data) == 0 {
				spare = data
				if shut && !halfClosed && !closing {
					halfClosed = true
					g.closeWriteNow()
				}
				break
			}
			_ = g.nc.SetWriteDeadline(time.Now().Add(goWriteTTL))
			if at := g.lingerAt.Load(); at != 0 {
				// close ran meanwhile: keep its shorter deadline.
				_ = g.nc.SetWriteDeadline(time.Unix(0, at))
			}
			_, err := g.nc.Write(data)
			spare = data
			if err != nil {
				g.mu.Lock()
				g.outErr = err
				g.mu.Unlock()
				g.s.poller.Schedule(g.desc, netpoll.Writable)
				return
			}
			if wake {
				g.s.poller.Schedule(g.desc, netpoll.Writable)
			}
		}
		if closing {
			return
		}
	}
}

// closeWriteNow half-closes the connection: close_notify first over TLS,
// then the TCP FIN, so the peer reads EOF after our close frame.
func (g *goIO) closeWriteNow() {
	if tc, ok := g.nc.(*tls.Conn); ok {
		_ = tc.CloseWrite() // bounded by the write deadline
	}
	if cw, ok := g.raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// read takes bytes the reader has delivered; EAGAIN means none now, and
// (0, nil) means EOF or a failed connection: the caller tears down.
func (g *goIO) read(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.in) > 0 {
		n := copy(b, g.in)
		g.in = g.in[n:]
		if len(g.in) == 0 {
			g.in = nil
			if g.inErr == nil {
				select {
				case g.more <- struct{}{}:
				default:
				}
			}
		}
		return n, nil
	}
	if g.inErr != nil {
		return 0, nil
	}
	return 0, syscall.EAGAIN
}

// write hands b to the writer, up to goOutMax bytes held; EAGAIN means
// full, and a Writable event follows once the writer has made room.
func (g *goIO) write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.outErr != nil {
		return 0, g.outErr
	}
	room := goOutMax - len(g.out)
	if room <= 0 {
		g.wantWritable = true
		return 0, syscall.EAGAIN
	}
	n := min(room, len(b))
	g.out = append(g.out, b[:n]...)
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return n, nil
}

// closeWrite asks the writer to half-close once what is queued is
// written, as shutdown(SHUT_WR) does on the epoll path.
func (g *goIO) closeWrite() {
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// close ends the connection. The writer flushes what is queued, the close
// frame included, within goLinger and then closes the socket, which also
// stops the reader. Idempotent.
func (g *goIO) close() {
	if g.closed.Swap(true) {
		return
	}
	if !g.started.Load() {
		_ = g.raw.Close() // no writer to do it
		return
	}
	at := time.Now().Add(goLinger)
	g.lingerAt.Store(at.UnixNano())
	// Cut short a write already blocked on a peer that does not read.
	_ = g.raw.SetWriteDeadline(at)
	close(g.done)
}
