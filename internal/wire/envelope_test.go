package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
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
		{name: "pub data and b64", in: `{"op":"pub","subject":"a","data":1,"b64":""}`, op: "pub", id: "", code: CodeBadRequest},
		{name: "pub bad b64", in: `{"op":"pub","subject":"a","b64":"***"}`, op: "pub", code: CodeBadRequest},
		{name: "empty", in: ``, code: CodeBadRequest},
		{name: "not an object", in: `[1]`, code: CodeBadRequest},
		{name: "missing op", in: `{"id":"x"}`, id: "x", code: CodeBadRequest},
		{name: "op not a string", in: `{"op":1,"id":"x"}`, id: "x", code: CodeBadRequest},
		{name: "truncated keeps no id", in: `{"op":"sub","id":"x"`, code: CodeBadRequest},
		{name: "wrong type keeps id", in: `{"op":"sub","id":"x","subject":7}`, id: "x", code: CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, oerr := Decode([]byte(tc.in))
			if oerr == nil {
				var p []byte
				p, oerr = cmd.Payload()
				if oerr == nil && string(p) != tc.payload {
					t.Errorf("payload = %q, want %q", p, tc.payload)
				}
			}
			switch {
			case tc.code == "" && oerr != nil:
				t.Fatalf("unexpected error %v", oerr)
			case tc.code != "" && (oerr == nil || oerr.Code != tc.code || oerr.Message == ""):
				t.Fatalf("err = %v, want code %s with a message", oerr, tc.code)
			}
			if cmd.ID != tc.id || tc.code == "" && cmd.Op != tc.op {
				t.Errorf("op, id = %q, %q; want %q, %q", cmd.Op, cmd.ID, tc.op, tc.id)
			}
		})
	}
}

// appendStringSamples are the strings every AppendString check starts from.
var appendStringSamples = []string{
	"", "plain", `quote " and \ backslash`, "\x00\x01\x1f\x7f", "\n\r\t\b\f", "κόσμε", "\u2028\u2029",
	"<script>&amp;</script>", "\xff", "a\xc0\xafb", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xef\xbf\xbd",
}

func TestAppendString(t *testing.T) {
	for _, s := range appendStringSamples {
		checkAppendString(t, s)
	}
}

// checkAppendString asserts that AppendString produces valid JSON text
// that decodes to s (to what encoding/json makes of s when s is not valid
// UTF-8), and keeps what was already in the buffer.
func checkAppendString(t *testing.T, s string) {
	t.Helper()
	out := AppendString([]byte("prefix"), s)
	if !strings.HasPrefix(string(out), "prefix") {
		t.Fatalf("AppendString clobbered the buffer: %q", out)
	}
	out = out[len("prefix"):]
	if !utf8.Valid(out) || !json.Valid(out) {
		t.Fatalf("AppendString(%q) = %q: not valid UTF-8 JSON", s, out)
	}
	var got string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("AppendString(%q) = %q: %v", s, out, err)
	}
	want := s
	if !utf8.ValidString(s) {
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want)
	}
	if got != want {
		t.Fatalf("AppendString(%q) = %q, decodes to %q; want %q", s, out, got, want)
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
		buf = AppendString(buf[:0], "orders.eu.new-κόσμε-\"quoted\"")
	}
}

// TestMsgPrefixTail: prefix and tail are AppendMsgFrame's payload, byte
// for byte, so a receiver's frame built from them is the one built whole.
func TestMsgPrefixTail(t *testing.T) {
	cases := []struct {
		name, sid, subject, reply string
		data                      string
		header                    map[string][]string
		seq                       uint64
	}{
		{name: "json", sid: "s1", subject: "orders.7", data: `{"id":7}`},
		{name: "b64", sid: "0c8f2a4e-4b1d-4e8a-9c3f-2d5e6a7b8c9d", subject: "raw", data: "\x00\x01"},
		{name: "headers and reply", sid: `q"\`, subject: "a.b", data: `1`, header: map[string][]string{"Trace": {"abc"}, "A": {"1", "2"}}, reply: "_INBOX.x"},
		{name: "jetstream", sid: "κόσμε\xff", subject: "orders.eu", data: `{"id":7}`, seq: 42},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			whole := AppendMsgFrame(nil, tc.sid, tc.subject, AppendBody(nil, []byte(tc.data), tc.header, tc.reply), tc.seq)
			payload := whole[len(whole)-wsframePayloadLen(whole):]
			got := AppendMsgTail(AppendMsgPrefix(nil, tc.sid), tc.subject, []byte(tc.data), tc.header, tc.reply, tc.seq)
			if string(got) != string(payload) {
				t.Fatalf("prefix+tail = %s\nwant          %s", got, payload)
			}
			if !json.Valid(got) {
				t.Fatalf("%s is not JSON", got)
			}
		})
	}
}

// wsframePayloadLen is the payload length of the short server frame f.
func wsframePayloadLen(f []byte) int {
	if l := int(f[1] & 0x7f); l < 126 {
		return l
	}
	return int(f[2])<<8 | int(f[3])
}
