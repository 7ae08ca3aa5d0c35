package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsbridge/internal/wsframe"
)

// TLS connections run on the same epoll path as plain ones. The handshake
// runs on the handshake goroutine over the accepted net.Conn; after it the
// tls.Conn is driven by the workers over a non-blocking transport on the
// bare socket (tlsTransport):
//
//   - Read returns errWouldBlock, a temporary net.Error, on EAGAIN. In Go
//     1.26 crypto/tls keeps a read error only when it is not a temporary
//     net.Error (crypto/tls/conn.go:633 and :678, readRecordOrCCS), and a
//     partial record stays in its rawInput, so the next readiness event
//     resumes it. A client that sends half a record and stalls holds no
//     worker.
//   - Write never fails with "would block": crypto/tls makes every write
//     error permanent (conn.go:1248–1255, setErrorLocked). It appends the
//     records to the connection's ciphertext buffer, which flush writes
//     with non-blocking write(2) like a plain connection's queue.
//
// Frames are queued as plaintext, exactly as for a plain connection, so
// push stays a copy under the connection's lock; flush encrypts them on
// the worker, tlsChunk at a time, only when the ciphertext before them is
// written. The bytes in flight are therefore bounded by WriteBuffer plus
// one chunk, and a slow consumer's close frame waits behind at most one
// chunk of ciphertext (records already encrypted cannot be dropped: the
// peer would lose its sequence numbers).

const (
	// tlsChunk is the plaintext encrypted per flush step, one write(2):
	// four records whose ciphertext, with tlsRecordOverhead each, fills a
	// pooled 64 KiB buffer exactly.
	tlsChunk = 64<<10 - 4*tlsRecordOverhead
	// tlsRecordOverhead bounds what a record adds to its plaintext: 5
	// bytes of header, an explicit nonce (8, TLS 1.2 GCM) or content type
	// (1, TLS 1.3), and a 16-byte tag.
	tlsRecordOverhead = 64
	tlsMaxPlaintext   = 16 << 10
	// tlsReadBuf is the pooled buffer lent to tls.Conn as its rawInput
	// while a worker reads. Twice the largest record (TLS 1.2: 5 + 16 KiB
	// + 2 KiB, plus bytes.MinRead) so bytes.Buffer slides a partial record
	// down instead of reallocating.
	tlsReadBuf = 40 << 10
)

// errWouldBlock is the transport's answer when the socket has no bytes.
var errWouldBlock net.Error = wouldBlockError{}

type wouldBlockError struct{}

func (wouldBlockError) Error() string   { return "bridge: read would block" }
func (wouldBlockError) Timeout() bool   { return false }
func (wouldBlockError) Temporary() bool { return true } // keeps tls.Conn usable

var tlsReadPool = sync.Pool{New: func() any { b := make([]byte, 0, tlsReadBuf); return &b }}

// tlsTransport is the net.Conn under a connection's tls.Conn. Until attach
// it passes everything through to the accepted connection (blocking, with
// its deadlines); after attach it works on the bare non-blocking socket,
// owned by the conn, and is used only by the connection's worker.
type tlsTransport struct {
	tc *tls.Conn
	nc net.Conn // the accepted connection, until attach
	fd int      // after attach: the socket; -1 before

	ct   *[]byte // records written by tc, not yet on the socket (pooled); nil when none
	coff int     // bytes of *ct already written
	rbuf *[]byte // pooled buffer lent to tc's rawInput during a read turn
	done bool    // torn down: writes fail
}

// newTLSServer wraps an accepted connection for the server handshake.
func newTLSServer(nc net.Conn, cfg *tls.Config) *tls.Conn {
	t := &tlsTransport{nc: nc, fd: -1}
	t.tc = tls.Server(t, cfg)
	return t.tc
}

// transportOf returns the bridge transport under tc, or nil.
func transportOf(tc *tls.Conn) *tlsTransport {
	t, _ := tc.NetConn().(*tlsTransport)
	return t
}

// attach switches t to the socket fd, which the caller now owns: the
// accepted connection has been closed.
func (t *tlsTransport) attach(fd int) {
	t.nc, t.fd = nil, fd
	t.trim()
}

func (t *tlsTransport) Read(p []byte) (int, error) {
	if t.nc != nil {
		return t.nc.Read(p)
	}
	if t.done {
		return 0, net.ErrClosed
	}
	n, err := readFD(t.fd, p)
	switch {
	case err == syscall.EAGAIN:
		return 0, errWouldBlock
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write queues p after the ciphertext already waiting; it never blocks and
// never fails before teardown. flush writes it.
func (t *tlsTransport) Write(p []byte) (int, error) {
	if t.nc != nil {
		return t.nc.Write(p)
	}
	if t.done {
		return 0, net.ErrClosed
	}
	if t.ct == nil {
		t.ct = wsframe.GetBuffer()
	}
	*t.ct = append(*t.ct, p...)
	return len(p), nil
}

// reserve makes room in the ciphertext buffer for the records of n bytes
// of plaintext, in one allocation: a buffer grown by appends could end up
// too large to go back to the pool.
func (t *tlsTransport) reserve(n int) {
	if t.ct == nil {
		t.ct = wsframe.GetBuffer()
	}
	records := (n + tlsMaxPlaintext - 1) / tlsMaxPlaintext
	*t.ct = slices.Grow(*t.ct, n+records*tlsRecordOverhead)
}

// pending is the ciphertext not yet written.
func (t *tlsTransport) pending() []byte {
	if t.ct == nil {
		return nil
	}
	return (*t.ct)[t.coff:]
}

// wrote records n more bytes of the ciphertext written, releasing the
// buffer when all is.
func (t *tlsTransport) wrote(n int) {
	t.coff += n
	if t.coff == len(*t.ct) {
		wsframe.PutBuffer(t.ct)
		t.ct, t.coff = nil, 0
	}
}

// Close closes the accepted connection before attach; after it the conn
// owns and closes the socket.
func (t *tlsTransport) Close() error {
	if t.nc != nil {
		return t.nc.Close()
	}
	return nil
}

// release frees every buffer t holds; the tls.Conn must not be used after.
func (t *tlsTransport) release() {
	t.done = true
	t.unlend()
	if t.ct != nil {
		wsframe.PutBuffer(t.ct)
		t.ct, t.coff = nil, 0
	}
}

func (t *tlsTransport) LocalAddr() net.Addr {
	if t.nc != nil {
		return t.nc.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (t *tlsTransport) RemoteAddr() net.Addr {
	if t.nc != nil {
		return t.nc.RemoteAddr()
	}
	return &net.TCPAddr{}
}

// Deadlines apply during the handshake only; after attach nothing blocks.
func (t *tlsTransport) SetDeadline(d time.Time) error {
	if t.nc != nil {
		return t.nc.SetDeadline(d)
	}
	return nil
}

func (t *tlsTransport) SetReadDeadline(d time.Time) error {
	if t.nc != nil {
		return t.nc.SetReadDeadline(d)
	}
	return nil
}

func (t *tlsTransport) SetWriteDeadline(d time.Time) error {
	if t.nc != nil {
		return t.nc.SetWriteDeadline(d)
	}
	return nil
}

// CertReloader serves a certificate and key from files and re-reads them
// on Reload, so certificates rotate without a restart.
type CertReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewCertReloader loads the pair once; it fails if they do not load.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the files; on error the previous certificate stays.
func (r *CertReloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("bridge: loading TLS certificate %s: %w", r.certFile, err)
	}
	r.cert.Store(&c)
	return nil
}

// TLSConfig returns a server configuration (TLS 1.2 and later) that always
// presents the latest loaded certificate. Dynamic record sizing is off:
// flush writes a chunk's records in one write(2), so small first records
// would only add overhead.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
		NextProtos:                  []string{"http/1.1"},
		DynamicRecordSizingDisabled: true,
	}
}

// errNoTransport reports a TLS connection the bridge did not wrap.
var errNoTransport = errors.New("bridge: TLS connection without the bridge's transport")
