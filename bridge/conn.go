package bridge

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"wsbridge/internal/goio"
	"wsbridge/internal/metrics"
	"wsbridge/internal/ratelimit"
	"wsbridge/internal/tlsconn"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
	"wsbridge/netpoll"
)

type connState uint8

const (
	stateOpen    connState = iota
	stateClosing           // our close frame is queued; waiting for the peer
	stateClosed            // torn down
)

// Events the bridge schedules on a connection besides readiness.
const (
	evClose   = netpoll.User      // another goroutine asked for a close (conn.pending)
	evTimeout = netpoll.User << 1 // the close handshake ran out of time
	evAcks    = netpoll.User << 2 // deferred acks are queued (conn.acks)
	evStart   = netpoll.User << 3 // first event: start raw mode (the hello went out with the 101)
	evExpired = netpoll.User << 4 // the identity's expiry time has come
)

const (
	// readSize is how many bytes are read from a socket per syscall, into
	// a pooled buffer.
	readSize = 16 << 10
	// readsPerTurn bounds how much one connection reads before yielding
	// its worker to others.
	readsPerTurn = 4
	// maxReadsPerTurn bounds the reads of a turn in count as well: TLS
	// reads return one record each, however small.
	maxReadsPerTurn = 64
	// closeTimeout bounds the close handshake: after our close frame is
	// queued, the peer has this long to read it and answer before the
	// socket is dropped. A slow consumer that resumes reading within it
	// still finds its 1008.
	closeTimeout = 5 * time.Second
)

// conn is one upgraded WebSocket connection. Reading, the protocol and
// teardown run only on the netpoll worker that handles its Desc (never two
// at once); other goroutines only queue frames (enqueue) or ask for a close
// (requestClose).
type conn struct {
	s *Server
	// netc is the handshake's connection, dropped at attach: after it the
	// connection is the bare socket fd (and, over TLS, the tls.Conn on it).
	netc   net.Conn
	fd     int                // after attach: the socket, owned by conn; else -1
	tls    *tlsconn.Transport // TLS: the tls.Conn and its non-blocking transport
	gio    *goio.Conn         // portable backend (netpoll.Portable): every connection's I/O; nil on epoll
	desc   *netpoll.Desc
	ident  Identity
	raw    *rawMode // set for /ws/raw connections
	remote netip.AddrPort
	regIdx int // position in Server.conns, guarded by Server.connsMu

	// opened is Server.clock at register: the rebalancer sheds the oldest
	// first. Written under Server.connsMu before anyone else sees c.
	opened int64

	// Owned by the worker.
	asm        wsframe.Assembler
	in         []byte // bytes that arrived with the handshake
	subs       []*sub
	bucket     ratelimit.Bucket
	expiry     *time.Timer // fires when ident expires
	deflate    bool        // permessage-deflate negotiated
	peerClosed bool        // the peer's close frame arrived
	halfClosed bool        // our side of the TCP connection is shut down (or, over TLS, will be)
	shutWR     bool        // TLS: shut down once close_notify is written
	closeTimer *time.Timer

	// The batch being written, taken whole from wbuf by flush. Written in
	// place (plain) or encrypted tlsconn.Chunk at a time (TLS); the offset
	// moves, the bytes never do.
	batch   *[]byte
	boff    int   // bytes of batch written (plain) or encrypted (TLS)
	bhead   int   // bytes at the start of batch that are not frames, as headRemain
	bOldest int64 // oldest of batch, as wbuf's oldest

	lastRead  atomic.Int64 // unix nanoseconds of the last bytes read
	natsShown atomic.Int32 // the NATS link state the client was last told (natslink.go)

	// mu guards the queue that other goroutines push to. It is held only
	// to append or to take the queue, never across write(2).
	mu    sync.Mutex
	state connState
	wbuf  *[]byte // whole frames not yet taken by flush, pooled; nil when empty
	// headRemain counts bytes at the start of wbuf that are not frames (a
	// raw connection's queued 101): frame boundaries start after them.
	headRemain int
	oldest     int64 // Server.clock of the oldest NATS message in wbuf; 0: none
	inflight   int   // bytes taken by flush and not yet written (batch and ciphertext)
	stalled    bool  // flush met EAGAIN: EPOLLOUT, not a schedule, brings it back
	pingDue    bool  // the heartbeat's ping, appended when flush takes the queue
	drop       bool  // with pending: discard queued frames first
	pending    *wsframe.CloseError
	acks       []*sub // subs whose ok waited for the NATS flush

	catchups chan struct{} // JetStream catch-up slots, made with the first stream sub
}

var readPool = sync.Pool{New: func() any { b := make([]byte, readSize); return &b }}

// Handle implements netpoll.Handler.
func (c *conn) Handle(ev netpoll.Event) {
	defer func() {
		if r := recover(); r != nil {
			c.s.log.Error("panic while serving a connection; closing it", "remote", c.remote.String(), "panic", r, "stack", string(debug.Stack()))
			c.asm.Stop()
			c.closeWith(wsframe.CloseInternal, false)
			_, _ = c.flush()
		}
	}()
	c.mu.Lock()
	st, pend, drop, acks := c.state, c.pending, c.drop, c.acks
	c.pending, c.acks = nil, nil
	c.mu.Unlock()
	if st == stateClosed {
		return // a stale event after teardown
	}
	if ev&evExpired != 0 {
		c.expired()
	}
	if ev&evStart != 0 {
		// Bytes that arrived before epoll saw the socket raise an event
		// of their own: EPOLL_CTL_ADD reports present readiness.
		c.start()
	}
	if len(acks) > 0 {
		c.sendAcks(acks)
	}
	if pend != nil {
		c.closeWith(pend, drop)
	}
	if ev&netpoll.Readable != 0 || c.in != nil {
		if !c.readAll(ev&netpoll.Hangup != 0) {
			return
		}
	}
	if ev&evTimeout != 0 {
		c.teardown()
		return
	}
	empty, err := c.flush()
	if err != nil {
		c.teardown()
		return
	}
	// state changes only on this worker, so it is read without the lock.
	sent := empty && c.state == stateClosing
	switch {
	case sent && c.peerClosed:
		c.teardown()
	case sent && !c.halfClosed:
		// Our close frame is out. Half-close so the peer sees it and EOF,
		// then keep reading until its close or EOF (a lingering close: an
		// immediate close with unread input would send an RST that can
		// destroy the close frame before the peer reads it).
		c.halfClosed = true
		if c.gio != nil {
			// The writer goroutine sends close_notify (TLS) and the FIN
			// once what is queued is out.
			c.gio.CloseWrite()
			return
		}
		if c.tls != nil {
			// close_notify goes first; it joins the ciphertext queue, so
			// it cannot block on a peer that does not read.
			_ = c.tls.Conn().CloseWrite()
			if empty, err := c.flush(); err != nil {
				c.teardown()
				return
			} else if !empty {
				c.shutWR = true // when EPOLLOUT has let it out
				return
			}
		}
		_ = shutdownWriteFD(c.fd)
	case sent && c.shutWR:
		c.shutWR = false
		_ = shutdownWriteFD(c.fd)
	}
}

// readAll reads what the socket has, within a budget, and feeds it to the
// assembler. It returns false when the connection was torn down. With
// hangup it reads past a short read: edge-triggered epoll reports a FIN
// that arrives with the last data only once, so the EOF must be found now.
// A TLS connection reads until EAGAIN or until the transport says the
// socket is drained and tls.Conn holds nothing: a short read of plaintext
// says nothing about records tls.Conn already holds, which epoll cannot
// see.
func (c *conn) readAll(hangup bool) bool {
	if c.in != nil {
		in := c.in
		c.in = nil
		c.consume(in)
	}
	bp := readPool.Get().(*[]byte)
	defer readPool.Put(bp)
	buf := *bp
	if c.tls != nil {
		c.tls.BeginRead()
		defer c.tls.EndRead()
	}
	budget := readsPerTurn * readSize
	for range maxReadsPerTurn {
		n, err := c.read(buf)
		budget -= n
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			if c.asm.Done() && c.halfClosed {
				// The stream is unparseable past a violation: whatever
				// comes after our close frame is taken as the peer's
				// answer, which waits for us to close TCP (§7.1.1).
				c.peerClosed = true
			}
			c.consume(buf[:n])
		}
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return true
		case err != nil, n == 0:
			// EOF or a socket error. A peer that only half-closed may still
			// read: give it what was answered so far, then let go.
			_, _ = c.flush()
			c.teardown()
			return false
		case n < len(buf) && !hangup && c.tls == nil:
			return true
		case !hangup && c.tls != nil && c.tls.Drained():
			return true
		}
		if budget <= 0 {
			break
		}
	}
	c.s.poller.Schedule(c.desc, netpoll.Readable) // budget used: yield
	return true
}

// read reads plaintext: from the socket, or from the tls.Conn on it. It
// returns EAGAIN when nothing more can be read now.
func (c *conn) read(b []byte) (int, error) {
	if c.gio != nil {
		return c.gio.Read(b)
	}
	if c.tls != nil {
		n, err := c.tls.Conn().Read(b)
		if errors.Is(err, tlsconn.ErrWouldBlock) {
			err = syscall.EAGAIN
		}
		return n, err
	}
	return readFD(c.fd, b)
}

// write is one non-blocking write(2) to the socket (with the portable
// backend, a hand-over to the writer goroutine).
func (c *conn) write(b []byte) (int, error) {
	if c.gio != nil {
		return c.gio.Write(b)
	}
	return writeFD(c.fd, b)
}

// consume feeds bytes to the assembler and turns protocol violations into
// closes.
func (c *conn) consume(p []byte) {
	if c.asm.Done() {
		return
	}
	err := c.asm.Feed(p, c.onFrame)
	if err == nil {
		return
	}
	c.asm.Stop() // the stream is unusable past a violation
	var ce *wsframe.CloseError
	if !errors.As(err, &ce) {
		c.s.log.Error("serving connection", "remote", c.remote.String(), "err", err)
		ce = wsframe.CloseInternal
	}
	c.s.log.Debug("closing connection", "remote", c.remote.String(), "code", int(ce.Code), "reason", ce.Reason)
	c.closeWith(ce, false)
}

// onFrame handles one complete message or control frame.
func (c *conn) onFrame(op ws.OpCode, rsv byte, p []byte) error {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st != stateOpen {
		// RFC 6455 §5.5.1: after sending a close, wait for the peer's
		// and ignore anything else.
		if op == ws.OpClose {
			c.peerClosed = true
		}
		return nil
	}
	switch op {
	case ws.OpText, ws.OpBinary:
		if !c.allow() {
			if c.raw == nil {
				c.pushText(func(b []byte) []byte {
					return wire.AppendErr(b, "", wire.Errf(wire.CodeRateLimited, "message rate limit exceeded"))
				}, false)
			}
			return nil
		}
		size := len(p) // as it arrived, for the metrics
		if wsframe.Compressed(rsv) {
			z, err := wsframe.Inflate(p, c.s.cfg.MaxPayload)
			if err != nil {
				return err
			}
			defer wsframe.PutBuffer(z)
			p = *z
			if op == ws.OpText && !utf8.Valid(p) {
				return wsframe.ErrInvalidUTF8
			}
		}
		if c.raw != nil {
			c.s.metrics.Received(metrics.InPub, size)
			return c.rawMessage(p)
		}
		if op == ws.OpBinary {
			return wsframe.CloseBinary
		}
		c.command(p, size)
	case ws.OpPing:
		c.push(wsframe.AppendFrame(nil, ws.OpPong, p), 0, false)
	case ws.OpClose:
		// Echo the peer's code (§5.5.1), then close the TCP connection
		// once it is written.
		c.peerClosed = true
		reply := &wsframe.CloseError{Code: ws.StatusNormalClosure, Reason: wsframe.ReasonClosing}
		if len(p) >= 2 {
			reply.Code = ws.StatusCode(uint16(p[0])<<8 | uint16(p[1]))
		}
		c.closeWith(reply, false)
	}
	return nil
}

// push appends one or more complete frames to the write queue; it is the
// only way frames reach a connection. at is when a message frame was taken
// from NATS (Server.clock), 0 for other frames. first reports that the
// queue was empty: the connection is then owed a Writable schedule, which
// push makes itself with wake. The worker passes false because it flushes
// before returning, and dispatchers pass false to batch the schedules of a
// burst (one write per socket). A full queue makes the connection a slow
// consumer: it is closed and the frame dropped. push never blocks on the
// socket, so NATS handlers may call it.
func (c *conn) push(frame []byte, at int64, wake bool) (ok, first bool) {
	c.mu.Lock()
	if c.state != stateOpen || c.pending != nil {
		c.mu.Unlock()
		return false, false
	}
	n := c.inflight
	if c.wbuf != nil {
		n += len(*c.wbuf)
	}
	// A flush is owed unless one is already due: a queue that had frames
	// (or a ping) has a schedule, a stalled one waits for EPOLLOUT.
	first = c.wbuf == nil && !c.pingDue && !c.stalled
	// An empty queue takes any one frame, so a message near max_payload,
	// grown by its envelope, still reaches a client that keeps up.
	if n > 0 && n+len(frame) > c.s.cfg.WriteBuffer {
		c.pending, c.drop = wsframe.CloseSlow, true
		c.mu.Unlock()
		c.s.metrics.SlowConsumer()
		c.s.poller.Schedule(c.desc, evClose)
		return false, false
	}
	if c.wbuf == nil {
		c.wbuf = wsframe.GetBuffer()
	}
	*c.wbuf = append(*c.wbuf, frame...)
	if c.oldest == 0 {
		c.oldest = at
	}
	c.mu.Unlock()
	if wake && first {
		c.s.poller.Schedule(c.desc, netpoll.Writable)
	}
	return true, first
}

// pingFrame is the heartbeat's ping: RFC 6455 §5.5.2, no payload.
var pingFrame = wsframe.AppendFrame(nil, ws.OpPing, nil)

// ping queues the heartbeat's ping. It takes no buffer: the heartbeat
// pings every connection at once, and a pooled buffer per idle connection
// would stay in the pool (and in RSS) between the rare GCs of an idle
// process. flush appends the ping when it takes the queue, on the worker,
// so at most one buffer per worker is out at a time.
func (c *conn) ping() {
	c.mu.Lock()
	if c.state != stateOpen || c.pending != nil {
		c.mu.Unlock()
		return
	}
	if c.wbuf != nil {
		*c.wbuf = append(*c.wbuf, pingFrame...) // the queue's schedule flushes it
		c.mu.Unlock()
		return
	}
	first := !c.pingDue && !c.stalled
	c.pingDue = true
	c.mu.Unlock()
	if first {
		c.s.poller.Schedule(c.desc, netpoll.Writable)
	}
}

// requestClose asks the worker to close the connection with e. Safe from
// any goroutine; the first request wins.
func (c *conn) requestClose(e *wsframe.CloseError) {
	c.mu.Lock()
	if c.state == stateOpen && c.pending == nil {
		c.pending = e
	}
	c.mu.Unlock()
	c.s.poller.Schedule(c.desc, evClose)
}

// flush writes as much of the queue as the socket takes without blocking.
// It reports whether the queue is now empty, and an error only when the
// socket failed. The queue is taken whole under c.mu and written outside
// it, so pushers never wait on a write(2); what the socket did not take
// stays where it is, behind an offset.
func (c *conn) flush() (empty bool, err error) {
	for {
		if t := c.tls; t != nil {
			for p := t.Pending(); len(p) > 0; p = t.Pending() {
				n, err := c.write(p)
				t.Wrote(n)
				if err != nil {
					return c.stall(err)
				}
			}
		}
		if c.batch != nil && c.boff < len(*c.batch) {
			rest := (*c.batch)[c.boff:]
			if c.tls != nil {
				// The records go to the transport, written at the top of the loop.
				rest = rest[:min(len(rest), tlsconn.Chunk)]
				c.tls.Reserve(len(rest))
				if _, err := c.tls.Conn().Write(rest); err != nil {
					return false, err
				}
				c.boff += len(rest)
				continue
			}
			n, err := c.write(rest)
			c.boff += n
			if err != nil {
				return c.stall(err)
			}
			continue
		}
		if c.batch != nil {
			wsframe.PutBuffer(c.batch)
			c.batch, c.boff = nil, 0
			if c.bOldest != 0 {
				c.s.metrics.ObserveLatency(time.Duration(c.s.clock() - c.bOldest))
			}
		}
		c.mu.Lock()
		if c.pingDue {
			c.pingDue = false
			if c.state == stateOpen { // never after our close frame
				if c.wbuf == nil {
					c.wbuf = wsframe.GetBuffer()
				}
				*c.wbuf = append(*c.wbuf, pingFrame...)
			}
		}
		c.batch, c.bOldest, c.bhead = c.wbuf, c.oldest, c.headRemain
		c.wbuf, c.oldest, c.headRemain = nil, 0, 0
		c.stalled, c.inflight = false, 0
		if c.batch != nil {
			c.inflight = len(*c.batch)
		}
		c.mu.Unlock()
		if c.batch == nil {
			return true, nil
		}
	}
}

// stall ends a flush that met err: EAGAIN leaves the rest for EPOLLOUT,
// anything else is a failed socket.
func (c *conn) stall(err error) (bool, error) {
	if !errors.Is(err, syscall.EAGAIN) {
		return false, err
	}
	left := 0
	if c.batch != nil {
		left = len(*c.batch) - c.boff
	}
	if c.tls != nil {
		left += len(c.tls.Pending())
	}
	c.mu.Lock()
	c.stalled, c.inflight = true, left
	c.mu.Unlock()
	return false, nil
}

// cutBatch drops the frames of the batch that were not started, keeping
// the one partly written (or encrypted) so the stream stays parseable.
func (c *conn) cutBatch() {
	if c.batch == nil {
		return
	}
	b, pos := *c.batch, c.bhead
	for pos < c.boff {
		pos += wsframe.FrameLen(b[pos:])
	}
	*c.batch = b[:pos]
}

// closeWith starts the close handshake: it queues a close frame (after the
// pending frames, or instead of them with drop), stops all deliveries and
// arms the close timeout. Only the worker calls it.
func (c *conn) closeWith(e *wsframe.CloseError, drop bool) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	if c.wbuf == nil {
		c.wbuf = wsframe.GetBuffer()
	} else if drop {
		*c.wbuf = (*c.wbuf)[:c.headRemain]
		c.oldest = 0
	}
	if drop {
		c.cutBatch()
	}
	*c.wbuf = wsframe.AppendClose(*c.wbuf, e)
	c.mu.Unlock()
	c.dropInterest()
	c.s.metrics.Closed(int(e.Code))
	c.closeTimer = time.AfterFunc(closeTimeout, func() { c.s.poller.Schedule(c.desc, evTimeout) })
}

// teardown releases everything the connection holds. It runs on the worker,
// or on Shutdown's goroutine after the workers have stopped.
func (c *conn) teardown() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	wasOpen := c.state == stateOpen
	c.state = stateClosed
	if c.wbuf != nil {
		wsframe.PutBuffer(c.wbuf)
		c.wbuf = nil
	}
	c.inflight = 0
	c.mu.Unlock()
	if c.batch != nil {
		wsframe.PutBuffer(c.batch)
		c.batch = nil
	}
	if wasOpen {
		c.s.metrics.Closed(int(ws.StatusAbnormalClosure))
	}
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.dropInterest()
	// Requests and acked publishes in flight free their places now, not
	// when their answers or timeouts come.
	c.s.out.Drop(c)
	c.s.pub.Drop(c)
	// Out of epoll before the fd number can be reused. desc is nil when
	// the connection failed before it reached the poller.
	if c.desc != nil {
		_ = c.s.poller.Remove(c.desc)
	}
	if c.tls != nil {
		// No close_notify here: the WebSocket close said goodbye, and
		// a torn-down connection writes nothing more.
		c.tls.Release()
	}
	switch {
	case c.gio != nil:
		c.gio.Close()
	case c.fd >= 0:
		_ = closeFD(c.fd)
		c.fd = -1
	case c.netc != nil:
		// Failed before attach. A tls.Conn's Close would try to send
		// close_notify to a peer that may not read: close the socket.
		if tc, ok := c.netc.(*tls.Conn); ok {
			_ = tc.NetConn().Close()
		} else {
			_ = c.netc.Close()
		}
	}
	c.asm.Release()
	c.s.unregister(c)
}

// compress reports whether a message of n bytes goes out compressed.
func (c *conn) compress(n int) bool {
	return c.deflate && n >= c.s.cfg.CompressionMin
}

// pushText queues a text frame whose payload build appends, compressed
// when that pays; wake as for push.
func (c *conn) pushText(build func([]byte) []byte, wake bool) {
	bp, fb := wsframe.GetBuffer(), wsframe.GetBuffer()
	*bp = build(*bp)
	*fb = wsframe.AppendFrame(*fb, ws.OpText, *bp)
	if c.compress(len(*bp)) {
		plain := *fb
		*fb = wsframe.AppendDeflated(plain[len(plain):], plain)
	}
	if ok, _ := c.push(*fb, 0, wake); ok {
		if op, ok := metrics.OutOpOf(*bp); ok {
			c.s.metrics.Sent(op, 1, len(*fb))
		}
	}
	wsframe.PutBuffer(fb)
	wsframe.PutBuffer(bp)
}

// queued reports the bytes waiting in c's write queue and whether c still
// takes frames.
func (c *conn) queued() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen || c.pending != nil {
		return 0, false
	}
	if c.wbuf == nil {
		return c.inflight, true
	}
	return c.inflight + len(*c.wbuf), true
}
