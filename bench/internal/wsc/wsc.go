// Package wsc is a minimal WebSocket client for load generation. It speaks
// three dialects: wsbridge's JSON protocol (/ws), wsbridge's raw mode
// (/ws/raw) and the NATS text protocol over nats-server's native WebSocket
// listener. It owns framing and protocol parsing only; callers own
// goroutines. A Conn is read by one goroutine; its write methods are safe
// for concurrent use.
//
// It trades generality for cost: a 4 KiB read buffer that grows only for
// larger frames, no extensions, fragments of JSON and raw messages are not
// reassembled, and client frames are masked with the all-zero key (valid
// per RFC 6455 §5.3 framing; the server still runs its unmasking).
package wsc

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Dialect is the protocol spoken on a connection.
type Dialect int

const (
	JSON   Dialect = iota // wsbridge /ws JSON envelopes
	Raw                   // wsbridge /ws/raw: one frame per message
	Native                // NATS text protocol over nats-server's WebSocket
)

func (d Dialect) String() string {
	return [...]string{"json", "raw", "native"}[d]
}

// Kind classifies what Next returns.
type Kind int

const (
	Hello Kind = iota + 1 // wsbridge hello, NATS INFO
	Ack                   // wsbridge ok, NATS PONG
	Msg                   // a delivery
	Err                   // wsbridge err, NATS -ERR
)

// ErrClosed is returned by Next after the server sent a close frame.
var ErrClosed = errors.New("wsc: server closed the connection")

const initialBuf = 4 << 10

// Conn is one client WebSocket connection.
type Conn struct {
	d   Dialect
	nc  net.Conn
	buf []byte
	r   int // start of unread bytes in buf
	w   int // end of unread bytes in buf

	pend []byte // Native: protocol bytes not yet parsed
	pr   int    // Native: start of unparsed bytes in pend

	wmu sync.Mutex
}

// TLS returns the connection's TLS state; ok is false over plain TCP.
func (c *Conn) TLS() (st tls.ConnectionState, ok bool) {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return st, false
}

// Dial connects to addr from laddr (nil: any), over TLS with tlsCfg when
// it is not nil, upgrades with a GET of target ("/ws", "/ws/raw?sub=x" or
// "/") and returns once the server's 101 arrived, all within timeout.
func Dial(d Dialect, laddr *net.TCPAddr, addr, target string, timeout time.Duration, tlsCfg *tls.Config) (*Conn, error) {
	dl := net.Dialer{Timeout: timeout, LocalAddr: laddr}
	nc, err := dl.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if tlsCfg != nil {
		tc := tls.Client(nc, tlsCfg)
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("wsc: TLS handshake: %w", err)
		}
		nc = tc
	}
	c := &Conn{d: d, nc: nc, buf: make([]byte, initialBuf)}
	req := "GET " + target + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("wsc: writing upgrade: %w", err)
	}
	for {
		if i := bytes.Index(c.buf[:c.w], []byte("\r\n\r\n")); i >= 0 {
			if !bytes.HasPrefix(c.buf, []byte("HTTP/1.1 101")) {
				line, _, _ := bytes.Cut(c.buf[:c.w], []byte("\r\n"))
				nc.Close()
				return nil, fmt.Errorf("wsc: upgrade refused: %q", line)
			}
			c.r = i + 4
			break
		}
		if c.w == len(c.buf) {
			nc.Close()
			return nil, errors.New("wsc: upgrade response too large")
		}
		n, err := nc.Read(c.buf[c.w:])
		c.w += n
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("wsc: reading upgrade response: %w", err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// Close closes the TCP connection without a close handshake.
func (c *Conn) Close() error { return c.nc.Close() }

// SetReadDeadline sets the deadline of Next.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Next returns the next protocol event. For Msg, p is the whole JSON
// envelope (JSON), the frame payload (Raw) or the MSG payload (Native);
// it is valid until the next call. Pings, +OK and INFO after the first
// are handled or skipped here.
func (c *Conn) Next() (Kind, []byte, error) {
	if c.d == Native {
		return c.nextNative()
	}
	for {
		op, p, err := c.frame()
		if err != nil {
			return 0, nil, err
		}
		if op > 2 {
			continue
		}
		if c.d == Raw {
			return Msg, p, nil
		}
		switch {
		case bytes.HasPrefix(p, []byte(`{"op":"msg"`)):
			return Msg, p, nil
		case bytes.HasPrefix(p, []byte(`{"op":"ok"`)):
			return Ack, p, nil
		case bytes.HasPrefix(p, []byte(`{"op":"hello"`)):
			return Hello, p, nil
		case bytes.HasPrefix(p, []byte(`{"op":"err"`)):
			return Err, p, nil
		}
	}
}

// frame returns the next data frame's opcode and payload, answering pings.
func (c *Conn) frame() (op byte, p []byte, err error) {
	for {
		need := 2
		if avail := c.buf[c.r:c.w]; len(avail) >= 2 {
			hl, n := 2, int(avail[1]&0x7f)
			switch n {
			case 126:
				hl = 4
			case 127:
				hl = 10
			}
			mask := 0
			if avail[1]&0x80 != 0 {
				mask = 4 // servers must not mask; tolerate it anyway
			}
			need = hl + mask
			if len(avail) >= need {
				switch hl {
				case 4:
					n = int(avail[2])<<8 | int(avail[3])
				case 10:
					n = 0
					for _, b := range avail[2:10] {
						n = n<<8 | int(b)
					}
				}
				hl += mask
				need = hl + n
				if len(avail) >= need {
					c.r += need
					op, p = avail[0]&0x0f, avail[hl:need]
					switch op {
					case 8:
						return 0, nil, ErrClosed
					case 9:
						if err := c.write(10, p); err != nil {
							return 0, nil, err
						}
						continue
					case 10:
						continue
					}
					return op, p, nil
				}
			}
		}
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		if need > len(c.buf) {
			nb := make([]byte, max(need, 2*len(c.buf)))
			copy(nb, c.buf[:c.w])
			c.buf = nb
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if n == 0 && err != nil {
			return 0, nil, err
		}
	}
}

// nextNative parses the NATS protocol from the concatenated frame payloads.
func (c *Conn) nextNative() (Kind, []byte, error) {
	for {
		rest := c.pend[c.pr:]
		if i := bytes.Index(rest, []byte("\r\n")); i >= 0 {
			line := rest[:i]
			switch {
			case bytes.HasPrefix(line, []byte("MSG ")):
				sp := bytes.LastIndexByte(line, ' ')
				size, err := strconv.Atoi(string(line[sp+1:]))
				if err != nil {
					return 0, nil, fmt.Errorf("wsc: malformed %q", line)
				}
				if len(rest) >= i+2+size+2 {
					c.pr += i + 2 + size + 2
					return Msg, rest[i+2 : i+2+size], nil
				}
			case bytes.Equal(line, []byte("PING")):
				c.pr += i + 2
				if err := c.write(1, []byte("PONG\r\n")); err != nil {
					return 0, nil, err
				}
				continue
			case bytes.Equal(line, []byte("PONG")):
				c.pr += i + 2
				return Ack, line, nil
			case bytes.HasPrefix(line, []byte("INFO ")):
				c.pr += i + 2
				return Hello, line, nil
			case bytes.HasPrefix(line, []byte("-ERR")):
				c.pr += i + 2
				return Err, line, nil
			default: // +OK and anything unknown
				c.pr += i + 2
				continue
			}
		}
		if c.pr > 0 {
			c.pend = c.pend[:copy(c.pend, c.pend[c.pr:])]
			c.pr = 0
		}
		_, p, err := c.frame()
		if err != nil {
			return 0, nil, err
		}
		c.pend = append(c.pend, p...)
	}
}

// Start runs the dialect's session start after Dial. JSON waits for the
// hello and, with a subject, sends a sub with id "s1". Native waits for
// INFO and sends CONNECT, a SUB with sid 1 when subject is set, and PING.
// Raw does nothing (the subscription is in the URL). When Start sent a sub
// or PING, the caller waits for Ack: the subscription is then live.
func (c *Conn) Start(subject string) (wantAck bool, err error) {
	switch c.d {
	case JSON:
		if err := c.expect(Hello); err != nil {
			return false, err
		}
		if subject == "" {
			return false, nil
		}
		return true, c.WriteText([]byte(`{"op":"sub","id":"s1","subject":"` + subject + `"}`))
	case Native:
		if err := c.expect(Hello); err != nil {
			return false, err
		}
		cmd := `CONNECT {"verbose":false,"pedantic":false,"protocol":1}` + "\r\n"
		if subject != "" {
			cmd += "SUB " + subject + " 1\r\n"
		}
		return true, c.WriteText([]byte(cmd + "PING\r\n"))
	}
	return false, nil
}

func (c *Conn) expect(want Kind) error {
	k, p, err := c.Next()
	if err != nil {
		return err
	}
	if k != want {
		return fmt.Errorf("wsc: unexpected %q", p)
	}
	return nil
}

// WaitAck reads until an Ack, failing on Err.
func (c *Conn) WaitAck() error { return c.expect(Ack) }

// WriteText sends p as one masked text frame.
func (c *Conn) WriteText(p []byte) error { return c.write(1, p) }

// WriteFrames writes bytes built with AppendPub as they are.
func (c *Conn) WriteFrames(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *Conn) write(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(appendFrame(make([]byte, 0, len(p)+14), op, p))
	return err
}

// AppendPub appends one masked text frame that publishes payload (a JSON
// value) to subject in dialect d. Raw ignores subject: the URL names it.
func AppendPub(b []byte, d Dialect, subject string, payload []byte) []byte {
	switch d {
	case JSON:
		n := len(`{"op":"pub","subject":"","data":}`) + len(subject) + len(payload)
		b = appendHeader(b, 1, n)
		b = append(b, `{"op":"pub","subject":"`...)
		b = append(b, subject...)
		b = append(b, `","data":`...)
		b = append(b, payload...)
		return append(b, '}')
	case Native:
		size := strconv.Itoa(len(payload))
		b = appendHeader(b, 1, len("PUB  \r\n\r\n")+len(subject)+len(size)+len(payload))
		b = append(b, "PUB "...)
		b = append(b, subject...)
		b = append(b, ' ')
		b = append(b, size...)
		b = append(b, "\r\n"...)
		b = append(b, payload...)
		return append(b, "\r\n"...)
	}
	return appendFrame(b, 1, payload)
}

func appendFrame(b []byte, op byte, p []byte) []byte {
	return append(appendHeader(b, op, len(p)), p...)
}

// appendHeader appends a final frame header with the zero masking key.
func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0, 0, 0, 0)
}
