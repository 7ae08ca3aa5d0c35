package wsframe

import (
	"testing"

	"github.com/gobwas/ws"
)

func TestFrameHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		b := AppendFrameHeader(nil, ws.OpText, n)
		if got := FrameLen(b); got != len(b)+n {
			t.Errorf("FrameLen(header of %d) = %d, want %d", n, got, len(b)+n)
		}
		if b[0] != 0x80|byte(ws.OpText) || b[1]&0x80 != 0 {
			t.Errorf("header of %d = %x: want FIN, text, unmasked", n, b)
		}
	}
}

func TestAppendClose(t *testing.T) {
	b := AppendClose(nil, ErrInvalidUTF8)
	want := append([]byte{0x88, byte(2 + len(ErrInvalidUTF8.Reason)), 0x03, 0xef}, ErrInvalidUTF8.Reason...)
	if string(b) != string(want) {
		t.Fatalf("appendClose = %x, want %x", b, want)
	}
}
