package wsframe

import (
	"bytes"

	"github.com/gobwas/ws"
)

// Fanout builds the frames of one message sent to many receivers whose
// payloads differ only in a short prefix (an envelope's subscription id):
// the shared tail is copied in once and compressed at most once per
// message, and each receiver's frame then costs its header and prefix,
// however many distinct prefixes there are.
//
// A frame is assembled in place in front of the tail, so the slice Frame
// returns is valid only until the next Frame or Reset: the caller copies it
// (into a write queue) before asking for another. Fanout holds one copy of
// the tail and one of its compressed form, never a frame per receiver.
//
// Compressed frames (RFC 7692) join two deflate streams without shifting
// bits. The tail is compressed alone, as non-final blocks ended by a sync
// flush whose 00 00 ff ff is stripped (§7.2.1); a receiver's payload is a
// non-final stored block carrying its prefix (RFC 1951 §3.2.4), then those
// blocks. A stored block's data starts on a byte boundary and a sync flush
// ends on one, so the prefix block goes first and the compressed blocks
// follow it byte for byte. No context takeover is negotiated, so every
// message is a stream of its own.
//
// A Fanout is not safe for concurrent use. The zero Fanout is ready; Tail
// starts a message.
type Fanout struct {
	op    ws.OpCode
	plain []byte // room for a header and prefix, then the tail
	pOff  int    // where the tail starts in plain; 0 before SetTail
	z     []byte // room for a header and stored block, then the compressed tail
	zOff  int    // where the compressed tail starts; 0 before it is built, -1 when compression does not pay
}

// fanoutRoom is the room kept in front of a tail: a header (at most 10
// bytes), a stored block's 5 and a prefix. A longer prefix makes Frame
// move the tail once, to a buffer with room for it.
const fanoutRoom = 128

// Tail starts a message of opcode op. It returns the buffer the caller
// appends the shared tail to and then hands to SetTail.
func (f *Fanout) Tail(op ws.OpCode) []byte {
	f.op, f.pOff, f.zOff = op, 0, 0
	if cap(f.plain) < fanoutRoom {
		f.plain = make([]byte, fanoutRoom, bufSize)
	}
	return f.plain[:fanoutRoom]
}

// SetTail records the tail: b is Tail's buffer with the tail appended.
// Fanout keeps b until Reset.
func (f *Fanout) SetTail(b []byte) { f.plain, f.pOff = b, fanoutRoom }

// Started reports whether a message's tail has been set since the last
// Reset.
func (f *Fanout) Started() bool { return f.pOff > 0 }

// Frame returns the frame whose payload is prefix followed by the tail,
// compressed with deflate when that makes it smaller. It is valid until
// the next Frame or Reset; prefix is not kept.
func (f *Fanout) Frame(prefix []byte, deflate bool) []byte {
	tail := len(f.plain) - f.pOff
	if deflate {
		if f.zOff == 0 {
			f.compress()
		}
		if f.zOff > 0 && storedLen(len(prefix))+len(f.z)-f.zOff < len(prefix)+tail {
			return f.deflated(prefix)
		}
	}
	n := len(prefix) + tail
	need := headerSize(n) + len(prefix)
	if need > f.pOff {
		f.plain, f.pOff = regrow(f.plain, f.pOff, need)
	}
	start := f.pOff - need
	w := AppendFrameHeader(f.plain[start:start], f.op, n)
	_ = append(w, prefix...) // in place, up to the tail
	return f.plain[start:]
}

// deflated is Frame's compressed variant.
func (f *Fanout) deflated(prefix []byte) []byte {
	sl := storedLen(len(prefix))
	n := sl + len(f.z) - f.zOff
	need := headerSize(n) + sl
	if need > f.zOff {
		f.z, f.zOff = regrow(f.z, f.zOff, need)
	}
	start := f.zOff - need
	w := AppendFrameHeader(f.z[start:start], f.op, n)
	w[0] |= rsv1
	_ = appendStored(w, prefix) // in place, up to the compressed tail
	return f.z[start:]
}

var syncMarker = []byte{0, 0, 0xff, 0xff}

// compress deflates the tail into z, once per message.
func (f *Fanout) compress() {
	tail := f.plain[f.pOff:]
	if cap(f.z) < fanoutRoom {
		f.z = make([]byte, 0, fanoutRoom+len(tail)/2)
	}
	d := deflaters.Get().(*deflater)
	own := d.out.b
	d.out.b = f.z[:fanoutRoom]
	d.fw.Reset(&d.out)
	_, _ = d.fw.Write(tail)
	_ = d.fw.Flush()
	f.z, d.out.b = d.out.b, own
	deflaters.Put(d)
	if !bytes.HasSuffix(f.z[fanoutRoom:], syncMarker) || len(f.z)-fanoutRoom-len(syncMarker) >= len(tail) {
		f.zOff = -1
		return
	}
	f.z, f.zOff = f.z[:len(f.z)-len(syncMarker)], fanoutRoom
}

// Reset ends the message. Buffers that grew beyond 64 KiB for it are
// dropped rather than kept, so one large message does not pin its peak.
func (f *Fanout) Reset() {
	f.pOff, f.zOff = 0, 0
	f.plain, f.z = keep(f.plain), keep(f.z)
}

// Cap is the memory f holds, in bytes.
func (f *Fanout) Cap() int { return cap(f.plain) + cap(f.z) }

func keep(b []byte) []byte {
	if cap(b) > bufMaxKeep {
		return nil
	}
	return b[:0]
}

// regrow moves the data at b[off:] to a new buffer with need bytes of
// room (and some to spare) in front of it.
func regrow(b []byte, off, need int) ([]byte, int) {
	room := need + fanoutRoom
	nb := make([]byte, room, room+len(b)-off)
	return append(nb, b[off:]...), room
}

// appendStored appends p as non-final stored deflate blocks (RFC 1951
// §3.2.4): a byte holding BFINAL=0 and BTYPE=00 (its other bits pad to
// the byte boundary), LEN and its complement NLEN little-endian, then LEN
// bytes of p, at most 65,535 per block.
func appendStored(b, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), 0xffff)
		b = append(b, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		b = append(b, p[:n]...)
		p = p[n:]
	}
	return b
}

// storedLen is len(appendStored(nil, p)) for a p of n bytes.
func storedLen(n int) int { return n + 5*((n+0xfffe)/0xffff) }

// headerSize is the length of the header of a server frame with an n-byte
// payload (RFC 6455 §5.2).
func headerSize(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}
