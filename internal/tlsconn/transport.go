package tlsconn

import (
	"crypto/tls"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	"wsbridge/internal/wsframe"
)

const (
	// Chunk is the most plaintext to encrypt per Reserve and tls.Conn
	// Write, one write(2) of ciphertext: four records whose ciphertext,
	// with recordOverhead each, fills a pooled 64 KiB buffer exactly.
	Chunk = 64<<10 - 4*recordOverhead
	// recordOverhead bounds what a record adds to its plaintext: 5 bytes
	// of header, an explicit nonce (8, TLS 1.2 GCM) or content type (1,
	// TLS 1.3), and a 16-byte tag.
	recordOverhead = 64
	maxPlaintext   = 16 << 10
	// readBuf is the pooled buffer lent to tls.Conn as its rawInput
	// while a worker reads. Twice the largest record (TLS 1.2: 5 + 16 KiB
	// + 2 KiB, plus bytes.MinRead) so bytes.Buffer slides a partial record
	// down instead of reallocating.
	readBuf = 40 << 10
)

// ErrWouldBlock is what the tls.Conn's Read returns when the socket has
// no bytes now; the connection stays usable.
var ErrWouldBlock net.Error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "tlsconn: read would block" }
func (wouldBlockError) Timeout() bool   { return false }
func (wouldBlockError) Temporary() bool { return true } // keeps tls.Conn usable

var readPool = sync.Pool{New: func() any { b := make([]byte, 0, readBuf); return &b }}

// Transport is the net.Conn under a connection's tls.Conn. Until Attach
// it passes everything through to the accepted connection (blocking, with
// its deadlines); after Attach it works on the bare non-blocking socket,
// owned by the caller, and is used only by the connection's worker.
type Transport struct {
	tc *tls.Conn
	nc net.Conn // the accepted connection, until attach
	fd int      // after attach: the socket; -1 before

	ct   *[]byte // records written by tc, not yet on the socket (pooled); nil when none
	coff int     // bytes of *ct already written
	rbuf *[]byte // pooled buffer lent to tc's rawInput during a read turn
	done bool    // torn down: writes fail
	// drained: the last read(2) under tc left the socket empty (a short
	// read, or EAGAIN).
	drained bool
}

// sock is the Transport as crypto/tls sees it, its net.Conn. It is a
// type of its own so that Transport has no Read or Write a caller could
// mistake for the tls.Conn's.
type sock Transport

// Server wraps an accepted connection for the server handshake. The
// tls.Conn's Close closes nc until Attach.
func Server(nc net.Conn, cfg *tls.Config) *tls.Conn {
	t := &Transport{nc: nc, fd: -1}
	t.tc = tls.Server((*sock)(t), cfg)
	return t.tc
}

// Of returns the Transport under tc, or nil when Server did not make tc.
func Of(tc *tls.Conn) *Transport {
	s, _ := tc.NetConn().(*sock)
	return (*Transport)(s)
}

// Conn is the tls.Conn over t.
func (t *Transport) Conn() *tls.Conn { return t.tc }

// NetConn is the accepted connection under t, or nil after Attach.
func (t *Transport) NetConn() net.Conn { return t.nc }

// Attach switches t to the socket fd, which the caller now owns: the
// accepted connection has been closed.
func (t *Transport) Attach(fd int) {
	t.nc, t.fd = nil, fd
	t.trim()
}

func (s *sock) Read(p []byte) (int, error) {
	if s.nc != nil {
		return s.nc.Read(p)
	}
	if s.done {
		return 0, net.ErrClosed
	}
	n, err := readFD(s.fd, p)
	s.drained = n < len(p)
	switch {
	case err == syscall.EAGAIN:
		return 0, ErrWouldBlock
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write queues p after the ciphertext already waiting; it never blocks and
// never fails before teardown. The caller writes it (Pending).
func (s *sock) Write(p []byte) (int, error) {
	if s.nc != nil {
		return s.nc.Write(p)
	}
	if s.done {
		return 0, net.ErrClosed
	}
	if s.ct == nil {
		s.ct = wsframe.GetBuffer()
	}
	*s.ct = append(*s.ct, p...)
	return len(p), nil
}

// Reserve makes room in the ciphertext buffer for the records of n bytes
// of plaintext, in one allocation: a buffer grown by appends could end up
// too large to go back to the pool. n is at most Chunk.
func (t *Transport) Reserve(n int) {
	if t.ct == nil {
		t.ct = wsframe.GetBuffer()
	}
	records := (n + maxPlaintext - 1) / maxPlaintext
	*t.ct = slices.Grow(*t.ct, n+records*recordOverhead)
}

// Pending is the ciphertext not yet written, nil when there is none. It
// is valid until the next Wrote, tls.Conn call or Release.
func (t *Transport) Pending() []byte {
	if t.ct == nil {
		return nil
	}
	return (*t.ct)[t.coff:]
}

// Wrote records n more bytes of Pending written, releasing the buffer
// when all is.
func (t *Transport) Wrote(n int) {
	t.coff += n
	if t.coff == len(*t.ct) {
		wsframe.PutBuffer(t.ct)
		t.ct, t.coff = nil, 0
	}
}

// Close closes the accepted connection before attach; after it the caller
// owns and closes the socket.
func (s *sock) Close() error {
	if s.nc != nil {
		return s.nc.Close()
	}
	return nil
}

// Release frees every buffer t holds; the tls.Conn must not be used after.
// It does not close the socket.
func (t *Transport) Release() {
	t.done = true
	t.EndRead()
	if t.ct != nil {
		wsframe.PutBuffer(t.ct)
		t.ct, t.coff = nil, 0
	}
}

func (s *sock) LocalAddr() net.Addr {
	if s.nc != nil {
		return s.nc.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (s *sock) RemoteAddr() net.Addr {
	if s.nc != nil {
		return s.nc.RemoteAddr()
	}
	return &net.TCPAddr{}
}

// Deadlines apply during the handshake only; after attach nothing blocks.
func (s *sock) SetDeadline(d time.Time) error {
	if s.nc != nil {
		return s.nc.SetDeadline(d)
	}
	return nil
}

func (s *sock) SetReadDeadline(d time.Time) error {
	if s.nc != nil {
		return s.nc.SetReadDeadline(d)
	}
	return nil
}

func (s *sock) SetWriteDeadline(d time.Time) error {
	if s.nc != nil {
		return s.nc.SetWriteDeadline(d)
	}
	return nil
}
