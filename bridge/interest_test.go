package bridge

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// oldFrame is a subscriber's frame of m as it was built before the shared
// tail: the whole envelope (or raw payload) framed, then compressed alone.
func oldFrame(sb *sub, m *nats.Msg) []byte {
	var f []byte
	if sb.c.raw != nil {
		op := ws.OpBinary
		if utf8.Valid(m.Data) {
			op = ws.OpText
		}
		f = wsframe.AppendFrame(nil, op, m.Data)
	} else {
		f = wire.AppendMsgFrame(nil, sb.id, m.Subject, wire.AppendBody(nil, m.Data, m.Header, m.Reply), 0)
	}
	if sb.c.compress(len(m.Data)) {
		f = wsframe.AppendDeflated(nil, f)
	}
	return f
}

// decodeFrame returns the opcode and the payload of the server frame f,
// inflated with compress/flate and the RFC 7692 §7.2.2 tail when RSV1 is
// set, and whether it was.
func decodeFrame(t *testing.T, f []byte) (ws.OpCode, []byte, bool) {
	t.Helper()
	r := bytes.NewReader(f)
	h, err := ws.ReadHeader(r)
	if err != nil || !h.Fin || h.Masked || h.Length != int64(r.Len()) {
		t.Fatalf("header %+v, %d bytes after it: %v", h, r.Len(), err)
	}
	p, _ := io.ReadAll(r)
	if h.Rsv1() {
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
		if p, err = io.ReadAll(fr); err != nil {
			t.Fatalf("inflate: %v", err)
		}
	}
	return h.OpCode, p, h.Rsv1()
}

// TestFrameCache: for every kind of subscriber (envelope or raw, plain or
// compressed, shared or distinct sid) and every kind of message, the frame
// decodes to exactly the one built whole, compressed when that was.
func TestFrameCache(t *testing.T) {
	s := &Server{}
	s.cfg.CompressionMin = 64
	big := `{"text":"` + strings.Repeat("hello ", 100) + `"}`
	msgs := map[string]*nats.Msg{
		"small json": {Subject: "a.b", Data: []byte(`{"x":1}`)},
		"big json":   {Subject: "a.b", Data: []byte(big)},
		"bytes":      {Subject: "a.b", Data: append([]byte{0xff, 0}, big...)},
		"empty":      {Subject: "a.b"},
		"headers":    {Subject: "a.b", Data: []byte(big), Header: nats.Header{"Trace": {"abc"}}, Reply: "svc.reply.1"},
		"64 KiB":     {Subject: "a.b", Data: []byte(`"` + strings.Repeat("abcdefgh", 8<<10) + `"`)},
	}
	var subs []*sub
	for _, deflate := range []bool{false, true} {
		for _, id := range []string{"s1", "s1", "0c8f2a4e-4b1d-4e8a-9c3f-2d5e6a7b8c9d", `q"\κ`, strings.Repeat("long", 16)} {
			subs = append(subs, &sub{c: &conn{s: s, deflate: deflate}, id: id, pre: wire.AppendMsgPrefix(nil, id)})
		}
		subs = append(subs, &sub{c: &conn{s: s, deflate: deflate, raw: &rawMode{sub: "a.b"}}})
	}
	var fc frameCache
	for name, m := range msgs {
		t.Run(name, func(t *testing.T) {
			for round := range 2 { // the second message reuses the cache
				for i, sb := range subs {
					want := oldFrame(sb, m)
					wop, wp, wz := decodeFrame(t, want)
					op, p, z := decodeFrame(t, fc.frame(sb, m))
					if op != wop || !bytes.Equal(p, wp) {
						t.Fatalf("round %d, sub %d (%q, raw %v): op %v %.80q…, want op %v %.80q…", round, i, sb.id, sb.c.raw != nil, op, p, wop, wp)
					}
					if z != wz {
						t.Errorf("round %d, sub %d: compressed %v, want %v", round, i, z, wz)
					}
				}
				fc.reset()
			}
		})
	}
}

// TestDeflateOncePerMessage: a message fanned out to many compressing
// clients with distinct ids is compressed once: every frame ends with the
// same compressed bytes, and the cache holds one message's worth.
func TestDeflateOncePerMessage(t *testing.T) {
	s := &Server{}
	s.cfg.CompressionMin = 16
	var fc frameCache
	m := &nats.Msg{Subject: "z", Data: []byte(`{"text":"` + strings.Repeat("hello ", 100) + `"}`)}
	var last *byte
	for i := range 200 {
		c := &conn{s: s, deflate: true}
		id := fmt.Sprintf("sub-%d", i)
		f := fc.frame(&sub{c: c, id: id, pre: wire.AppendMsgPrefix(nil, id)}, m)
		if f[0]&0x40 == 0 { // RSV1
			t.Fatal("frame not compressed")
		}
		if i > 0 && &f[len(f)-1] != last {
			t.Fatal("a receiver got a freshly compressed message")
		}
		last = &f[len(f)-1]
	}
	if r := fc.retained(); r > 4<<10 {
		t.Fatalf("cache holds %d bytes for a %d-byte message", r, len(m.Data))
	}
}
