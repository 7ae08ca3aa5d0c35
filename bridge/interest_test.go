package bridge

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestDeflateOncePerMessage: a message fanned out to many compressing
// clients is compressed once; they all get the same bytes.
func TestDeflateOncePerMessage(t *testing.T) {
	s := &Server{}
	s.cfg.CompressionMin = 16
	var fc frameCache
	m := &nats.Msg{Subject: "z", Data: []byte(`{"text":"` + strings.Repeat("hello ", 100) + `"}`)}
	var first []byte
	for i := range 20 {
		c := &conn{s: s, deflate: true}
		f := fc.frame(&sub{c: c, id: "s1"}, m)
		if f[0]&0x40 == 0 { // RSV1
			t.Fatal("frame not compressed")
		}
		if i == 0 {
			first = f
		} else if &f[0] != &first[0] {
			t.Fatal("a second receiver got a freshly compressed frame")
		}
	}
	if fc.Len() != 2 { // the plain frame it was compressed from, and the compressed one
		t.Fatalf("%d frames built, want 2", fc.Len())
	}
}
