package wire

import "testing"

func BenchmarkAppendMsgFrame(b *testing.B) {
	data := []byte(`{"id":7,"items":[1,2,3]}`)
	header := map[string][]string{"Trace": {"abc"}}
	var body, out []byte
	b.ReportAllocs()
	for range b.N {
		body = AppendBody(body[:0], data, header, "")
		out = AppendMsgFrame(out[:0], "s1", "orders.eu.7", body, 0)
	}
}

func BenchmarkValidSubject(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		if !ValidSubject("orders.eu.*.items.>", true) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	p := []byte(`{"op":"pub","subject":"orders.new","data":{"id":1,"qty":2},"id":"p1"}`)
	b.ReportAllocs()
	for range b.N {
		if _, err := Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMsgPrefix(b *testing.B) {
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		out = AppendMsgPrefix(out[:0], "0c8f2a4e-4b1d-4e8a-9c3f-2d5e6a7b8c9d")
	}
}
