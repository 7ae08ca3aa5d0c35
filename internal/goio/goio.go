package goio

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsbridge/internal/tlsconn"
)

// Config is what a Conn reports to and who waits for it.
type Config struct {
	// Readable is called, from the reader goroutine, when Read has bytes,
	// EOF or a failure to report. nil: not called.
	Readable func()
	// Writable is called, from the writer goroutine, when Write has room
	// again after an EAGAIN, or has failed. nil: not called.
	Writable func()
	// Group, if set, counts the two goroutines Start runs, so their owner
	// can wait for every connection's at once (Close stops them). nil:
	// they are not counted.
	Group *sync.WaitGroup
}

// Conn serves one net.Conn with a reader and a writer goroutine, behind a
// non-blocking Read and Write. Create it with New.
type Conn struct {
	nc  net.Conn // the connection: a TCP conn, or a tls.Conn over one
	raw net.Conn // the socket under nc (nc itself for plain TCP)
	cfg Config

	mu           sync.Mutex
	in           []byte // bytes read and not yet taken by the worker; a window into the reader's buffer
	inErr        error  // the reader's final error (io.EOF included)
	out          []byte // bytes accepted from the worker, not yet written
	outErr       error
	wantWritable bool
	shut         bool // CloseWrite asked: half-close once out is written

	more     chan struct{} // the worker drained in: read again
	kick     chan struct{} // out has bytes, or shut was set
	done     chan struct{}
	closed   atomic.Bool
	started  atomic.Bool
	lingerAt atomic.Int64 // unix nanoseconds; set by Close: the last write deadline
}

const (
	// readSize is the reader goroutine's buffer, held for the
	// connection's life: small, since every idle connection has one.
	readSize = 4 << 10
	outMax   = 64 << 10 // bytes the writer goroutine holds before EAGAIN
	writeTTL = 30 * time.Second
	// linger bounds how long a closed connection's writer keeps
	// writing what was queued before it (the close frame above all).
	linger = 2 * time.Second
)

// New returns a Conn that owns nc, a TCP connection or a *tls.Conn over
// one (under the bridge's tlsconn transport or not). It starts nothing
// until Start; Close closes nc either way.
func New(nc net.Conn, cfg Config) *Conn {
	if cfg.Readable == nil {
		cfg.Readable = func() {}
	}
	if cfg.Writable == nil {
		cfg.Writable = func() {}
	}
	g := &Conn{nc: nc, raw: nc, cfg: cfg,
		more: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if tc, ok := nc.(*tls.Conn); ok {
		g.raw = tc.NetConn()
		if t := tlsconn.Of(tc); t != nil {
			g.raw = t.NetConn() // under the bridge's transport, which passes through until attach
		}
	}
	return g
}

// Start runs the reader and writer goroutines, counted in Config.Group;
// Close stops them. Call it once.
func (g *Conn) Start() {
	g.started.Store(true)
	if g.cfg.Group != nil {
		g.cfg.Group.Add(2)
	}
	go g.reader()
	go g.writer()
}

// exit marks one of Start's goroutines as returned.
func (g *Conn) exit() {
	if g.cfg.Group != nil {
		g.cfg.Group.Done()
	}
}

func (g *Conn) reader() {
	defer g.exit()
	buf := make([]byte, readSize)
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
		g.cfg.Readable()
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
// Close it still writes what is queued, within linger, so the close
// frame reaches the peer, then closes, which also stops the reader.
func (g *Conn) writer() {
	defer g.exit()
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
			_ = g.nc.SetWriteDeadline(time.Now().Add(writeTTL))
			if at := g.lingerAt.Load(); at != 0 {
				// Close ran meanwhile: keep its shorter deadline.
				_ = g.nc.SetWriteDeadline(time.Unix(0, at))
			}
			_, err := g.nc.Write(data)
			spare = data
			if err != nil {
				g.mu.Lock()
				g.outErr = err
				g.mu.Unlock()
				g.cfg.Writable()
				return
			}
			if wake {
				g.cfg.Writable()
			}
		}
		if closing {
			return
		}
	}
}

// closeWriteNow half-closes the connection: close_notify first over TLS,
// then the TCP FIN, so the peer reads EOF after our close frame.
func (g *Conn) closeWriteNow() {
	if tc, ok := g.nc.(*tls.Conn); ok {
		_ = tc.CloseWrite() // bounded by the write deadline
	}
	if cw, ok := g.raw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Read takes bytes the reader has delivered, like read(2) on a
// non-blocking socket: syscall.EAGAIN means none now (Readable follows
// when there are), and (0, nil) means EOF or a failed connection: the
// caller tears down.
func (g *Conn) Read(b []byte) (int, error) {
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

// Write copies as much of b as fits to the writer, up to 64 KiB held, and
// returns how much, like write(2) on a non-blocking socket:
// syscall.EAGAIN means full, and Writable follows once the writer has
// made room. After a failed write it returns that error.
func (g *Conn) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.outErr != nil {
		return 0, g.outErr
	}
	room := outMax - len(g.out)
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

// CloseWrite asks the writer to half-close once what is queued is
// written (close_notify first over TLS), as shutdown(SHUT_WR) does on the
// epoll path. It does not block.
func (g *Conn) CloseWrite() {
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// Close ends the connection without blocking. The writer flushes what is
// queued, the close frame included, within a 2s linger and then closes the
// socket, which also stops the reader. Idempotent.
func (g *Conn) Close() {
	if g.closed.Swap(true) {
		return
	}
	if !g.started.Load() {
		_ = g.raw.Close() // no writer to do it
		return
	}
	at := time.Now().Add(linger)
	g.lingerAt.Store(at.UnixNano())
	// Cut short a write already blocked on a peer that does not read.
	_ = g.raw.SetWriteDeadline(at)
	close(g.done)
}
