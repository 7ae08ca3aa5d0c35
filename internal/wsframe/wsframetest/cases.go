package wsframetest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/gobwas/ws"
)

// Case is one conformance case: a client's byte stream and what the frame
// layer must make of it, however the stream is split into reads. IDs
// follow the sections of the Autobahn|Testsuite; L.* (limits) and D.*
// (permessage-deflate) are wsbridge's own.
type Case struct {
	ID, Name string
	// MaxPayload is the endpoint's limit on an assembled message, in bytes
	// (after inflating, for a compressed one).
	MaxPayload int64
	// Deflate is set when the case needs permessage-deflate negotiated
	// (RFC 7692), which allows RSV1 on a message's first frame.
	Deflate bool
	// Send is the stream. It may stop in the middle of a frame: a violation
	// must be found as soon as its bytes arrive.
	Send []byte
	// Chunk is how many bytes the end-to-end suite writes at a time; 0
	// means all at once. wsframe's suite feeds it in these chops among
	// others.
	Chunk int
	// Want are the messages and control frames delivered, in order. A close
	// frame is always last: nothing after it is read.
	Want []Frame
	// Fail is the close code the endpoint fails the connection with after
	// Want (RFC 6455 §7.1.7); 0 when Send breaks no rule.
	Fail ws.StatusCode
}

// Frame is a message or a control frame delivered from a case's stream.
type Frame struct {
	Op ws.OpCode
	// Payload is the message's bytes, after inflating when Compressed.
	Payload []byte
	// Compressed is set for a message that arrived with RSV1 (RFC 7692 §6).
	Compressed bool
}

// Close returns the code of the close frame an endpoint sends once it has
// handled Want: Fail when the case breaks a rule; else, when Want ends with
// the peer's close, that close's code echoed (1000 when it has none, RFC
// 6455 §5.5.1), with echo set; else 0, for a connection that stays open.
func (c Case) Close() (code ws.StatusCode, echo bool) {
	if c.Fail != 0 {
		return c.Fail, false
	}
	if n := len(c.Want); n > 0 && c.Want[n-1].Op == ws.OpClose {
		if p := c.Want[n-1].Payload; len(p) >= 2 {
			return ws.StatusCode(binary.BigEndian.Uint16(p)), true
		}
		return ws.StatusNormalClosure, true
	}
	return 0, false
}

// MessageFunc returns the payload of a text message that names tag, for
// the endpoint under test to answer: valid UTF-8 of at least 16 bytes, and
// exactly n bytes when n is at least its shortest length (0 asks for the
// shortest). Each case names its messages with tags of its own, so an
// answer shows which message arrived.
type MessageFunc func(tag string, n int) []byte

// defaultMaxPayload is the limit of the cases that set none: the bridge's
// default, 1 MiB.
const defaultMaxPayload = 1 << 20

// smallMaxPayload is the limit of the L.* cases.
const smallMaxPayload = 4096

// Short names for the first byte of a frame, as the tables write it.
const (
	bCont   = byte(ws.OpContinuation)
	bText   = byte(ws.OpText)
	bBinary = byte(ws.OpBinary)
	bClose  = byte(ws.OpClose)
	bPing   = byte(ws.OpPing)
	bPong   = byte(ws.OpPong)
)

func frame(b0 byte, p []byte) []byte { return ClientFrame(b0, p) }

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func text(p []byte) Frame     { return Frame{Op: ws.OpText, Payload: p} }
func bin(p []byte) Frame      { return Frame{Op: ws.OpBinary, Payload: p} }
func ping(p []byte) Frame     { return Frame{Op: ws.OpPing, Payload: p} }
func pong(p []byte) Frame     { return Frame{Op: ws.OpPong, Payload: p} }
func closed(p []byte) Frame   { return Frame{Op: ws.OpClose, Payload: p} }
func deflated(p []byte) Frame { return Frame{Op: ws.OpText, Payload: p, Compressed: true} }

// deflate compresses p as one message of permessage-deflate without
// context takeover: a sync flush, with its 00 00 ff ff stripped (RFC 7692
// §7.2.1).
func deflate(p []byte) []byte {
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	_, _ = fw.Write(p)
	_ = fw.Flush()
	return bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// invalidUTF8 is Autobahn's "κόσμε" followed by a surrogate (U+D800) and
// "edited".
const invalidUTF8 = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"

// Cases returns the conformance cases, newly built, with text messages
// from msg. The stream of a case that expects a message carries exactly
// that message's bytes, so an endpoint's answer to a message shows it
// arrived intact.
func Cases(msg MessageFunc) []Case {
	all256 := make([]byte, 125)
	for i := range all256 {
		all256[i] = byte(255 - i)
	}
	m := func(tag string) []byte { return msg(tag, 0) }
	// Messages cut into frames at fixed offsets, between or inside code
	// points; MessageFunc promises at least 16 bytes.
	f5, f6, f7 := m("f5"), m("f6"), m("f7")
	kosme := m("κόσμε")
	big := msg("m", smallMaxPayload)
	d2 := msg("d2", 300)
	z2 := deflate(d2)
	d6 := m("d6")
	z6 := deflate(d6)
	d7 := deflate(m("d7"))
	atLimit := msg("d12", defaultMaxPayload)
	cases := []Case{
		// 1 Framing: every length encoding (§5.2).
		{ID: "1.1.1", Name: "text 0 bytes", Send: frame(Fin|bText, nil), Want: []Frame{text(nil)}},
		{ID: "1.1.2", Name: "text 125 bytes", Send: frame(Fin|bText, msg("a", 125)), Want: []Frame{text(msg("a", 125))}},
		{ID: "1.1.3", Name: "text 126 bytes", Send: frame(Fin|bText, msg("b", 126)), Want: []Frame{text(msg("b", 126))}},
		{ID: "1.1.4", Name: "text 127 bytes", Send: frame(Fin|bText, msg("c", 127)), Want: []Frame{text(msg("c", 127))}},
		{ID: "1.1.5", Name: "text 65535 bytes", Send: frame(Fin|bText, msg("d", 65535)), Want: []Frame{text(msg("d", 65535))}},
		{ID: "1.1.6", Name: "text 65536 bytes", Send: frame(Fin|bText, msg("e", 65536)), Want: []Frame{text(msg("e", 65536))}},
		{ID: "1.1.7", Name: "text 1 MiB, the max payload", Send: frame(Fin|bText, msg("f", 1<<20)), Want: []Frame{text(msg("f", 1<<20))}},
		{ID: "1.1.8", Name: "text 65536 bytes in chops of 997", Send: frame(Fin|bText, msg("g", 65536)), Chunk: 997, Want: []Frame{text(msg("g", 65536))}},
		{ID: "1.1.9", Name: "text a byte at a time", Send: frame(Fin|bText, msg("h", 300)), Chunk: 1, Want: []Frame{text(msg("h", 300))}},
		{ID: "1.1.10", Name: "two messages in one write", Send: cat(frame(Fin|bText, m("i")), frame(Fin|bText, m("j"))), Want: []Frame{text(m("i")), text(m("j"))}},
		{ID: "1.2.1", Name: "binary on /ws", Send: frame(Fin|bBinary, []byte{0, 1, 2}), Want: []Frame{bin([]byte{0, 1, 2})}},
		{ID: "1.2.2", Name: "empty binary on /ws", Send: frame(Fin|bBinary, nil), Want: []Frame{bin(nil)}},
		{ID: "1.3.1", Name: "unmasked text", Send: UnmaskedFrame(Fin|bText, m("k")), Fail: ws.StatusProtocolError},
		{ID: "1.3.2", Name: "unmasked ping", Send: UnmaskedFrame(Fin|bPing, nil), Fail: ws.StatusProtocolError},

		// 2 Pings and pongs (§5.5.2, §5.5.3).
		{ID: "2.1", Name: "ping empty", Send: frame(Fin|bPing, nil), Want: []Frame{ping(nil)}},
		{ID: "2.2", Name: "ping text payload", Send: frame(Fin|bPing, []byte("Hello, world!")), Want: []Frame{ping([]byte("Hello, world!"))}},
		{ID: "2.3", Name: "ping binary payload", Send: frame(Fin|bPing, []byte{0, 0xff, 0xfe, 0x80, 0}), Want: []Frame{ping([]byte{0, 0xff, 0xfe, 0x80, 0})}},
		{ID: "2.4", Name: "ping 125 bytes", Send: frame(Fin|bPing, all256), Want: []Frame{ping(all256)}},
		{ID: "2.5", Name: "ping 126 bytes", Send: frame(Fin|bPing, bytes.Repeat([]byte{0xfe}, 126)), Fail: ws.StatusProtocolError},
		{ID: "2.6", Name: "ping 125 bytes a byte at a time", Send: frame(Fin|bPing, all256), Chunk: 1, Want: []Frame{ping(all256)}},
		{ID: "2.7", Name: "unsolicited pong", Send: frame(Fin|bPong, nil), Want: []Frame{pong(nil)}},
		{ID: "2.8", Name: "unsolicited pong with payload", Send: frame(Fin|bPong, []byte("unsolicited")), Want: []Frame{pong([]byte("unsolicited"))}},
		{ID: "2.9", Name: "unsolicited pong then ping", Send: cat(frame(Fin|bPong, []byte("unsolicited")), frame(Fin|bPing, []byte("solicited"))), Want: []Frame{pong([]byte("unsolicited")), ping([]byte("solicited"))}},
		{ID: "2.10", Name: "ten pings", Send: bytes.Repeat(frame(Fin|bPing, []byte("ten")), 10), Want: repeatFrame(ping([]byte("ten")), 10)},
		{ID: "2.11", Name: "ten pings a byte at a time", Send: bytes.Repeat(frame(Fin|bPing, []byte("x")), 3), Chunk: 1, Want: repeatFrame(ping([]byte("x")), 3)},

		// 3 Reserved bits (§5.2): no extension is negotiated.
		{ID: "3.1", Name: "rsv1 on text", Send: frame(Fin|Rsv1|bText, m("r")), Fail: ws.StatusProtocolError},
		{ID: "3.2", Name: "rsv2 after a good message", Send: cat(frame(Fin|bText, m("r2")), frame(Fin|Rsv2|bText, m("r")), frame(Fin|bPing, nil)), Want: []Frame{text(m("r2"))}, Fail: ws.StatusProtocolError},
		{ID: "3.3", Name: "rsv3 byte-wise", Send: frame(Fin|Rsv3|bText, m("r")), Chunk: 1, Fail: ws.StatusProtocolError},
		{ID: "3.4", Name: "rsv1|rsv2 on binary", Send: frame(Fin|Rsv1|Rsv2|bBinary, []byte{1}), Fail: ws.StatusProtocolError},
		{ID: "3.5", Name: "rsv1|rsv3 on ping", Send: frame(Fin|Rsv1|Rsv3|bPing, []byte("x")), Fail: ws.StatusProtocolError},
		{ID: "3.6", Name: "all rsv on close", Send: frame(Fin|Rsv1|Rsv2|Rsv3|bClose, nil), Fail: ws.StatusProtocolError},
		{ID: "3.7", Name: "rsv on a continuation", Send: cat(frame(bText, m("r3")[:6]), frame(Fin|Rsv1|bCont, m("r3")[6:])), Fail: ws.StatusProtocolError},

		// 5 Fragmentation (§5.4).
		{ID: "5.1", Name: "fragmented ping", Send: cat(frame(bPing, []byte("fragment")), frame(Fin|bCont, []byte("ed"))), Fail: ws.StatusProtocolError},
		{ID: "5.2", Name: "fragmented pong", Send: cat(frame(bPong, []byte("fragment")), frame(Fin|bCont, []byte("ed"))), Fail: ws.StatusProtocolError},
		{ID: "5.3", Name: "text in two fragments", Send: Fragments(bText, m("f2"), 2), Want: []Frame{text(m("f2"))}},
		{ID: "5.4", Name: "text in two fragments, byte-wise", Send: Fragments(bText, m("f3"), 2), Chunk: 1, Want: []Frame{text(m("f3"))}},
		{ID: "5.5", Name: "text in one-byte fragments", Send: Fragments(bText, m("f4"), len(m("f4"))), Want: []Frame{text(m("f4"))}},
		{ID: "5.6", Name: "ping between fragments", Send: cat(frame(bText, f5[:9]), frame(Fin|bPing, []byte("between")), frame(Fin|bCont, f5[9:])), Want: []Frame{ping([]byte("between")), text(f5)}},
		{ID: "5.7", Name: "ping between fragments, byte-wise", Send: cat(frame(bText, f6[:9]), frame(Fin|bPing, []byte("between")), frame(Fin|bCont, f6[9:])), Chunk: 1, Want: []Frame{ping([]byte("between")), text(f6)}},
		{ID: "5.8", Name: "pong between fragments", Send: cat(frame(bText, f7[:9]), frame(Fin|bPong, []byte("ignored")), frame(Fin|bCont, f7[9:])), Want: []Frame{pong([]byte("ignored")), text(f7)}},
		{ID: "5.9", Name: "continuation without a message", Send: frame(Fin|bCont, m("c")), Fail: ws.StatusProtocolError},
		{ID: "5.10", Name: "unfinished continuation without a message", Send: frame(bCont, m("c")), Fail: ws.StatusProtocolError},
		{ID: "5.11", Name: "continuation after a finished message", Send: cat(frame(Fin|bText, m("c1")), frame(Fin|bCont, nil)), Want: []Frame{text(m("c1"))}, Fail: ws.StatusProtocolError},
		{ID: "5.12", Name: "zero-length fragments", Send: cat(frame(bText, nil), frame(bCont, m("z")), frame(bCont, nil), frame(Fin|bCont, nil)), Want: []Frame{text(m("z"))}},
		{ID: "5.15", Name: "text inside a fragmented message", Send: cat(frame(bText, m("n")[:6]), frame(Fin|bText, m("n"))), Fail: ws.StatusProtocolError},
		{ID: "5.16", Name: "binary inside a fragmented message", Send: cat(frame(bText, m("n")[:6]), frame(bBinary, nil)), Fail: ws.StatusProtocolError},
		{ID: "5.17", Name: "fragmented binary on /ws", Send: Fragments(bBinary, []byte{1, 2, 3}, 3), Want: []Frame{bin([]byte{1, 2, 3})}},

		// 6 UTF-8 (§8.1): checked incrementally, failing fast.
		{ID: "6.1.1", Name: "empty fragments", Send: cat(frame(bText, nil), frame(bCont, nil), frame(Fin|bCont, nil)), Want: []Frame{text(nil)}},
		{ID: "6.2.1", Name: "valid utf-8", Send: frame(Fin|bText, kosme), Want: []Frame{text(kosme)}},
		{ID: "6.2.2", Name: "valid utf-8 split inside code points", Send: Fragments(bText, kosme, len(kosme)), Want: []Frame{text(kosme)}},
		{ID: "6.2.3", Name: "valid utf-8 byte-wise", Send: frame(Fin|bText, kosme), Chunk: 1, Want: []Frame{text(kosme)}},
		{ID: "6.3.1", Name: "invalid utf-8", Send: frame(Fin|bText, []byte(invalidUTF8)), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.3.2", Name: "invalid utf-8 byte-wise", Send: frame(Fin|bText, []byte(invalidUTF8)), Chunk: 1, Fail: ws.StatusInvalidFramePayloadData},
		// Fail fast: only an unfinished first fragment is sent, so the
		// close can only come from checking it on arrival.
		{ID: "6.4.1", Name: "fail fast on the first fragment", Send: frame(bText, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80")), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.4.2", Name: "fail fast inside a frame", Send: frame(Fin|bText, []byte("ok\xf4\x90\x80\x80 and much more to come"))[:6+4], Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.4.3", Name: "fail fast across fragments", Send: cat(frame(bText, []byte("ok\xf4")), frame(bCont, []byte("\x90"))), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.4.4", Name: "fail fast byte-wise", Send: frame(bText, []byte("ok\xc0")), Chunk: 1, Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.5.1", Name: "truncated code point at the end", Send: frame(Fin|bText, []byte("\xce")), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.5.2", Name: "truncated code point at the end of fragments", Send: cat(frame(bText, []byte("\xce")), frame(Fin|bCont, nil)), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.6.1", Name: "surrogate", Send: frame(Fin|bText, []byte("\xed\xa0\x80")), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "6.6.2", Name: "overlong slash", Send: frame(Fin|bText, []byte("\xc0\xaf")), Fail: ws.StatusInvalidFramePayloadData},

		// 7 Closing (§5.5.1, §7.4).
		{ID: "7.1.1", Name: "close empty", Send: frame(Fin|bClose, nil), Want: []Frame{closed(nil)}},
		{ID: "7.1.2", Name: "close then ping ignored", Send: cat(frame(Fin|bClose, ClosePayload(1000, "")), frame(Fin|bPing, []byte("late"))), Want: []Frame{closed(ClosePayload(1000, ""))}},
		{ID: "7.1.3", Name: "close then text ignored", Send: cat(frame(Fin|bClose, ClosePayload(1000, "")), frame(Fin|bText, m("late"))), Want: []Frame{closed(ClosePayload(1000, ""))}},
		{ID: "7.1.4", Name: "close inside a fragmented message", Send: cat(frame(bText, m("x")[:6]), frame(Fin|bClose, ClosePayload(1000, "")), frame(Fin|bCont, m("x")[6:])), Want: []Frame{closed(ClosePayload(1000, ""))}},
		{ID: "7.1.5", Name: "close then garbage ignored", Send: cat(frame(Fin|bClose, ClosePayload(1000, "")), UnmaskedFrame(0xff, []byte("garbage"))), Want: []Frame{closed(ClosePayload(1000, ""))}},
		{ID: "7.1.6", Name: "close byte-wise", Send: frame(Fin|bClose, ClosePayload(1000, "bye")), Chunk: 1, Want: []Frame{closed(ClosePayload(1000, "bye"))}},
		{ID: "7.3.1", Name: "close with a 1-byte payload", Send: frame(Fin|bClose, []byte{0x03}), Fail: ws.StatusProtocolError},
		{ID: "7.3.2", Name: "close with a code", Send: frame(Fin|bClose, ClosePayload(1000, "")), Want: []Frame{closed(ClosePayload(1000, ""))}},
		{ID: "7.3.3", Name: "close with a reason", Send: frame(Fin|bClose, ClosePayload(1000, "Hello World!")), Want: []Frame{closed(ClosePayload(1000, "Hello World!"))}},
		{ID: "7.3.4", Name: "close with a 123-byte reason", Send: frame(Fin|bClose, ClosePayload(1000, strings.Repeat("*", 123))), Want: []Frame{closed(ClosePayload(1000, strings.Repeat("*", 123)))}},
		{ID: "7.3.5", Name: "close with a 124-byte reason", Send: frame(Fin|bClose, ClosePayload(1000, strings.Repeat("*", 124))), Fail: ws.StatusProtocolError},
		{ID: "7.3.6", Name: "fragmented close", Send: frame(bClose, ClosePayload(1000, "")), Fail: ws.StatusProtocolError},
		{ID: "7.5.1", Name: "close reason not utf-8", Send: frame(Fin|bClose, ClosePayload(1000, invalidUTF8)), Fail: ws.StatusInvalidFramePayloadData},

		// L Limits: measured on the assembled message, before buffering.
		{ID: "L.1", Name: "message at max payload", MaxPayload: smallMaxPayload, Send: frame(Fin|bText, big), Want: []Frame{text(big)}},
		{ID: "L.2", Name: "message over max payload", MaxPayload: smallMaxPayload, Send: frame(Fin|bText, msg("m", smallMaxPayload+1)), Fail: ws.StatusMessageTooBig},
		{ID: "L.3", Name: "fragments each under the limit, over in sum", MaxPayload: smallMaxPayload, Send: Fragments(bText, msg("m", 6000), 3), Fail: ws.StatusMessageTooBig},
		{ID: "L.4", Name: "fragments at the limit in sum", MaxPayload: smallMaxPayload, Send: Fragments(bText, big, 4), Want: []Frame{text(big)}},
		{ID: "L.5", Name: "huge length announced, no payload sent", MaxPayload: smallMaxPayload, Send: ClientHeader(Fin|bText, 1<<40), Fail: ws.StatusMessageTooBig},
		{ID: "L.6", Name: "huge continuation announced, no payload sent", MaxPayload: smallMaxPayload, Send: cat(frame(bText, m("m")[:5]), ClientHeader(Fin|bCont, 1<<40)), Fail: ws.StatusMessageTooBig},
		{ID: "L.7", Name: "length with the top bit set", MaxPayload: smallMaxPayload, Send: ClientHeader(Fin|bText, 1<<63), Fail: ws.StatusProtocolError},
		{ID: "L.8", Name: "control frames do not count", MaxPayload: smallMaxPayload, Send: cat(frame(bText, big[:4000]), frame(Fin|bPing, all256), frame(Fin|bCont, big[4000:])), Want: []Frame{ping(all256), text(big)}},

		// D permessage-deflate (RFC 7692), negotiated without context
		// takeover: RSV1 marks a compressed message on its first frame only,
		// and the limit and UTF-8 apply to what it inflates to.
		{ID: "D.1", Name: "compressed text", Deflate: true, Send: frame(Fin|Rsv1|bText, deflate(m("d1"))), Want: []Frame{deflated(m("d1"))}},
		{ID: "D.2", Name: "compressed text in fragments", Deflate: true, Send: cat(frame(Rsv1|bText, z2[:len(z2)/2]), frame(Fin|bCont, z2[len(z2)/2:])), Want: []Frame{deflated(d2)}},
		{ID: "D.3", Name: "compressed text byte-wise", Deflate: true, Send: frame(Fin|Rsv1|bText, deflate(m("d3"))), Chunk: 1, Want: []Frame{deflated(m("d3"))}},
		{ID: "D.4", Name: "uncompressed text", Deflate: true, Send: frame(Fin|bText, m("d4")), Want: []Frame{text(m("d4"))}},
		{ID: "D.5", Name: "compressed empty text", Deflate: true, Send: frame(Fin|Rsv1|bText, deflate(nil)), Want: []Frame{deflated(nil)}},
		{ID: "D.6", Name: "ping between compressed fragments", Deflate: true, Send: cat(frame(Rsv1|bText, z6[:len(z6)/2]), frame(Fin|bPing, []byte("between")), frame(Fin|bCont, z6[len(z6)/2:])), Want: []Frame{ping([]byte("between")), deflated(d6)}},
		{ID: "D.7", Name: "rsv1 on a continuation", Deflate: true, Send: cat(frame(Rsv1|bText, d7[:len(d7)/2]), frame(Fin|Rsv1|bCont, d7[len(d7)/2:])), Fail: ws.StatusProtocolError},
		{ID: "D.8", Name: "rsv1 on ping", Deflate: true, Send: frame(Fin|Rsv1|bPing, []byte("x")), Fail: ws.StatusProtocolError},
		{ID: "D.9", Name: "rsv2 on text", Deflate: true, Send: frame(Fin|Rsv2|bText, m("d9")), Fail: ws.StatusProtocolError},
		{ID: "D.10", Name: "invalid compressed data", Deflate: true, Send: frame(Fin|Rsv1|bText, []byte{0xff, 0xff, 0xff}), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "D.11", Name: "compressed invalid utf-8", Deflate: true, Send: frame(Fin|Rsv1|bText, deflate([]byte(invalidUTF8))), Fail: ws.StatusInvalidFramePayloadData},
		{ID: "D.12", Name: "compressed, at max payload inflated", Deflate: true, Send: frame(Fin|Rsv1|bText, deflate(atLimit)), Want: []Frame{deflated(atLimit)}},
		{ID: "D.13", Name: "compressed, over max payload inflated", Deflate: true, Send: frame(Fin|Rsv1|bText, deflate(msg("d13", defaultMaxPayload+1))), Fail: ws.StatusMessageTooBig},
	}
	// 4 Reserved opcodes.
	for i, op := range []byte{3, 4, 5, 6, 7} {
		cases = append(cases, Case{ID: fmt.Sprintf("4.1.%d", i+1), Name: fmt.Sprintf("opcode %d", op), Send: frame(Fin|op, []byte("reserved")), Fail: ws.StatusProtocolError})
	}
	for i, op := range []byte{0xb, 0xc, 0xd, 0xe, 0xf} {
		cases = append(cases, Case{ID: fmt.Sprintf("4.2.%d", i+1), Name: fmt.Sprintf("opcode %#x", op), Send: frame(Fin|op, []byte("reserved")), Fail: ws.StatusProtocolError})
	}
	// 7.7 Close codes a peer may send are echoed; 1012–1014 were
	// registered with IANA after RFC 6455 and are valid too.
	for i, code := range []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		p := ClosePayload(code, "reason")
		cases = append(cases, Case{ID: fmt.Sprintf("7.7.%d", i+1), Name: fmt.Sprintf("close code %d", code), Send: frame(Fin|bClose, p), Want: []Frame{closed(p)}})
	}
	// 7.9 Close codes that must never be on the wire.
	for i, code := range []ws.StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, Case{ID: fmt.Sprintf("7.9.%d", i+1), Name: fmt.Sprintf("close code %d", code), Send: frame(Fin|bClose, ClosePayload(code, "")), Fail: ws.StatusProtocolError})
	}
	for i := range cases {
		if cases[i].MaxPayload == 0 {
			cases[i].MaxPayload = defaultMaxPayload
		}
	}
	return cases
}

func repeatFrame(f Frame, n int) []Frame {
	out := make([]Frame, n)
	for i := range out {
		out[i] = f
	}
	return out
}
