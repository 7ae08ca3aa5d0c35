//go:build linux && !portable

package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// The transport's own tests need a bare socket, which only the epoll
// build attaches (the portable backend keeps each connection's net.Conn).

// wait bounds any single expected event; a test that passes never waits
// for it.
const wait = 10 * time.Second

// tlsPair is a handshaken server tls.Conn on a Transport, attached to its
// non-blocking socket, and the client.
type tlsPair struct {
	t      *Transport
	client *tls.Conn
	cc     *captureConn // under client
	raw    net.Conn     // the client's TCP connection, under cc
}

// newTLSPair handshakes over loopback, then attaches the server side as
// bridge's prepare does.
func newTLSPair(t testing.TB, maxVersion uint16) *tlsPair {
	t.Helper()
	scfg, ccfg := testTLSConfigs(t)
	scfg.MaxVersion = maxVersion
	ccfg.DynamicRecordSizingDisabled = true // one Write, one record
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc := &captureConn{Conn: raw}
	client := tls.Client(cc, ccfg)
	tc := Server(nc, scfg)
	errc := make(chan error, 1)
	go func() { errc <- tc.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	tr := Of(tc)
	fd := detach(t, tr.NetConn())
	tr.Attach(fd)
	t.Cleanup(func() { tr.Release(); syscall.Close(fd) })
	return &tlsPair{t: tr, client: client, cc: cc, raw: raw}
}

// detach returns a duplicate of nc's socket and closes nc. The duplicate
// shares the original's O_NONBLOCK.
func detach(t testing.TB, nc net.Conn) int {
	t.Helper()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) { fd, derr = syscall.Dup(int(f)) }); err != nil {
		t.Fatal(err)
	}
	if derr != nil {
		t.Fatal(derr)
	}
	_ = nc.Close()
	return fd
}

// readUntil reads from the server tls.Conn, waiting for the socket while
// it would block, until want bytes came.
func (p *tlsPair) readUntil(t *testing.T, want int) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, 16<<10)
	deadline := time.Now().Add(wait)
	for len(got) < want {
		n, err := p.t.Conn().Read(buf)
		got = append(got, buf[:n]...)
		switch {
		case errors.Is(err, ErrWouldBlock):
			if time.Now().After(deadline) {
				t.Fatalf("read %d of %d bytes", len(got), want)
			}
			tick()
		case err != nil:
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
	}
	return got
}

// tick paces a poll loop.
func tick() { time.Sleep(time.Millisecond) }

// sealed returns the record(s) the client's tls.Conn writes for msg,
// without sending them.
func sealed(t *testing.T, client *tls.Conn, cc *captureConn, msg []byte) []byte {
	t.Helper()
	cc.capture = true
	defer func() { cc.capture = false }()
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	out := cc.buf
	cc.buf = nil
	return out
}

// captureConn diverts writes into buf while capture is set.
type captureConn struct {
	net.Conn
	capture bool
	buf     []byte
}

func (c *captureConn) Write(p []byte) (int, error) {
	if c.capture {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestTLSWouldBlockReadKeepsConnUsable: a read that finds half a record
// answers ErrWouldBlock, and the same tls.Conn then reads the record once
// the rest arrives: crypto/tls does not keep a temporary error
// (crypto/tls/conn.go:633, :678).
func TestTLSWouldBlockReadKeepsConnUsable(t *testing.T) {
	for _, v := range []struct {
		name string
		max  uint16
	}{{"TLS 1.3", tls.VersionTLS13}, {"TLS 1.2", tls.VersionTLS12}} {
		t.Run(v.name, func(t *testing.T) {
			p := newTLSPair(t, v.max)
			buf := make([]byte, 16<<10)
			if _, err := p.t.Conn().Read(buf); !errors.Is(err, ErrWouldBlock) {
				t.Fatalf("read on an empty socket: %v, want ErrWouldBlock", err)
			}
			msg := bytes.Repeat([]byte("half a record "), 500)
			rec := sealed(t, p.client, p.cc, msg)
			if _, err := p.raw.Write(rec[:len(rec)/2]); err != nil {
				t.Fatal(err)
			}
			waitUnread(t, p.t.fd, len(rec)/2)
			for range 3 {
				if n, err := p.t.Conn().Read(buf); !errors.Is(err, ErrWouldBlock) || n != 0 {
					t.Fatalf("read of half a record: %d, %v; want 0, ErrWouldBlock", n, err)
				}
			}
			if _, err := p.raw.Write(rec[len(rec)/2:]); err != nil {
				t.Fatal(err)
			}
			if got := p.readUntil(t, len(msg)); !bytes.Equal(got, msg) {
				t.Fatalf("read %d bytes, not the message", len(got))
			}
			// And the connection still works both ways.
			if _, err := p.t.Conn().Write([]byte("reply")); err != nil {
				t.Fatal(err)
			}
			if _, err := syscall.Write(p.t.fd, p.t.Pending()); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 5)
			_ = p.client.SetReadDeadline(time.Now().Add(wait))
			if _, err := io.ReadFull(p.client, got); err != nil || string(got) != "reply" {
				t.Fatalf("client read %q, %v", got, err)
			}
		})
	}
}

// TestTLSWriteUnderFullSocketQueues: with a peer that does not read, the
// socket fills, yet tls.Conn.Write never fails: the records wait in the
// transport's queue, and once the peer reads, every byte arrives intact.
func TestTLSWriteUnderFullSocketQueues(t *testing.T) {
	p := newTLSPair(t, 0)
	if err := syscall.SetsockoptInt(p.t.fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB
	const writes = 32                                      // 2 MiB: far beyond both socket buffers
	full := false
	for i := range writes {
		if _, err := p.t.Conn().Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		// Flush as the worker does, without waiting for room.
		for b := p.t.Pending(); len(b) > 0 && !full; b = p.t.Pending() {
			n, err := syscall.Write(p.t.fd, b)
			if err == syscall.EAGAIN {
				full = true
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p.t.Wrote(n)
		}
	}
	if !full {
		t.Fatal("the socket never filled")
	}
	if q := len(p.t.Pending()); q < len(msg) {
		t.Fatalf("%d bytes queued under a full socket, want ≥ %d", q, len(msg))
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, writes*len(msg))
		_ = p.client.SetReadDeadline(time.Now().Add(wait))
		n, _ := io.ReadFull(p.client, b)
		got <- b[:n]
	}()
	for b := p.t.Pending(); len(b) > 0; b = p.t.Pending() {
		n, err := syscall.Write(p.t.fd, b)
		if err == syscall.EAGAIN {
			tick()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		p.t.Wrote(n)
	}
	b := <-got
	if len(b) != writes*len(msg) || !bytes.Equal(b, bytes.Repeat(msg, writes)) {
		t.Fatalf("client read %d bytes, want %d intact", len(b), writes*len(msg))
	}
}

// TestTLSIdleHoldsNoBuffers: after the handshake and after a read turn, an
// idle connection's tls.Conn holds no input buffer; a partial record is
// kept in an exactly sized copy and completes on the next turn.
func TestTLSIdleHoldsNoBuffers(t *testing.T) {
	p := newTLSPair(t, 0)
	raw, _, hand, ok := p.t.buffers()
	if !ok {
		t.Fatal("buffers out of reach")
	}
	check := func(when string, rawCap int) {
		t.Helper()
		if raw.Cap() > rawCap || hand.Cap() != 0 || p.t.rbuf != nil || p.t.ct != nil {
			t.Fatalf("%s: rawInput %d bytes (max %d), hand %d, lent %v, queued %v", when, raw.Cap(), rawCap, hand.Cap(), p.t.rbuf != nil, p.t.ct != nil)
		}
	}
	check("after the handshake", 0)

	msg := bytes.Repeat([]byte{'x'}, 10_000)
	if _, err := p.client.Write(msg); err != nil {
		t.Fatal(err)
	}
	p.t.BeginRead()
	p.readUntil(t, len(msg))
	p.t.EndRead()
	check("after a read turn", 0)
}

// TestTLSPartialRecordAcrossTurns: half a record left at the end of a read
// turn is kept, in a small copy, and completed on the next turn.
func TestTLSPartialRecordAcrossTurns(t *testing.T) {
	p := newTLSPair(t, 0)
	msg := bytes.Repeat([]byte{'y'}, 3000)
	rec := sealed(t, p.client, p.cc, msg)
	if _, err := p.raw.Write(rec[:1000]); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	p.t.BeginRead()
	waitUnread(t, p.t.fd, 1000)
	if _, err := p.t.Conn().Read(buf); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("read of a partial record: %v", err)
	}
	p.t.EndRead()
	raw, _, _, _ := p.t.buffers()
	if raw.Len() != 1000 || raw.Cap() > 2048 {
		t.Fatalf("kept %d bytes in %d, want the 1000 pending in a small copy", raw.Len(), raw.Cap())
	}
	if _, err := p.raw.Write(rec[1000:]); err != nil {
		t.Fatal(err)
	}
	p.t.BeginRead()
	got := p.readUntil(t, len(msg))
	p.t.EndRead()
	if !bytes.Equal(got, msg) {
		t.Fatal("the record did not survive the turns")
	}
}

// TestTLSBuffersDroppedAfterUnlentTurn: bytes the handshake goroutine left
// decrypted in tls.Conn keep the first turn from lending; once that turn
// has drained them, crypto/tls's own buffers are dropped all the same.
func TestTLSBuffersDroppedAfterUnlentTurn(t *testing.T) {
	p := newTLSPair(t, 0)
	msg := bytes.Repeat([]byte{'z'}, 100)
	if _, err := p.client.Write(msg); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, p.t.fd, len(msg)) // the whole record
	// As the handshake's reader may: part of a record.
	first := make([]byte, 10)
	if n, err := p.t.Conn().Read(first); n != len(first) || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	raw, in, _, _ := p.t.buffers()
	if in.Len() == 0 {
		t.Fatalf("read %d bytes and left none decrypted: the case is not set up", len(first))
	}
	p.t.BeginRead()
	if p.t.rbuf != nil {
		t.Fatal("lent while tls.Conn held decrypted bytes")
	}
	rest := p.readUntil(t, len(msg)-len(first))
	p.t.EndRead()
	if got := append(first, rest...); !bytes.Equal(got, msg) {
		t.Fatalf("read %q", got)
	}
	if raw.Cap() != 0 {
		t.Fatalf("rawInput keeps %d bytes after the turn", raw.Cap())
	}
}

// TestTLSBuffersKeptWithoutLending: with lending off (buffersEnabled, for
// measuring what it saves), a read turn leaves crypto/tls's rawInput as
// large as the record it read.
func TestTLSBuffersKeptWithoutLending(t *testing.T) {
	p := newTLSPair(t, 0)
	buffersEnabled = false
	t.Cleanup(func() { buffersEnabled = true })
	msg := bytes.Repeat([]byte{'w'}, 10_000)
	if _, err := p.client.Write(msg); err != nil {
		t.Fatal(err)
	}
	p.t.BeginRead()
	p.readUntil(t, len(msg))
	p.t.EndRead()
	buffersEnabled = true
	raw, _, _, _ := p.t.buffers()
	if p.t.rbuf != nil || raw.Cap() < len(msg) {
		t.Fatalf("rawInput %d bytes, lent %v; want crypto/tls's own, ≥ %d", raw.Cap(), p.t.rbuf != nil, len(msg))
	}
}

// TestTLSDrained: after a read that took the socket's last bytes and left
// tls.Conn nothing, Drained lets a read turn end without another read
// (which would only find EAGAIN); while tls.Conn still holds a record, or
// half of one, it does not.
func TestTLSDrained(t *testing.T) {
	p := newTLSPair(t, 0)
	buf := make([]byte, 16<<10)
	one, two := []byte("first record"), []byte("second record")
	recs := append(sealed(t, p.client, p.cc, one), sealed(t, p.client, p.cc, two)...)
	if _, err := p.raw.Write(recs); err != nil {
		t.Fatal(err)
	}
	p.t.BeginRead()
	defer p.t.EndRead()
	waitUnread(t, p.t.fd, len(recs))
	if n, err := p.t.Conn().Read(buf); err != nil || !bytes.Equal(buf[:n], one) {
		t.Fatalf("first read: %q, %v", buf[:n], err)
	}
	if p.t.Drained() {
		t.Fatal("Drained with the second record still in tls.Conn")
	}
	if n, err := p.t.Conn().Read(buf); err != nil || !bytes.Equal(buf[:n], two) {
		t.Fatalf("second read: %q, %v", buf[:n], err)
	}
	if !p.t.Drained() {
		t.Fatal("not Drained after the socket's last record was read")
	}
	// A new turn starts undrained: its event may be for bytes that came
	// after the last turn's read(2).
	p.t.EndRead()
	p.t.BeginRead()
	if p.t.Drained() {
		t.Fatal("Drained at the start of a turn, from an earlier turn's read")
	}
	half := sealed(t, p.client, p.cc, []byte("a third record, sent in halves"))
	if _, err := p.raw.Write(half[:10]); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, p.t.fd, 10)
	if _, err := p.t.Conn().Read(buf); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("read of half a record: %v", err)
	}
	if p.t.Drained() {
		t.Fatal("Drained with half a record pending")
	}
}
