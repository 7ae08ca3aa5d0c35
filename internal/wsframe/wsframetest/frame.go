package wsframetest

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Bits of a frame's first byte besides the opcode (RFC 6455 §5.2). The
// builders take that byte whole, as the RFC draws it: Fin|Rsv1|0x1 is a
// final, compressed text frame (RFC 7692 §6).
const (
	Fin  = 0x80
	Rsv1 = 0x40
	Rsv2 = 0x20
	Rsv3 = 0x10
)

// Mask is the masking key of every frame this package builds: fixed, so
// that failures reproduce byte for byte, and not zero, so that an endpoint
// that forgets to unmask shows.
var Mask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// ClientFrame returns a complete client frame (RFC 6455 §5.2) whose first
// byte is b0 (FIN, RSV bits, opcode), carrying p masked with Mask, in the
// shortest length encoding. p is not modified.
func ClientFrame(b0 byte, p []byte) []byte {
	b := ClientHeader(b0, uint64(len(p)))
	off := len(b)
	b = append(b, p...)
	for i := range p {
		b[off+i] ^= Mask[i%4]
	}
	return b
}

// ClientHeader returns only the header of a masked client frame announcing
// n payload bytes, for frames whose payload is never sent (a huge length,
// a length with the top bit set).
func ClientHeader(b0 byte, n uint64) []byte {
	return append(header(b0, n, 0x80), Mask[:]...)
}

// UnmaskedFrame returns a client frame without a mask: a violation an
// endpoint must fail the connection for with 1002 (RFC 6455 §5.1).
func UnmaskedFrame(b0 byte, p []byte) []byte {
	return append(header(b0, uint64(len(p)), 0), p...)
}

// Fragments cuts p into n masked frames of one message (RFC 6455 §5.4):
// op on the first, continuations after, FIN on the last. Frames may be
// empty when n exceeds len(p).
func Fragments(op byte, p []byte, n int) []byte {
	var out []byte
	size := (len(p) + n - 1) / n
	for i := range n {
		lo, hi := min(i*size, len(p)), min((i+1)*size, len(p))
		b0 := byte(ws.OpContinuation)
		if i == 0 {
			b0 = op
		}
		if i == n-1 {
			b0 |= Fin
		}
		out = append(out, ClientFrame(b0, p[lo:hi])...)
	}
	return out
}

// ClosePayload returns the body of a close frame (RFC 6455 §5.5.1): code
// in network byte order, then reason. It checks neither, so cases can send
// codes that must never be on the wire.
func ClosePayload(code ws.StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// header returns a frame header up to the masking key; mask is 0x80 for
// a masked frame, 0 otherwise.
func header(b0 byte, n uint64, mask byte) []byte {
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
