package bridge

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsbridge/netpoll"
)

// TLS connections cannot stay on the epoll path: crypto/tls reads whole
// records and keeps decrypted bytes epoll cannot see, so a readiness-driven
// reader could leave a message stranded in tls.Conn's buffer forever. Each
// TLS connection therefore gets a reader and a writer goroutine that do
// blocking I/O and hand bytes to and from the same worker-driven protocol
// code through two small buffers. This costs two goroutine stacks and
// tls.Conn's record buffers per connection (see docs/OPERATIONS.md); plain
// connections, typically behind a TLS-terminating load balancer, keep the
// zero-goroutine path.

const (
	tlsReadSize = 16 << 10 // one TLS record
	tlsOutMax   = 64 << 10 // bytes the writer goroutine holds before EAGAIN
	tlsWriteTTL = 30 * time.Second
	// tlsLinger bounds how long a closed connection's writer keeps
	// writing what was queued before it (the close frame above all).
	tlsLinger = 2 * time.Second
)

// tlsIO adapts a tls.Conn to the conn's non-blocking read/write contract:
// read and write return EAGAIN when they would block, and the goroutines
// schedule Readable/Writable on the connection's Desc when that changes.
type tlsIO struct {
	tc   *tls.Conn
	s    *Server
	desc *netpoll.Desc

	mu           sync.Mutex
	in           []byte // decrypted bytes not yet read by the worker
	inErr        error  // the reader's final error (io.EOF included)
	out          []byte // bytes accepted from the worker, not yet written
	outErr       error
	wantWritable bool

	more     chan struct{} // the worker drained in: read again
	kick     chan struct{} // out has bytes
	done     chan struct{}
	closed   atomic.Bool
	started  atomic.Bool
	lingerAt atomic.Int64 // unix nanoseconds; set by close: the last write deadline
}

func newTLSIO(s *Server, tc *tls.Conn, d *netpoll.Desc) *tlsIO {
	t := &tlsIO{tc: tc, s: s, desc: d,
		more: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{})}
	return t
}

// start runs the reader and writer goroutines.
func (t *tlsIO) start() {
	t.started.Store(true)
	t.s.wg.Add(2)
	go t.reader()
	go t.writer()
}

func (t *tlsIO) reader() {
	defer t.s.wg.Done()
	buf := make([]byte, tlsReadSize)
	for {
		n, err := t.tc.Read(buf)
		t.mu.Lock()
		t.in = append(t.in, buf[:n]...)
		t.inErr = err
		t.mu.Unlock()
		t.s.poller.Schedule(t.desc, netpoll.Readable)
		if err != nil {
			return
		}
		select {
		case <-t.more:
		case <-t.done:
			return
		}
	}
}

// writer writes what the worker queued. It owns closing the socket: after
// close it still writes what is queued, within tlsLinger, so the close
// frame reaches the peer, then closes.
func (t *tlsIO) writer() {
	defer t.s.wg.Done()
	defer func() { _ = t.tc.NetConn().Close() }()
	var spare []byte
	for {
		closing := false
		select {
		case <-t.kick:
		case <-t.done:
			closing = true
		}
		for {
			t.mu.Lock()
			data := t.out
			t.out = spare[:0]
			wake := t.wantWritable
			t.wantWritable = false
			t.mu.Unlock()
			if len(data) == 0 {
				spare = data
				break
			}
			_ = t.tc.SetWriteDeadline(time.Now().Add(tlsWriteTTL))
			if at := t.lingerAt.Load(); at != 0 {
				// close ran meanwhile: keep its shorter deadline.
				_ = t.tc.SetWriteDeadline(time.Unix(0, at))
			}
			_, err := t.tc.Write(data)
			spare = data
			if err != nil {
				t.mu.Lock()
				t.outErr = err
				t.mu.Unlock()
				t.s.poller.Schedule(t.desc, netpoll.Writable)
				return
			}
			if wake {
				t.s.poller.Schedule(t.desc, netpoll.Writable)
			}
		}
		if closing {
			return
		}
	}
}

func (t *tlsIO) read(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.in) > 0 {
		n := copy(b, t.in)
		t.in = t.in[n:]
		if len(t.in) == 0 {
			t.in = nil
			if t.inErr == nil {
				select {
				case t.more <- struct{}{}:
				default:
				}
			}
		}
		return n, nil
	}
	if t.inErr != nil {
		return 0, nil // EOF or a failed connection: the caller tears down
	}
	return 0, syscall.EAGAIN
}

func (t *tlsIO) write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.outErr != nil {
		return 0, t.outErr
	}
	room := tlsOutMax - len(t.out)
	if room <= 0 {
		t.wantWritable = true
		return 0, syscall.EAGAIN
	}
	n := min(room, len(b))
	t.out = append(t.out, b[:n]...)
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return n, nil
}

// close ends the connection without a TLS close_notify, which could block
// on a peer that does not read; the WebSocket close frame says goodbye.
// The writer flushes what is queued, that close frame included, within
// tlsLinger and then closes the socket, which also stops the reader.
func (t *tlsIO) close() {
	if t.closed.Swap(true) {
		return
	}
	if !t.started.Load() {
		_ = t.tc.NetConn().Close() // no writer to do it
		return
	}
	at := time.Now().Add(tlsLinger)
	t.lingerAt.Store(at.UnixNano())
	// Cut short a write already blocked on a peer that does not read.
	_ = t.tc.NetConn().SetWriteDeadline(at)
	close(t.done)
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
// presents the latest loaded certificate.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
		NextProtos: []string{"http/1.1"},
	}
}
