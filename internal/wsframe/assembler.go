package wsframe

import (
	"encoding/binary"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Assembler turns a byte stream from a client into complete messages and
// control frames, incrementally: it can be fed any split of the stream, one
// byte at a time included, and never blocks or reads on its own. It
// enforces RFC 6455 §5 framing rules, incremental UTF-8 validation of text
// (§8.1) and the message size limit, which it checks against the
// assembled length before buffering any payload.
//
// The zero Assembler refuses every data frame (its limit is 0): call
// Configure first. An idle Assembler holds no buffer. It is not safe for
// concurrent use.
type Assembler struct {
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
	budget  *Budget   // node-wide bound on partial messages; nil: none
	held    int64     // bytes of msg counted against budget
	err     error     // the first error: the stream is unusable past it
}

// Sink receives a complete message or control frame. p is valid only until
// the Sink returns. rsv carries the RSV bits of the message's first frame
// (see Compressed).
type Sink func(op ws.OpCode, rsv byte, p []byte) error

// Configure sets the limit on an assembled message in bytes and whether
// permessage-deflate was negotiated, which allows RSV1 on a message's
// first frame (RFC 7692 §6).
func (a *Assembler) Configure(maxPayload int64, deflate bool) {
	a.maxPayload, a.extended = maxPayload, deflate
}

// Share makes the Assembler count the bytes of its partly assembled
// message against b, shared with other Assemblers; nil counts nothing.
func (a *Assembler) Share(b *Budget) { a.budget = b }

// Done reports that nothing more will be delivered: a close frame arrived,
// or Feed failed, or Stop was called.
func (a *Assembler) Done() bool { return a.done }

// Stop makes the Assembler ignore all further input, for a stream its
// owner gave up on (after a protocol violation or an internal error).
func (a *Assembler) Stop() { a.done = true }

// Feed consumes all of p, which it may modify in place (unmasking). It calls
// fn for every complete message and control frame and stops at the first
// error, which is either a *CloseError or fn's own. Once it has returned an
// error it delivers nothing more and returns that error again.
func (a *Assembler) Feed(p []byte, fn Sink) error {
	if a.err == nil {
		a.err = a.consume(p, fn)
	}
	return a.err
}

func (a *Assembler) consume(p []byte, fn Sink) error {
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
			if a.budget != nil {
				if !a.budget.take(k) {
					return ErrBusy
				}
				a.held += k
			}
			if a.msg == nil {
				a.msg = GetBuffer()
			}
			*a.msg = append(*a.msg, chunk...)
			if a.op == ws.OpText && a.rsv == 0 {
				n, ok := utf8Prefix((*a.msg)[a.checked:])
				if !ok {
					return ErrInvalidUTF8
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
func (a *Assembler) readHeader(p []byte) (int, error) {
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
				return used, ErrUnmasked // checked early: a length is never trusted without a mask
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
		return used, ErrBadLength
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

func (a *Assembler) check(h ws.Header) error {
	switch {
	case h.OpCode.IsReserved():
		return ErrReservedOpCode
	case h.OpCode.IsControl() && !h.Fin:
		return ErrControlFragment
	case h.OpCode.IsControl() && h.Length > ws.MaxControlFramePayloadSize:
		return ErrControlTooLong
	case h.Rsv != 0 && !(a.extended && h.Rsv == 0x4 && startsMessage(h.OpCode)):
		// Only RSV1, only with a negotiated extension, only on a
		// message's first frame (RFC 7692 §6).
		return ErrReservedBits
	case h.OpCode == ws.OpContinuation && a.op == 0:
		return ErrUnexpectedCont
	case startsMessage(h.OpCode) && a.op != 0:
		return ErrExpectedCont
	}
	if !h.OpCode.IsControl() {
		var have int64
		if a.msg != nil {
			have = int64(len(*a.msg))
		}
		if h.Length > a.maxPayload-have {
			return ErrTooBig
		}
	}
	return nil
}

// startsMessage reports whether op opens a data message. Unlike
// ws.OpCode.IsData it is false for continuation frames.
func startsMessage(op ws.OpCode) bool { return op == ws.OpText || op == ws.OpBinary }

// endFrame finishes the current frame. whole, when not nil, is the entire
// unfragmented payload still in the caller's buffer.
func (a *Assembler) endFrame(whole []byte, fn Sink) error {
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
			return ErrInvalidUTF8
		}
		return fn(op, rsv, whole)
	}
	var p []byte
	if a.msg != nil {
		p = *a.msg
	}
	if op == ws.OpText && rsv == 0 && a.checked != len(p) {
		return ErrInvalidUTF8
	}
	err := fn(op, rsv, p)
	a.Release()
	return err
}

// Release returns the buffer of a partly assembled message to its pool.
// The owner calls it when the connection ends.
func (a *Assembler) Release() {
	if a.msg != nil {
		PutBuffer(a.msg)
		a.msg = nil
	}
	if a.held > 0 {
		a.budget.give(a.held)
		a.held = 0
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
		return ErrCloseLength
	}
	if !ValidCloseCode(ws.StatusCode(binary.BigEndian.Uint16(p))) {
		return ErrCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return ErrInvalidUTF8
	}
	return nil
}

// ValidCloseCode reports whether a peer may send code in a close frame:
// the codes RFC 6455 §7.4.1 defines for the wire, the ones IANA registered
// since (1012–1014), and the registered and private ranges 3000–4999.
// 1004–1006 and 1015 must never be sent.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// Budget bounds, in bytes, the partly assembled messages of every
// Assembler that shares it, so that many clients each sending most of a
// large message cannot exhaust memory together (each alone is bounded by
// its maxPayload). A message that would go past it fails with ErrBusy. It
// is safe for concurrent use.
type Budget struct {
	used atomic.Int64
	max  int64
}

// NewBudget returns a Budget of max bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Used is the number of bytes held now.
func (b *Budget) Used() int64 { return b.used.Load() }

func (b *Budget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *Budget) give(n int64) { b.used.Add(-n) }
