package wsframe

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692), always without context takeover in both
// directions: every message is compressed and inflated alone, so an idle
// connection keeps no compression window, and a message fanned out to many
// clients is compressed once (Fanout).

// Negotiation accepts a permessage-deflate offer during one handshake,
// always without context takeover in both directions. An offer it cannot
// accept (an unknown or unsupported parameter, a malformed value) is
// declined, never an error: the 101 then goes out without the extension,
// as RFC 7692 §5 asks.
type Negotiation struct {
	ext wsflate.Extension
}

// Negotiator returns a Negotiation for one handshake.
func Negotiator() *Negotiation {
	return &Negotiation{ext: wsflate.Extension{Parameters: wsflate.Parameters{
		ServerNoContextTakeover: true,
		ClientNoContextTakeover: true,
	}}}
}

// Negotiate is the handshake's extension callback (ws.Upgrader.Negotiate).
func (n *Negotiation) Negotiate(opt httphead.Option) (httphead.Option, error) {
	accept, err := n.ext.Negotiate(opt)
	if err != nil {
		return httphead.Option{}, nil // declined
	}
	return accept, nil
}

// Accepted reports whether the extension was negotiated.
func (n *Negotiation) Accepted() bool {
	_, ok := n.ext.Accepted()
	return ok
}

const rsv1 = 0x40 // the "compressed" bit of a frame's first byte

// Compressed reports whether a message's RSV bits, as a Sink receives
// them, mark it as compressed (RSV1, RFC 7692 §6).
func Compressed(rsv byte) bool { return rsv&0x4 != 0 }

// sliceWriter appends what is written to b.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type deflater struct {
	fw  *flate.Writer
	out sliceWriter
}

var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.fw, _ = flate.NewWriter(&d.out, flate.BestSpeed)
	return d
}}

// AppendDeflated appends to b a compressed copy of the server frame f, or
// f itself when compression does not make it smaller. b and f must not
// overlap, except that b may be f[len(f):].
func AppendDeflated(b, f []byte) []byte {
	hdr := len(f) - payloadLen(f)
	d := deflaters.Get().(*deflater)
	defer deflaters.Put(d)
	d.out.b = d.out.b[:0]
	d.fw.Reset(&d.out)
	_, _ = d.fw.Write(f[hdr:])
	_ = d.fw.Flush()
	// A sync flush ends with 00 00 ff ff, which the receiver adds back
	// (RFC 7692 §7.2.1).
	z := bytes.TrimSuffix(d.out.b, []byte{0, 0, 0xff, 0xff})
	if len(z) >= len(f)-hdr {
		return append(b, f...)
	}
	start := len(b)
	b = AppendFrameHeader(b, ws.OpCode(f[0]&0x0f), len(z))
	b[start] |= rsv1
	return append(b, z...)
}

// payloadLen returns the payload length of the server frame f.
func payloadLen(f []byte) int {
	switch l := f[1] & 0x7f; l {
	case 126, 127:
		return FrameLen(f) - headerLen(l)
	default:
		return int(l)
	}
}

func headerLen(l byte) int {
	switch l {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// inflateTail ends a message's deflate stream: the sync-flush marker the
// sender stripped, then an empty final block so the reader sees EOF.
var inflateTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

type inflater struct {
	fr   io.ReadCloser
	src  bytes.Reader
	tail bytes.Reader
	mr   io.Reader
}

var inflaters = sync.Pool{New: func() any {
	in := &inflater{}
	in.mr = io.MultiReader(&in.src, &in.tail)
	in.fr = flate.NewReader(in.mr)
	return in
}}

// Inflate decompresses a client message into a pooled buffer, failing with
// ErrTooBig (1009) as soon as it would exceed max bytes (decompression
// bombs stop there) and ErrBadDeflate (1007) when the data is not valid
// deflate. The caller returns the buffer with PutBuffer.
func Inflate(p []byte, max int64) (*[]byte, error) {
	in := inflaters.Get().(*inflater)
	defer inflaters.Put(in)
	in.src.Reset(p)
	in.tail.Reset(inflateTail)
	in.mr = io.MultiReader(&in.src, &in.tail)
	if err := in.fr.(flate.Resetter).Reset(in.mr, nil); err != nil {
		return nil, ErrBadDeflate
	}
	out := GetBuffer()
	for {
		b := *out
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := in.fr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		*out = b
		if int64(len(b)) > max {
			PutBuffer(out)
			return nil, ErrTooBig
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			PutBuffer(out)
			return nil, ErrBadDeflate
		}
	}
}
