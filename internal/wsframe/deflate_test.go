package wsframe

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestDeflateRoundTrip(t *testing.T) {
	for _, p := range []string{"", "x", strings.Repeat("abc", 1000), `{"id":1,"items":[1,2,3]}`} {
		plain := AppendFrame(nil, 0x1, []byte(p))
		z := AppendDeflated(nil, plain)
		if z[0]&rsv1 == 0 {
			if !bytes.Equal(z, plain) {
				t.Fatalf("%q: uncompressed result differs from the plain frame", p)
			}
			continue
		}
		got, err := Inflate(z[len(z)-payloadLen(z):], 1<<20)
		if err != nil || string(*got) != p {
			t.Fatalf("%q: inflate = %q, %v", p, *got, err)
		}
	}
}

func TestInflateLimit(t *testing.T) {
	z := AppendDeflated(nil, AppendFrame(nil, 0x1, bytes.Repeat([]byte{'a'}, 100000)))
	if _, err := Inflate(z[len(z)-payloadLen(z):], 1000); err != ErrTooBig {
		t.Fatalf("err = %v, want ErrTooBig", err)
	}
	if _, err := Inflate([]byte{0xff, 0xff, 0xff}, 1000); err != ErrBadDeflate {
		t.Fatalf("garbage: err = %v, want ErrBadDeflate", err)
	}
}

// BenchmarkCompression measures the cost of compressing one message (paid
// once per message, whatever the number of compressing receivers) and
// reports the bytes saved on the wire.
func BenchmarkCompression(b *testing.B) {
	item := `{"id":12345,"sku":"ABC-12345","name":"Widget","price":19.99,"qty":3,"tags":["blue","large"]}`
	for _, n := range []int{1, 10, 100} {
		msg := "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
		plain := AppendFrame(nil, 0x1, []byte(msg))
		b.Run(fmt.Sprintf("%dB", len(msg)), func(b *testing.B) {
			var out []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for range b.N {
				out = AppendDeflated(out[:0], plain)
			}
			b.ReportMetric(float64(len(out))/float64(len(plain)), "wire/plain")
		})
	}
}

func BenchmarkInflate(b *testing.B) {
	msg := []byte(`[` + strings.Repeat(`{"id":12345,"sku":"ABC-12345","name":"Widget","price":19.99},`, 50) + `{}]`)
	z := AppendDeflated(nil, AppendFrame(nil, 0x1, msg))
	p := z[len(z)-payloadLen(z):]
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for range b.N {
		out, err := Inflate(p, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		PutBuffer(out)
	}
}
