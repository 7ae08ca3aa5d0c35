package wsframe

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"wsbridge/internal/wsframe/wsframetest"
)

// chunksOf cuts stream into reads whose lengths cycle through sizes (a
// zero size means one byte), so the fuzzer chooses the split points.
func chunksOf(stream, sizes []byte) [][]byte {
	if len(sizes) == 0 {
		return [][]byte{stream}
	}
	var out [][]byte
	for i := 0; len(stream) > 0; i++ {
		n := min(max(int(sizes[i%len(sizes)]), 1), len(stream))
		out = append(out, stream[:n])
		stream = stream[n:]
	}
	return out
}

// FuzzAssembler feeds an arbitrary stream whole and split where the fuzzer
// says: both must deliver the same (op, payload) sequence and fail with
// the same error, no message may exceed maxPayload, and an assembler that
// failed delivers nothing more.
func FuzzAssembler(f *testing.F) {
	for _, tc := range assemblerCases() {
		if len(tc.stream) > 4096 {
			continue
		}
		mp := uint16(min(tc.maxPayload, 1<<16-1))
		if tc.maxPayload == 0 {
			mp = 1<<16 - 1
		}
		f.Add([]byte{1}, tc.stream, mp, tc.extended)
		f.Add([]byte{3, 7, 2}, tc.stream, mp, tc.extended)
	}
	// The conformance cases too, with any text as their messages.
	text := func(tag string, n int) []byte {
		b := []byte("<text message " + tag + ">")
		return append(b, bytes.Repeat([]byte{' '}, max(n-len(b), 0))...)
	}
	for _, tc := range wsframetest.Cases(text) {
		if len(tc.Send) <= 4096 {
			f.Add([]byte{5, 1, 9}, tc.Send, uint16(min(tc.MaxPayload, 1<<16-1)), tc.Deflate)
		}
	}
	f.Fuzz(func(t *testing.T, sizes, stream []byte, maxPayload uint16, extended bool) {
		newAsm := func() *Assembler { return &Assembler{maxPayload: int64(maxPayload), extended: extended} }
		whole, werr := feedChunks(newAsm(), [][]byte{stream})
		a := newAsm()
		split, serr := feedChunks(a, chunksOf(stream, sizes))
		if !slices.Equal(whole, split) {
			t.Fatalf("whole delivered %v, split %v", whole, split)
		}
		if !errors.Is(serr, werr) || !errors.Is(werr, serr) {
			t.Fatalf("whole failed with %v, split with %v", werr, serr)
		}
		for _, ev := range whole {
			if ev.op.IsControl() {
				if len(ev.p) > ws.MaxControlFramePayloadSize {
					t.Fatalf("control frame of %d bytes delivered", len(ev.p))
				}
				continue
			}
			if int64(len(ev.p)) > int64(maxPayload) {
				t.Fatalf("message of %d bytes delivered, max %d", len(ev.p), maxPayload)
			}
			if ev.op == ws.OpText && ev.rsv == 0 && !utf8.ValidString(ev.p) {
				t.Fatalf("invalid UTF-8 text delivered: %q", ev.p)
			}
		}
		if serr != nil {
			more, err := feedChunks(a, [][]byte{textFrame("more")})
			if len(more) > 0 || err != serr {
				t.Fatalf("after %v: delivered %v, err %v", serr, more, err)
			}
		}
	})
}

// FuzzUTF8Prefix compares utf8Prefix with its reference, including on
// every prefix, as an incrementally received message would be checked.
func FuzzUTF8Prefix(f *testing.F) {
	for _, s := range utf8Samples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		for i := 0; i <= len(p) && i < 64; i++ {
			checkUTF8Prefix(t, p[:i])
		}
		checkUTF8Prefix(t, p)
	})
}
