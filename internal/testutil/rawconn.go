package testutil

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The Sec-WebSocket-Key every upgrade request of this package sends, and
// the Sec-WebSocket-Accept a server must answer it with: the example of
// RFC 6455 §1.3.
const (
	UpgradeKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	UpgradeAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// maxFrame bounds the payload TryReadFrame allocates for one frame.
const maxFrame = 64 << 20

// RawConn is a WebSocket client written by hand on one TCP (or TLS)
// connection: no goroutine, no library between the test and the bytes.
// Every read and write has a deadline of Wait (QuietUntil takes its own).
// The connection is closed at cleanup.
type RawConn struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// Dial opens a TCP connection to addr without sending anything. rcvbuf,
// when not zero, is the socket's receive buffer in bytes, set before
// connecting so the window the client advertises stays small and a client
// that does not read pushes back on the server quickly.
func Dial(t testing.TB, addr string, rcvbuf int) *RawConn {
	t.Helper()
	d := net.Dialer{Timeout: Wait}
	if rcvbuf > 0 {
		d.Control = recvBuffer(rcvbuf)
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	return NewRawConn(t, conn)
}

// NewRawConn wraps an established connection, a TLS one say, and closes
// it at cleanup.
func NewRawConn(t testing.TB, conn net.Conn) *RawConn {
	t.Helper()
	t.Cleanup(func() { _ = conn.Close() })
	return &RawConn{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// DialWS dials addr and completes the opening handshake for path (which
// may carry a query), sending the extra header lines given as
// "Name: value". It fails the test unless the server answers 101 with the
// right Sec-WebSocket-Accept.
func DialWS(t testing.TB, addr, path string, header ...string) *RawConn {
	t.Helper()
	c := Dial(t, addr, 0)
	c.Upgrade(path, header...)
	return c
}

// UpgradeRequest returns an opening handshake (RFC 6455 §4.1) for path
// with UpgradeKey, followed by the extra header lines given as
// "Name: value".
func UpgradeRequest(path string, header ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + UpgradeKey + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// NetConn returns the underlying connection, for what RawConn does not
// wrap: a half close, a deadline of the test's own.
func (c *RawConn) NetConn() net.Conn { return c.conn }

// Close closes the connection at once, without a close frame.
func (c *RawConn) Close() error { return c.conn.Close() }

// Upgrade sends UpgradeRequest(path, header...) and checks the answer as
// ExpectUpgrade does; it returns the 101 response.
func (c *RawConn) Upgrade(path string, header ...string) *http.Response {
	c.t.Helper()
	c.Write([]byte(UpgradeRequest(path, header...)))
	return c.ExpectUpgrade()
}

// ExpectUpgrade reads the handshake response and fails the test unless it
// is a 101 with Sec-WebSocket-Accept matching UpgradeKey.
func (c *RawConn) ExpectUpgrade() *http.Response {
	c.t.Helper()
	resp := c.ReadResponse()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.t.Fatalf("handshake: %s %q, want 101", resp.Status, body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != UpgradeAccept {
		c.t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, UpgradeAccept)
	}
	return resp
}

// ReadResponse reads one HTTP response, whatever its status. The caller
// reads its body (and should, before the next response on the
// connection); a 101 has none.
func (c *RawConn) ReadResponse() *http.Response {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(Wait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("reading an HTTP response: %v", err)
	}
	return resp
}

// Write writes b, frames or anything else, and fails the test if it
// cannot.
func (c *RawConn) Write(b []byte) {
	c.t.Helper()
	if err := c.TryWrite(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// TryWrite writes b and returns the error, for writes the server may
// refuse by closing. Unlike the other methods it is safe to call from a
// goroutine other than the test's.
func (c *RawConn) TryWrite(b []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(Wait))
	_, err := c.conn.Write(b)
	return err
}

// SendText writes s as one masked, final text frame.
func (c *RawConn) SendText(s string) {
	c.t.Helper()
	c.Write(MaskedFrame(true, ws.OpText, []byte(s)))
}

// Frame is one frame from the server as it came on the wire.
type Frame struct {
	Fin     bool
	Rsv     byte // the RSV bits in place: f.Rsv&Rsv1 != 0 for a compressed message
	Op      ws.OpCode
	Payload []byte
}

// String shows the frame for a failure message, cutting long payloads.
func (f Frame) String() string {
	var flags string
	if !f.Fin {
		flags += " !fin"
	}
	if f.Rsv != 0 {
		flags += fmt.Sprintf(" rsv=%#x", f.Rsv)
	}
	return fmt.Sprintf("{op=%d%s %q}", f.Op, flags, trunc(f.Payload))
}

// plain reports whether f is final and has no RSV bits: what every frame
// of a server that does not fragment and negotiated no extension is.
func (f Frame) plain() bool { return f.Fin && f.Rsv == 0 }

// TryReadFrame reads one server frame. It fails on a masked frame (RFC
// 6455 §5.1) and on one announcing more than 64 MiB, but accepts any
// FIN, RSV bits and opcode: the caller checks them.
func (c *RawConn) TryReadFrame() (Frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(Wait))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return Frame{}, err
	}
	if h[1]&0x80 != 0 {
		return Frame{}, errors.New("masked server frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return Frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return Frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxFrame {
		return Frame{}, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return Frame{}, err
	}
	return Frame{Fin: h[0]&Fin != 0, Rsv: h[0] & (Rsv1 | Rsv2 | Rsv3), Op: ws.OpCode(h[0] & 0x0f), Payload: p}, nil
}

// ReadFrame is TryReadFrame failing the test on an error.
func (c *RawConn) ReadFrame() Frame {
	c.t.Helper()
	f, err := c.TryReadFrame()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// ExpectFrame reads one frame and fails the test unless it is a final
// frame of op without RSV bits carrying exactly payload.
func (c *RawConn) ExpectFrame(op ws.OpCode, payload string) {
	c.t.Helper()
	f := c.ReadFrame()
	if !f.plain() || f.Op != op || string(f.Payload) != payload {
		c.t.Fatalf("got frame %v, want op=%d %q", f, op, trunc([]byte(payload)))
	}
}

// ExpectText reads one frame and fails the test unless it is a final text
// frame without RSV bits whose payload starts with prefix. It returns the
// payload.
func (c *RawConn) ExpectText(prefix string) string {
	c.t.Helper()
	f := c.ReadFrame()
	if !f.plain() || f.Op != ws.OpText || !strings.HasPrefix(string(f.Payload), prefix) {
		c.t.Fatalf("got frame %v, want text starting %q", f, prefix)
	}
	return string(f.Payload)
}

// ExpectClose reads one frame and fails the test unless it is a close
// frame with code and a non-empty UTF-8 reason (RFC 6455 §5.5.1). It
// returns the reason.
func (c *RawConn) ExpectClose(code ws.StatusCode) string {
	c.t.Helper()
	f := c.ReadFrame()
	if !f.plain() || f.Op != ws.OpClose {
		c.t.Fatalf("got frame %v, want a close %d", f, code)
	}
	if len(f.Payload) < 3 {
		c.t.Fatalf("close payload %q: want a code and a reason", f.Payload)
	}
	got, reason := ws.StatusCode(binary.BigEndian.Uint16(f.Payload)), f.Payload[2:]
	if got != code {
		c.t.Fatalf("close code %d (%q), want %d", got, reason, code)
	}
	if !utf8.Valid(reason) {
		c.t.Fatalf("close reason %q is not UTF-8", reason)
	}
	return string(reason)
}

// ExpectEnd reads until the server closes the connection and fails the
// test if anything arrives first, or if the connection is still open
// after Wait. A reset counts as closed.
func (c *RawConn) ExpectEnd() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(Wait))
	b, err := io.ReadAll(c.br)
	if len(b) > 0 {
		c.t.Fatalf("got %d bytes, want the connection to end: %q", len(b), trunc(b))
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}

// FinishClose answers the server's close frame with one carrying code, as
// a client must (RFC 6455 §5.5.1), and waits for the server to close the
// connection as ExpectEnd does. The write may fail: the server need not
// wait for the answer.
func (c *RawConn) FinishClose(code ws.StatusCode) {
	c.t.Helper()
	_ = c.TryWrite(MaskedFrame(true, ws.OpClose, ClosePayload(code, "")))
	c.ExpectEnd()
}

// QuietUntil reports whether nothing at all arrives before deadline. What
// did arrive stays buffered for the next read.
func (c *RawConn) QuietUntil(deadline time.Time) bool {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(deadline)
	_, err := c.br.Peek(1)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trunc cuts p to 200 bytes for a failure message.
func trunc(p []byte) string {
	if len(p) > 200 {
		return string(p[:200]) + fmt.Sprintf("…(%d bytes)", len(p))
	}
	return string(p)
}
