package bridge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"wsbridge/internal/goio"
	"wsbridge/internal/metrics"
	"wsbridge/internal/tlsconn"
	"wsbridge/internal/wsframe"
	"wsbridge/netpoll"
)

// maxHeaderBytes bounds an HTTP request head; larger ones get 431. Like
// nginx's default it leaves room for a JWT in Sec-WebSocket-Protocol or a
// cookie, while hundreds of concurrent handshakes stay cheap.
const maxHeaderBytes = 8 << 10

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, maxHeaderBytes) }}

// handshake reads the request head within HandshakeTimeout, upgrades /ws
// and /ws/raw with gobwas/ws's zero-copy Upgrader, and hands every other
// request to the HTTP server. It runs on its own goroutine until the
// connection is registered with the poller, then returns it.
func (s *Server) handshake(netc net.Conn) {
	counted := true // against MaxHandshakes, until upgraded or closed
	defer func() {
		if counted {
			s.inHandshake.Add(-1)
		}
	}()
	begin := time.Now()
	_ = netc.SetDeadline(begin.Add(s.cfg.HandshakeTimeout))
	secure := false
	if s.cfg.TLS != nil {
		tc := tlsconn.Server(netc, s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			s.log.Debug("TLS handshake failed", "remote", netc.RemoteAddr().String(), "err", err)
			_ = netc.Close()
			return
		}
		netc, secure = tc, true
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(netc)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	n, err := wsframe.PeekHead(br)
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			s.refused(netc.RemoteAddr(), metrics.RefusedBadRequest, http.StatusRequestHeaderFieldsTooLarge, "request header too large")
			writeStatus(netc, http.StatusRequestHeaderFieldsTooLarge, "request header too large\n", "")
		}
		// Anything else is a timeout (slowloris) or a vanished peer.
		_ = netc.Close()
		return
	}
	head, _ := br.Peek(n)
	path := wsframe.RequestPath(head)
	if path != "/ws" && path != "/ws/raw" {
		pre := make([]byte, br.Buffered())
		_, _ = io.ReadFull(br, pre)
		_ = netc.SetDeadline(time.Time{})
		// The socket stays counted against MaxHandshakes while net/http
		// holds it (IdleTimeout bounds an idle keep-alive), so idle HTTP
		// connections cannot pile up unbounded.
		counted = false
		s.httpLn.deliver(&prefixConn{Conn: netc, pre: pre, release: func() { s.inHandshake.Add(-1) }})
		return
	}
	if !bytes.HasPrefix(head, []byte("GET ")) {
		// RFC 6455 §4.1: the handshake is a GET; say so rather than call
		// it malformed.
		s.refused(netc.RemoteAddr(), metrics.RefusedBadRequest, http.StatusMethodNotAllowed, "method not allowed")
		writeStatus(netc, http.StatusMethodNotAllowed, "a WebSocket upgrade is a GET request\n", "Allow: GET\r\n")
		_ = netc.Close()
		return
	}
	if !wsframe.HasHeader(head, "upgrade") {
		s.refused(netc.RemoteAddr(), metrics.RefusedBadRequest, http.StatusUpgradeRequired, "not a WebSocket upgrade")
		writeStatus(netc, http.StatusUpgradeRequired, "this endpoint speaks WebSocket: send an Upgrade request\n", "Sec-WebSocket-Version: 13\r\n")
		_ = netc.Close()
		return
	}
	c, err := s.upgrade(netc, br, n, secure)
	if err != nil {
		s.log.Debug("handshake refused", "remote", netc.RemoteAddr().String(), "err", err)
		_ = netc.Close()
		return
	}
	_ = netc.SetDeadline(time.Time{})
	s.metrics.ObserveHandshake(time.Since(begin))
	s.adopt(c)
}

// adopt hands an upgraded, admitted connection (c.netc set) to the
// poller; its handshake goroutine returns after.
func (s *Server) adopt(c *conn) {
	if err := s.prepare(c); err != nil {
		// EMFILE/ENFILE under a connection storm: the node stays up and
		// serves the clients it has; the log is rate-limited.
		s.logLimited(s.fdLog, "preparing an upgraded connection failed; closing it", "err", err)
		c.teardown()
		s.slots.Release(c.remote.Addr())
		return
	}
	if h := s.beforeRegister.Load(); h != nil {
		(*h)()
	}
	// Registered before any event can reach it, so Shutdown sees every
	// connection that can run.
	if !s.register(c) {
		s.goneAway(c)
		s.slots.Release(c.remote.Addr())
		return
	}
	if c.raw != nil && c.raw.sub != "" {
		if err := s.subscribeRaw(c); err != nil {
			s.logLimited(s.errLog, "raw-mode subscription failed; closing the connection", "subject", c.raw.sub, "err", err)
			c.teardown()
			return
		}
	}
	if err := s.start(c); err != nil {
		s.logLimited(s.fdLog, "registering a connection with epoll failed; closing it", "err", err)
		c.teardown()
	}
}

// goneAway closes a connection that Shutdown began too late to see:
// admitted before the drain, so it has its 101 and hello, and now told
// 1001 like the clients already connected rather than left with a bare
// FIN. The close frame is written here, on the handshake goroutine; the
// connection never reaches the poller.
func (s *Server) goneAway(c *conn) {
	c.closeWith(wsframe.CloseGoingAway, false)
	if c.gio != nil {
		c.gio.Start() // its writer sends the frame before the socket closes
	}
	_, _ = c.flush()
	c.teardown()
}

// prepare readies an upgraded connection for the poller. Every connection
// leaves net.Conn here: the socket is duplicated and the original closed,
// so the connection is a bare fd with no netFD, pollDesc or addresses kept
// by Go's net package (~0.6 KiB per idle connection), and still one
// descriptor. A TLS connection keeps its tls.Conn, whose transport now
// works on that fd without blocking. With the portable backend every
// connection keeps its net.Conn instead, served by goroutines (internal/goio).
func (s *Server) prepare(c *conn) error {
	c.lastRead.Store(time.Now().UnixNano())
	if netpoll.Portable {
		c.desc = netpoll.NewDesc(-1, c)
		d := c.desc
		c.gio = goio.New(c.netc, goio.Config{
			Readable: func() { s.poller.Schedule(d, netpoll.Readable) },
			Writable: func() { s.poller.Schedule(d, netpoll.Writable) },
			Group:    &s.wg,
		})
		c.netc = nil
		return nil
	}
	nc := c.netc
	var t *tlsconn.Transport
	if tc, ok := nc.(*tls.Conn); ok {
		if t = tlsconn.Of(tc); t == nil {
			return errNoTransport
		}
		nc = t.NetConn()
	}
	fd, err := detach(nc)
	if err != nil {
		return err
	}
	if t != nil {
		t.Attach(fd)
		c.tls = t
	}
	c.netc, c.fd = nil, fd
	c.desc = netpoll.NewDesc(fd, c)
	return nil
}

// detach returns a duplicate of nc's socket and closes nc. O_NONBLOCK,
// set by Go on the original, belongs to the open file description the
// duplicate shares: no fcntl needed.
func detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("bridge: connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = dupCloexec(int(f)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	_ = nc.Close()
	return fd, nil
}

// start lets events reach a registered connection. Its hello and any
// bytes that came with the handshake are handled by the first event; over
// TLS that event also reads, since records that arrived with the
// handshake may sit in tls.Conn, where epoll cannot see them.
func (s *Server) start(c *conn) error {
	if c.gio != nil {
		c.gio.Start()
	} else if err := s.poller.Add(c.desc); err != nil {
		return err
	}
	ev := evStart
	if c.tls != nil {
		ev |= netpoll.Readable
	}
	s.poller.Schedule(c.desc, ev)
	return nil
}

// upgrade runs the WebSocket handshake on the request head of n bytes in
// br, refusing it with the right HTTP status when needed.
func (s *Server) upgrade(netc net.Conn, br *bufio.Reader, n int, secure bool) (*conn, error) {
	var c *conn
	admitting := false
	u := wsframe.Upgrader{
		Deflate: s.cfg.Compression,
		Secure:  secure,
		Accept: func(hr *wsframe.Request) error {
			admitting = true // admit counts its own refusals
			var err error
			c, err = s.admit(netc.RemoteAddr(), hr)
			if err != nil {
				return err
			}
			c.netc = netc
			return nil
		},
	}
	// The response is collected and written once, together with the
	// hello: one write(2) per handshake instead of two.
	out, deflate, err := u.Upgrade((*wsframe.GetBuffer())[:0], io.LimitReader(br, int64(n)))
	defer func() { wsframe.PutBuffer(&out) }()
	var rej *ws.ConnectionRejectedError
	if err != nil && !admitting && errors.As(err, &rej) {
		// gobwas refused the request itself (bad version, missing key…).
		s.refused(netc.RemoteAddr(), metrics.RefusedBadRequest, rej.StatusCode(), strings.TrimSpace(rej.Error()))
	}
	var hello []byte
	if err == nil && c.raw == nil {
		hello = s.helloFrame(c)
		out = append(out, hello...)
	}
	if err == nil && c.raw != nil && c.raw.sub != "" {
		// Raw mode with sub: the 101 must mean the subscription is live,
		// as ok does on /ws. It waits at the head of the write queue
		// while adopt subscribes, and goes out with the first event;
		// messages delivered meanwhile queue behind it.
		c.wbuf = wsframe.GetBuffer()
		*c.wbuf = append(*c.wbuf, out...)
		c.headRemain = len(out) // not a frame: frame boundaries start after it
	} else if _, werr := netc.Write(out); err == nil {
		err = werr
	}
	if err == nil && hello != nil {
		s.metrics.Sent(metrics.OutHello, 1, len(hello))
	}
	if err != nil {
		if c != nil {
			s.slots.Release(c.remote.Addr()) // admitted, but writing the 101 failed
		}
		return nil, err
	}
	if deflate {
		c.deflate = true
		c.asm.Configure(s.cfg.MaxPayload, true)
	}
	if br.Buffered() > 0 {
		// The client did not wait for our 101: keep what it sent.
		c.in = make([]byte, br.Buffered())
		_, _ = io.ReadFull(br, c.in)
	}
	return c, nil
}

func reject(status int, reason string) error {
	return ws.RejectConnectionError(ws.RejectionStatus(status), ws.RejectionReason(reason+"\n"))
}

func writeStatus(netc net.Conn, status int, body, header string) {
	_, _ = io.WriteString(netc, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\n"+
		header+"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

// prefixConn replays bytes already read during the peek. release, called
// once when the connection is closed or taken over by an upgrade, frees
// its place under MaxHandshakes.
type prefixConn struct {
	net.Conn
	pre     []byte
	release func()
	once    sync.Once
}

func (c *prefixConn) Close() error {
	c.done()
	return c.Conn.Close()
}

// done releases the connection's place; idempotent.
func (c *prefixConn) done() {
	if c.release != nil {
		c.once.Do(c.release)
	}
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// connListener feeds plain HTTP connections to an http.Server.
type connListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }
