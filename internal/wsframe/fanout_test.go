package wsframe

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// readServerFrame parses the single server frame f (RFC 6455 §5.2) with
// gobwas/ws and returns its header and payload, inflated when RSV1 is set
// with compress/flate and the RFC 7692 §7.2.2 tail.
func readServerFrame(t *testing.T, f []byte) (ws.Header, []byte) {
	t.Helper()
	r := bytes.NewReader(f)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	if !h.Fin || h.Masked || int64(r.Len()) != h.Length {
		t.Fatalf("header %+v with %d bytes after it", h, r.Len())
	}
	p, _ := io.ReadAll(r)
	if h.Rsv1() {
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(inflateTail)))
		if p, err = io.ReadAll(fr); err != nil {
			t.Fatalf("inflate: %v", err)
		}
	}
	return h, p
}

// oldFrame is how a receiver's frame was built before Fanout: the whole
// payload framed, then compressed on its own.
func oldFrame(op ws.OpCode, payload []byte, deflate bool) []byte {
	f := AppendFrame(nil, op, payload)
	if deflate {
		f = AppendDeflated(nil, f)
	}
	return f
}

func fanoutTails() map[string][]byte {
	rnd := make([]byte, 70000)
	for i := range rnd {
		rnd[i] = byte(rand.Uint32())
	}
	return map[string][]byte{
		"empty":        nil,
		"tiny":         []byte("}"),
		"json":         []byte(`,"subject":"orders.7","data":{"id":7,"items":[1,2,3]}}`),
		"compressible": []byte(`,"subject":"z","data":"` + strings.Repeat("all work and no play ", 300) + `"}`),
		"over 64 KiB":  []byte(strings.Repeat(`{"id":12345,"sku":"ABC-12345"},`, 3000)),
		"random":       rnd[:4000],
		"random 64KiB": rnd,
	}
}

func fanoutPrefixes() map[string][]byte {
	return map[string][]byte{
		"none":           nil,
		"short":          []byte(`{"op":"msg","sid":"s1"`),
		"uuid":           []byte(`{"op":"msg","sid":"0c8f2a4e-4b1d-4e8a-9c3f-2d5e6a7b8c9d"`),
		"past the room":  bytes.Repeat([]byte("p"), 300),
		"over one block": bytes.Repeat([]byte("q"), 70000),
	}
}

// TestFanoutFrames: every frame, plain or compressed, is one valid final
// server frame whose payload (inflated) is exactly the prefix and tail,
// as the frame built whole and compressed alone was.
func TestFanoutFrames(t *testing.T) {
	for tname, tail := range fanoutTails() {
		for pname, prefix := range fanoutPrefixes() {
			for _, deflate := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/deflate=%v", tname, pname, deflate), func(t *testing.T) {
					var f Fanout
					f.SetTail(append(f.Tail(ws.OpText), tail...))
					got := f.Frame(prefix, deflate)
					want := append(append([]byte(nil), prefix...), tail...)
					h, p := readServerFrame(t, got)
					if h.OpCode != ws.OpText || !bytes.Equal(p, want) {
						t.Fatalf("frame op %v carries %.60q…, want %.60q…", h.OpCode, p, want)
					}
					if !deflate && h.Rsv1() {
						t.Fatal("compressed without deflate")
					}
					if _, old := readServerFrame(t, oldFrame(ws.OpText, want, deflate)); !bytes.Equal(p, old) {
						t.Fatal("differs from the frame built whole")
					}
				})
			}
		}
	}
}

// TestFanoutShared: for many receivers with distinct prefixes the tail is
// copied and compressed once: each frame ends with the same bytes in the
// same place, the cache stays near one message's size, and each frame
// decodes (also through gobwas/ws's wsflate reader) to its own prefix.
func TestFanoutShared(t *testing.T) {
	tail := fanoutTails()["compressible"]
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			var f Fanout
			f.SetTail(append(f.Tail(ws.OpText), tail...))
			var last *byte
			for i := range 256 {
				prefix := fmt.Appendf(nil, `{"op":"msg","sid":"%08x-4b1d-4e8a-9c3f-%012x"`, i, i)
				fr := f.Frame(prefix, deflate)
				if deflate != (fr[0]&rsv1 != 0) {
					t.Fatalf("RSV1 = %v, want %v", fr[0]&rsv1 != 0, deflate)
				}
				if i > 0 && &fr[len(fr)-1] != last {
					t.Fatal("a receiver's frame has a tail of its own")
				}
				last = &fr[len(fr)-1]
				fr = bytes.Clone(fr)
				_, p := readServerFrame(t, fr)
				if want := string(prefix) + string(tail); string(p) != want {
					t.Fatalf("receiver %d: %.60q…", i, p)
				}
				if deflate {
					checkWsflate(t, fr, string(prefix)+string(tail))
				}
			}
			if c := f.Cap(); c > 2*len(tail)+2*bufSize {
				t.Fatalf("holds %d bytes for a %d-byte tail and 256 receivers", c, len(tail))
			}
		})
	}
}

// checkWsflate reads the compressed frame fr with gobwas/ws's wsflate
// reader, as its clients would.
func checkWsflate(t *testing.T, fr []byte, want string) {
	t.Helper()
	r := bytes.NewReader(fr)
	h, err := ws.ReadHeader(r)
	if err != nil {
		t.Fatal(err)
	}
	fz := wsflate.NewReader(io.LimitReader(r, h.Length), func(r io.Reader) wsflate.Decompressor { return flate.NewReader(r) })
	p, err := io.ReadAll(fz)
	if err != nil || string(p) != want {
		t.Fatalf("wsflate: %.60q…, %v", p, err)
	}
}

// TestFanoutNotWorthIt: a tail that does not compress goes out plain, as
// a frame built whole would.
func TestFanoutNotWorthIt(t *testing.T) {
	tail := fanoutTails()["random"]
	var f Fanout
	f.SetTail(append(f.Tail(ws.OpBinary), tail...))
	fr := f.Frame([]byte("p"), true)
	if fr[0]&rsv1 != 0 {
		t.Fatal("incompressible tail sent compressed")
	}
	if h, p := readServerFrame(t, fr); h.OpCode != ws.OpBinary || string(p) != "p"+string(tail) {
		t.Fatalf("op %v, payload %.20q…", h.OpCode, p)
	}
}

// TestFanoutReset: a message's frames are gone after Reset, the next
// message starts clean, and buffers a large message grew are released.
func TestFanoutReset(t *testing.T) {
	var f Fanout
	big := fanoutTails()["over 64 KiB"]
	f.SetTail(append(f.Tail(ws.OpText), big...))
	f.Frame([]byte("a"), true)
	if f.Cap() < len(big) {
		t.Fatalf("Cap = %d for a %d-byte message", f.Cap(), len(big))
	}
	f.Reset()
	if f.Started() {
		t.Fatal("started after Reset")
	}
	if c := f.Cap(); c > 2*bufMaxKeep {
		t.Fatalf("Reset kept %d bytes", c)
	}
	for _, tail := range []string{"one}", "two, longer}"} {
		f.SetTail(append(f.Tail(ws.OpText), tail...))
		for _, deflate := range []bool{false, true} {
			if _, p := readServerFrame(t, f.Frame([]byte("x"), deflate)); string(p) != "x"+tail {
				t.Fatalf("after Reset: %q, want %q", p, "x"+tail)
			}
		}
		f.Reset()
	}
}

// FuzzFanout compares Fanout's frames with frames built whole.
func FuzzFanout(f *testing.F) {
	for _, tail := range fanoutTails() {
		f.Add([]byte(`{"op":"msg","sid":"s1"`), tail[:min(len(tail), 5000)], true)
	}
	f.Add([]byte{}, []byte("x"), false)
	f.Fuzz(func(t *testing.T, prefix, tail []byte, deflate bool) {
		var fo Fanout
		fo.SetTail(append(fo.Tail(ws.OpBinary), tail...))
		for range 2 { // the second frame reuses the compressed tail
			_, p := readServerFrame(t, fo.Frame(prefix, deflate))
			if want := append(append([]byte(nil), prefix...), tail...); !bytes.Equal(p, want) {
				t.Fatalf("payload %q, want %q", p, want)
			}
		}
	})
}

func BenchmarkFanoutFrame(b *testing.B) {
	tail := fanoutTails()["compressible"]
	prefix := []byte(`{"op":"msg","sid":"0c8f2a4e-4b1d-4e8a-9c3f-2d5e6a7b8c9d"`)
	for _, deflate := range []bool{false, true} {
		b.Run(fmt.Sprintf("deflate=%v", deflate), func(b *testing.B) {
			var f Fanout
			f.SetTail(append(f.Tail(ws.OpText), tail...))
			f.Frame(prefix, deflate)
			b.ReportAllocs()
			for b.Loop() {
				f.Frame(prefix, deflate)
			}
		})
	}
}
