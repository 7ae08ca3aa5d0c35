package wsframetest

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// pad is a MessageFunc that keeps its promise at the shortest length.
func pad(tag string, n int) []byte {
	b := []byte("<message " + tag + ">")
	if len(b) < 16 {
		b = append(b, strings.Repeat(".", 16-len(b))...)
	}
	if len(b) < n {
		b = append(b, bytes.Repeat([]byte{' '}, n-len(b))...)
	}
	return b
}

func TestCases(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Cases(pad) {
		if c.ID == "" || c.Name == "" || seen[c.ID] {
			t.Errorf("case %q %q: want a unique id and a name", c.ID, c.Name)
		}
		seen[c.ID] = true
		if c.MaxPayload <= 0 || len(c.Send) == 0 {
			t.Errorf("%s: MaxPayload %d, %d bytes to send", c.ID, c.MaxPayload, len(c.Send))
		}
		for i, f := range c.Want {
			if f.Op == ws.OpClose && i != len(c.Want)-1 {
				t.Errorf("%s: a close frame before the end of Want", c.ID)
			}
			if f.Op == ws.OpText && !utf8.Valid(f.Payload) {
				t.Errorf("%s: invalid UTF-8 delivered as text", c.ID)
			}
		}
		if code, echo := c.Close(); echo && (c.Fail != 0 || code == 0) {
			t.Errorf("%s: Close() = %d, %v with Fail %d", c.ID, code, echo, c.Fail)
		}
	}
}

func TestClose(t *testing.T) {
	for _, tc := range []struct {
		c    Case
		code ws.StatusCode
		echo bool
	}{
		{Case{}, 0, false},
		{Case{Want: []Frame{text([]byte("x"))}}, 0, false},
		{Case{Want: []Frame{text([]byte("x"))}, Fail: 1002}, 1002, false},
		{Case{Want: []Frame{closed(nil)}}, 1000, true},
		{Case{Want: []Frame{closed(ClosePayload(4000, "r"))}}, 4000, true},
	} {
		if code, echo := tc.c.Close(); code != tc.code || echo != tc.echo {
			t.Errorf("%+v: Close() = %d, %v; want %d, %v", tc.c, code, echo, tc.code, tc.echo)
		}
	}
}

// TestClientFrame checks the builders against a reference reading of the
// header (gobwas/ws's).
func TestClientFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		b0   byte
		n    int
		head int
	}{
		{"empty text", Fin | bText, 0, 6},
		{"125 bytes", Fin | bText, 125, 6},
		{"126 bytes", Fin | bBinary, 126, 8},
		{"65535 bytes", bText, 65535, 8},
		{"65536 bytes", Fin | bCont, 65536, 14},
		{"rsv1 text", Fin | Rsv1 | bText, 10, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("ab"), tc.n)[:tc.n]
			b := ClientFrame(tc.b0, payload)
			r := bytes.NewReader(b)
			h, err := ws.ReadHeader(r)
			if err != nil || len(b) != tc.head+tc.n {
				t.Fatalf("frame of %d bytes, want %d; ReadHeader: %v", len(b), tc.head+tc.n, err)
			}
			p := b[len(b)-r.Len():]
			ws.Cipher(p, h.Mask, 0)
			if h.Fin != (tc.b0&Fin != 0) || h.Rsv != (tc.b0>>4)&7 || h.OpCode != ws.OpCode(tc.b0&0xf) || !h.Masked || h.Mask != Mask || !bytes.Equal(p, payload) {
				t.Fatalf("header %+v payload %.20q", h, p)
			}
		})
	}
	t.Run("unmasked", func(t *testing.T) {
		h, err := ws.ReadHeader(bytes.NewReader(UnmaskedFrame(Fin|bPing, []byte("x"))))
		if err != nil || h.Masked || h.OpCode != ws.OpPing || h.Length != 1 {
			t.Fatalf("header %+v, %v", h, err)
		}
	})
	t.Run("header of a huge frame", func(t *testing.T) {
		h, err := ws.ReadHeader(bytes.NewReader(ClientHeader(Fin|bText, 1<<40)))
		if err != nil || h.Length != 1<<40 || !h.Masked {
			t.Fatalf("header %+v, %v", h, err)
		}
	})
}
