package wsframe

import "github.com/gobwas/ws"

// Server frames are built by appending to a caller's buffer, so the hot
// path allocates nothing. Every frame is final and unmasked (RFC 6455
// §5.1: a server never masks).

// AppendFrame appends a complete frame carrying p.
func AppendFrame(b []byte, op ws.OpCode, p []byte) []byte {
	b = AppendFrameHeader(b, op, len(p))
	return append(b, p...)
}

// AppendFrameHeader appends the header of a frame whose payload is n
// bytes (RFC 6455 §5.2).
func AppendFrameHeader(b []byte, op ws.OpCode, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return b
}

// FrameLen returns the total length of the server frame at the start of b,
// which must hold at least its header.
func FrameLen(b []byte) int {
	switch l := b[1] & 0x7f; l {
	case 126:
		return 4 + (int(b[2])<<8 | int(b[3]))
	case 127:
		n := 0
		for _, c := range b[2:10] {
			n = n<<8 | int(c)
		}
		return 10 + n
	default:
		return 2 + int(l)
	}
}

// AppendClose appends a close frame with e's code and reason.
func AppendClose(b []byte, e *CloseError) []byte {
	b = AppendFrameHeader(b, ws.OpClose, 2+len(e.Reason))
	b = append(b, byte(e.Code>>8), byte(e.Code))
	return append(b, e.Reason...)
}
