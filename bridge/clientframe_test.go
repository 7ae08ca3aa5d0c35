package bridge

import (
	"bytes"
	"encoding/binary"

	"github.com/gobwas/ws"
)

// First header byte of a client frame (RFC 6455 §5.2): FIN, RSV1-3, opcode.
const (
	bFin  = 0x80
	bRsv1 = 0x40
	bRsv2 = 0x20
	bRsv3 = 0x10

	bCont   = byte(ws.OpContinuation)
	bText   = byte(ws.OpText)
	bBinary = byte(ws.OpBinary)
	bClose  = byte(ws.OpClose)
	bPing   = byte(ws.OpPing)
	bPong   = byte(ws.OpPong)
)

// testMask is the masking key of every client frame the tests build; not
// zero, so a frame that is not unmasked shows.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientHeader returns the header of a masked client frame announcing n
// payload bytes, in the shortest length encoding.
func clientHeader(b0 byte, n uint64) []byte {
	b := []byte{b0}
	switch {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	return append(b, testMask[:]...)
}

// clientFrame returns a complete masked client frame carrying p.
func clientFrame(b0 byte, p []byte) []byte {
	b := clientHeader(b0, uint64(len(p)))
	off := len(b)
	b = append(b, p...)
	for i := range p {
		b[off+i] ^= testMask[i%4]
	}
	return b
}

// unmaskedFrame returns a client frame without a mask: a violation.
func unmaskedFrame(b0 byte, p []byte) []byte {
	return append([]byte{b0, byte(len(p))}, p...)
}

// closePayload returns a close frame body: code, then reason.
func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
