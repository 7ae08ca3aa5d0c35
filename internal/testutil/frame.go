package testutil

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Bits of a frame's first byte besides the opcode (RFC 6455 §5.2). OR the
// RSV bits into the op given to MaskedFrame to set them; Rsv1 marks a
// compressed message under permessage-deflate (RFC 7692 §6).
const (
	Fin  = 0x80
	Rsv1 = 0x40
	Rsv2 = 0x20
	Rsv3 = 0x10
)

// Mask is the masking key of every frame this package builds. It is fixed
// so that failures reproduce byte for byte, and not zero, so that a server
// that forgets to unmask shows.
var Mask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// MaskedFrame returns a complete client frame (RFC 6455 §5.2) carrying
// payload, masked with Mask, in the shortest length encoding. op may carry
// RSV bits (ws.OpText|Rsv1). The result is newly allocated; payload is not
// modified.
func MaskedFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	b := MaskedHeader(fin, op, uint64(len(payload)))
	off := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[off+i] ^= Mask[i%4]
	}
	return b
}

// MaskedHeader returns only the header of a masked client frame announcing
// n payload bytes, for frames whose payload is never sent (a huge length,
// a length with the top bit set).
func MaskedHeader(fin bool, op ws.OpCode, n uint64) []byte {
	return append(header(fin, op, n, 0x80), Mask[:]...)
}

// UnmaskedFrame returns a client frame without a mask: a protocol
// violation a server must close with 1002 (RFC 6455 §5.1).
func UnmaskedFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	return append(header(fin, op, uint64(len(payload)), 0), payload...)
}

// Fragments cuts payload into n masked frames of one message (RFC 6455
// §5.4): op on the first, continuations after, FIN on the last. Frames may
// be empty when n exceeds len(payload).
func Fragments(op ws.OpCode, payload []byte, n int) []byte {
	var out []byte
	size := (len(payload) + n - 1) / n
	for i := range n {
		lo, hi := min(i*size, len(payload)), min((i+1)*size, len(payload))
		fop := ws.OpContinuation
		if i == 0 {
			fop = op
		}
		out = append(out, MaskedFrame(i == n-1, fop, payload[lo:hi])...)
	}
	return out
}

// ClosePayload returns the body of a close frame (RFC 6455 §5.5.1): code
// in network byte order, then reason. It does not check either, so tests
// can send codes that must never be on the wire.
func ClosePayload(code ws.StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// header returns a frame header up to the masking key; mask is 0x80 for
// a masked frame, 0 otherwise.
func header(fin bool, op ws.OpCode, n uint64, mask byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= Fin
	}
	b := []byte{b0}
	switch {
	case n <= 125:
		return append(b, mask|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, mask|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, mask|127), n)
	}
}
