package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

func TestDecodeCommand(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		op, id  string
		payload string // payload() of a command that decodes
		code    string // expected err code, "" for none
	}{
		{name: "ping", in: `{"op":"ping","id":"1"}`, op: "ping", id: "1"},
		{name: "padded", in: `{"op":"ping","id":"1"}` + strings.Repeat(" ", 100), op: "ping", id: "1"},
		{name: "pub data verbatim", in: `{"op":"pub","subject":"a","data": {"b" : [1, 2.50,"x"]} }`, op: "pub", payload: `{"b" : [1, 2.50,"x"]}`},
		{name: "pub data string", in: `{"op":"pub","subject":"a","data":"\u00e9"}`, op: "pub", payload: `"\u00e9"`},
		{name: "pub b64", in: `{"op":"pub","subject":"a","b64":"aGk="}`, op: "pub", payload: "hi"},
		{name: "pub empty b64", in: `{"op":"pub","subject":"a","b64":""}`, op: "pub", payload: ""},
		{name: "pub data and b64", in: `{"op":"pub","subject":"a","data":1,"b64":""}`, op: "pub", id: "", code: codeBadRequest},
		{name: "pub bad b64", in: `{"op":"pub","subject":"a","b64":"***"}`, op: "pub", code: codeBadRequest},
		{name: "empty", in: ``, code: codeBadRequest},
		{name: "not an object", in: `[1]`, code: codeBadRequest},
		{name: "missing op", in: `{"id":"x"}`, id: "x", code: codeBadRequest},
		{name: "op not a string", in: `{"op":1,"id":"x"}`, id: "x", code: codeBadRequest},
		{name: "truncated keeps no id", in: `{"op":"sub","id":"x"`, code: codeBadRequest},
		{name: "wrong type keeps id", in: `{"op":"sub","id":"x","subject":7}`, id: "x", code: codeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, oerr := decodeCommand([]byte(tc.in))
			if oerr == nil {
				var p []byte
				p, oerr = cmd.payload()
				if oerr == nil && string(p) != tc.payload {
					t.Errorf("payload = %q, want %q", p, tc.payload)
				}
			}
			switch {
			case tc.code == "" && oerr != nil:
				t.Fatalf("unexpected error %v", oerr)
			case tc.code != "" && (oerr == nil || oerr.code != tc.code || oerr.message == ""):
				t.Fatalf("err = %v, want code %s with a message", oerr, tc.code)
			}
			if cmd.ID != tc.id || tc.code == "" && cmd.Op != tc.op {
				t.Errorf("op, id = %q, %q; want %q, %q", cmd.Op, cmd.ID, tc.op, tc.id)
			}
		})
	}
}

// appendStringSamples are the strings every appendString check starts from.
var appendStringSamples = []string{
	"", "plain", `quote " and \ backslash`, "\x00\x01\x1f\x7f", "\n\r\t\b\f", "κόσμε", "\u2028\u2029",
	"<script>&amp;</script>", "\xff", "a\xc0\xafb", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xef\xbf\xbd",
}

func TestAppendString(t *testing.T) {
	for _, s := range appendStringSamples {
		checkAppendString(t, s)
	}
}

// checkAppendString asserts that appendString produces valid JSON text
// that decodes to s (to what encoding/json makes of s when s is not valid
// UTF-8), and keeps what was already in the buffer.
func checkAppendString(t *testing.T, s string) {
	t.Helper()
	out := appendString([]byte("prefix"), s)
	if !strings.HasPrefix(string(out), "prefix") {
		t.Fatalf("appendString clobbered the buffer: %q", out)
	}
	out = out[len("prefix"):]
	if !utf8.Valid(out) || !json.Valid(out) {
		t.Fatalf("appendString(%q) = %q: not valid UTF-8 JSON", s, out)
	}
	var got string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("appendString(%q) = %q: %v", s, out, err)
	}
	want := s
	if !utf8.ValidString(s) {
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
	}
	if got != want {
		t.Fatalf("appendString(%q) = %q, decodes to %q; want %q", s, out, got, want)
	}
}

func TestFrameHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		b := appendFrameHeader(nil, ws.OpText, n)
		if got := frameLen(b); got != len(b)+n {
			t.Errorf("frameLen(header of %d) = %d, want %d", n, got, len(b)+n)
		}
		if b[0] != 0x80|byte(ws.OpText) || b[1]&0x80 != 0 {
			t.Errorf("header of %d = %x: want FIN, text, unmasked", n, b)
		}
	}
}

func TestAppendClose(t *testing.T) {
	b := appendClose(nil, errInvalidUTF8)
	want := append([]byte{0x88, byte(2 + len(errInvalidUTF8.reason)), 0x03, 0xef}, errInvalidUTF8.reason...)
	if string(b) != string(want) {
		t.Fatalf("appendClose = %x, want %x", b, want)
	}
}

func TestIsJSONValue(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{`{"a":1}`, true}, {`1`, true}, {`"x"`, true}, {`null`, true},
		{``, false}, {` 1`, false}, {`1 `, false}, {`1 2`, false}, {`{`, false}, {"\"\xff\"", false}, {`hello`, false},
	}
	for _, tc := range cases {
		if got := isJSONValue([]byte(tc.in)); got != tc.want {
			t.Errorf("isJSONValue(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendString(buf[:0], "orders.eu.new-κόσμε-\"quoted\"")
	}
}
