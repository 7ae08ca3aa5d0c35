package bridge

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestDeflateRoundTrip(t *testing.T) {
	for _, p := range []string{"", "x", strings.Repeat("abc", 1000), `{"id":1,"items":[1,2,3]}`} {
		plain := appendFrame(nil, 0x1, []byte(p))
		z := appendDeflated(nil, plain)
		if z[0]&rsv1 == 0 {
			if !bytes.Equal(z, plain) {
				t.Fatalf("%q: uncompressed result differs from the plain frame", p)
			}
			continue
		}
		got, err := inflate(z[len(z)-payloadLen(z):], 1<<20)
		if err != nil || string(*got) != p {
			t.Fatalf("%q: inflate = %q, %v", p, *got, err)
		}
	}
}

func TestInflateLimit(t *testing.T) {
	z := appendDeflated(nil, appendFrame(nil, 0x1, bytes.Repeat([]byte{'a'}, 100000)))
	if _, err := inflate(z[len(z)-payloadLen(z):], 1000); err != errTooBig {
		t.Fatalf("err = %v, want errTooBig", err)
	}
	if _, err := inflate([]byte{0xff, 0xff, 0xff}, 1000); err != closeBadDeflate {
		t.Fatalf("garbage: err = %v, want closeBadDeflate", err)
	}
}

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
		if f[0]&rsv1 == 0 {
			t.Fatal("frame not compressed")
		}
		if i == 0 {
			first = f
		} else if &f[0] != &first[0] {
			t.Fatal("a second receiver got a freshly compressed frame")
		}
	}
	if len(fc.built) != 2 { // the plain frame it was compressed from, and the compressed one
		t.Fatalf("%d frames built, want 2", len(fc.built))
	}
}

// BenchmarkCompression measures the cost of compressing one message (paid
// once per message, whatever the number of compressing receivers) and
// reports the bytes saved on the wire.
func BenchmarkCompression(b *testing.B) {
	item := `{"id":12345,"sku":"ABC-12345","name":"Widget","price":19.99,"qty":3,"tags":["blue","large"]}`
	for _, n := range []int{1, 10, 100} {
		msg := "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
		plain := appendFrame(nil, 0x1, []byte(msg))
		b.Run(fmt.Sprintf("%dB", len(msg)), func(b *testing.B) {
			var out []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for range b.N {
				out = appendDeflated(out[:0], plain)
			}
			b.ReportMetric(float64(len(out))/float64(len(plain)), "wire/plain")
		})
	}
}

func BenchmarkInflate(b *testing.B) {
	msg := []byte(`[` + strings.Repeat(`{"id":12345,"sku":"ABC-12345","name":"Widget","price":19.99},`, 50) + `{}]`)
	z := appendDeflated(nil, appendFrame(nil, 0x1, msg))
	p := z[len(z)-payloadLen(z):]
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for range b.N {
		out, err := inflate(p, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		putBuf(out)
	}
}
