package bridge

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// closeError ends a connection with a WebSocket close code and a reason
// that is sent to the peer (RFC 6455 §7.4). It is the one type every
// protocol failure becomes; see closeCodes for the table of reasons.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string {
	return "bridge: close " + strconv.Itoa(int(e.code)) + ": " + e.reason
}

var (
	errUnmasked        = &closeError{ws.StatusProtocolError, "unmasked client frame"}
	errReservedBits    = &closeError{ws.StatusProtocolError, "reserved bits set"}
	errReservedOpCode  = &closeError{ws.StatusProtocolError, "reserved opcode"}
	errControlTooLong  = &closeError{ws.StatusProtocolError, "control frame too long"}
	errControlFragment = &closeError{ws.StatusProtocolError, "fragmented control frame"}
	errUnexpectedCont  = &closeError{ws.StatusProtocolError, "continuation without a started message"}
	errExpectedCont    = &closeError{ws.StatusProtocolError, "data frame inside a fragmented message"}
	errBadLength       = &closeError{ws.StatusProtocolError, "invalid payload length"}
	errCloseLength     = &closeError{ws.StatusProtocolError, "invalid close payload"}
	errCloseCode       = &closeError{ws.StatusProtocolError, "invalid close code"}
	errInvalidUTF8     = &closeError{ws.StatusInvalidFramePayloadData, "invalid utf-8"}
	errTooBig          = &closeError{ws.StatusMessageTooBig, "message too big"}
)

// assembler turns a byte stream from a client into complete messages and
// control frames, incrementally: it can be fed any split of the stream, one
// byte at a time included, and never blocks or reads on its own. It
// enforces RFC 6455 §5 framing rules, incremental UTF-8 validation of text
// (§8.1) and the message size limit, which it checks against the
// assembled length before buffering any payload.
//
// An idle assembler holds no buffer. It is not safe for concurrent use.
type assembler struct {
	maxPayload int64
	// extended allows RSV1 on the first frame of a data message
	// (permessage-deflate, RFC 7692).
	extended bool

	hdr     [ws.MaxHeaderSize]byte
	hn      int // bytes of hdr filled
	inFrame bool
	h       ws.Header
	pos     int64 // payload bytes of the current frame consumed

	op      ws.OpCode // opcode of the message being assembled; 0 when none
	rsv     byte      // RSV bits of its first frame
	msg     *[]byte   // assembled fragments, pooled; nil when none
	checked int       // bytes of msg known to be valid UTF-8
	ctl     []byte    // payload of the current control frame
	done    bool      // a close frame was received: ignore the rest
	err     error     // the first error: the stream is unusable past it
}

// sink receives a complete message or control frame. p is valid only until
// sink returns. rsv carries the RSV bits of the message's first frame.
type sink func(op ws.OpCode, rsv byte, p []byte) error

// feed consumes all of p, which it may modify in place (unmasking). It calls
// fn for every complete message and control frame and stops at the first
// error, which is either a *closeError or fn's own. Once it has returned an
// error it delivers nothing more and returns that error again.
func (a *assembler) feed(p []byte, fn sink) error {
	if a.err == nil {
		a.err = a.consume(p, fn)
	}
	return a.err
}

func (a *assembler) consume(p []byte, fn sink) error {
	for len(p) > 0 && !a.done {
		if !a.inFrame {
			n, err := a.readHeader(p)
			p = p[n:]
			if err != nil {
				return err
			}
			if !a.inFrame {
				return nil // need more header bytes
			}
			if a.h.Length == 0 {
				if err := a.endFrame(nil, fn); err != nil {
					return err
				}
			}
			continue
		}
		k := int64(len(p))
		if rest := a.h.Length - a.pos; k > rest {
			k = rest
		}
		chunk := p[:k:k]
		p = p[k:]
		ws.Cipher(chunk, a.h.Mask, int(a.pos))
		whole := a.pos == 0 && k == a.h.Length
		a.pos += k
		if a.h.OpCode.IsControl() {
			if whole {
				if err := a.endFrame(chunk, fn); err != nil {
					return err
				}
				continue
			}
			a.ctl = append(a.ctl, chunk...)
		} else {
			if whole && a.h.Fin && a.msg == nil {
				// Common case: the whole message in one read, no copy.
				if err := a.endFrame(chunk, fn); err != nil {
					return err
				}
				continue
			}
			if a.msg == nil {
				a.msg = getBuf()
			}
			*a.msg = append(*a.msg, chunk...)
			if a.op == ws.OpText && a.rsv == 0 {
				n, ok := utf8Prefix((*a.msg)[a.checked:])
				if !ok {
					return errInvalidUTF8
				}
				a.checked += n
			}
		}
		if a.pos == a.h.Length {
			if err := a.endFrame(nil, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// readHeader copies header bytes from p until the header is complete, then
// parses and checks it. It returns how many bytes of p it used.
func (a *assembler) readHeader(p []byte) (int, error) {
	used := 0
	need := 2
	for {
		if a.hn >= 2 {
			need = 2 + 4 // masked, as every client frame must be
			switch a.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
			if a.hdr[1]&0x80 == 0 {
				return used, errUnmasked // checked early: a length is never trusted without a mask
			}
		}
		if a.hn == need {
			break
		}
		if used == len(p) {
			return used, nil
		}
		c := copy(a.hdr[a.hn:need], p[used:])
		a.hn += c
		used += c
	}
	b := a.hdr[:a.hn]
	a.hn = 0
	h := ws.Header{
		Fin:    b[0]&0x80 != 0,
		Rsv:    (b[0] >> 4) & 0x7,
		OpCode: ws.OpCode(b[0] & 0x0f),
		Masked: true,
	}
	var length uint64
	switch l := b[1] & 0x7f; l {
	case 126:
		length = uint64(binary.BigEndian.Uint16(b[2:4]))
		b = b[4:]
	case 127:
		length = binary.BigEndian.Uint64(b[2:10])
		b = b[10:]
	default:
		length = uint64(l)
		b = b[2:]
	}
	copy(h.Mask[:], b)
	if length > 1<<63-1 {
		return used, errBadLength
	}
	h.Length = int64(length)
	if err := a.check(h); err != nil {
		return used, err
	}
	a.h = h
	a.pos = 0
	a.inFrame = true
	if startsMessage(h.OpCode) {
		a.op, a.rsv = h.OpCode, h.Rsv
	}
	return used, nil
}

func (a *assembler) check(h ws.Header) error {
	switch {
	case h.OpCode.IsReserved():
		return errReservedOpCode
	case h.OpCode.IsControl() && !h.Fin:
		return errControlFragment
	case h.OpCode.IsControl() && h.Length > ws.MaxControlFramePayloadSize:
		return errControlTooLong
	case h.Rsv != 0 && !(a.extended && h.Rsv == 0x4 && startsMessage(h.OpCode)):
		// Only RSV1, only with a negotiated extension, only on a
		// message's first frame (RFC 7692 §6).
		return errReservedBits
	case h.OpCode == ws.OpContinuation && a.op == 0:
		return errUnexpectedCont
	case startsMessage(h.OpCode) && a.op != 0:
		return errExpectedCont
	}
	if !h.OpCode.IsControl() {
		var have int64
		if a.msg != nil {
			have = int64(len(*a.msg))
		}
		if h.Length > a.maxPayload-have {
			return errTooBig
		}
	}
	return nil
}

// startsMessage reports whether op opens a data message. Unlike
// ws.OpCode.IsData it is false for continuation frames.
func startsMessage(op ws.OpCode) bool { return op == ws.OpText || op == ws.OpBinary }

// endFrame finishes the current frame. whole, when not nil, is the entire
// unfragmented payload still in the caller's buffer.
func (a *assembler) endFrame(whole []byte, fn sink) error {
	a.inFrame = false
	h := a.h
	if h.OpCode.IsControl() {
		p := whole
		if p == nil {
			p = a.ctl
		}
		a.ctl = nil
		if h.OpCode == ws.OpClose {
			if err := checkClose(p); err != nil {
				return err
			}
			a.done = true
		}
		return fn(h.OpCode, 0, p)
	}
	if !h.Fin {
		return nil
	}
	op, rsv := a.op, a.rsv
	a.op, a.rsv = 0, 0
	if whole != nil {
		if op == ws.OpText && rsv == 0 && !utf8.Valid(whole) {
			return errInvalidUTF8
		}
		return fn(op, rsv, whole)
	}
	var p []byte
	if a.msg != nil {
		p = *a.msg
	}
	if op == ws.OpText && rsv == 0 && a.checked != len(p) {
		return errInvalidUTF8
	}
	err := fn(op, rsv, p)
	a.release()
	return err
}

// release returns the message buffer to its pool.
func (a *assembler) release() {
	if a.msg != nil {
		putBuf(a.msg)
		a.msg = nil
	}
	a.checked = 0
	a.ctl = nil
}

// checkClose validates a close frame's payload (RFC 6455 §5.5.1, §7.4).
func checkClose(p []byte) error {
	switch {
	case len(p) == 0:
		return nil
	case len(p) == 1:
		return errCloseLength
	}
	if !validCloseCode(ws.StatusCode(binary.BigEndian.Uint16(p))) {
		return errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return errInvalidUTF8
	}
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame:
// the codes RFC 6455 §7.4.1 defines for the wire, the ones IANA registered
// since (1012–1014), and the registered and private ranges 3000–4999.
// 1004–1006 and 1015 must never be sent.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
