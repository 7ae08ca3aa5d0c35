package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
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
	f.Fuzz(func(t *testing.T, sizes, stream []byte, maxPayload uint16, extended bool) {
		newAsm := func() *assembler { return &assembler{maxPayload: int64(maxPayload), extended: extended} }
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

// FuzzDecodeCommand checks that decodeCommand never panics and that a pub's
// payload is the JSON text of data exactly as sent.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"op":"ping","id":"1"}`,
		`{"op":"pub","subject":"a","data": {"b" : [1, 2.50,"x"]} }`,
		`{"op":"pub","subject":"a","data":"\u00e9","id":"p"}`,
		`{"op":"pub","subject":"a","data":null}`,
		`{"op":"pub","subject":"a","data":1,"data":[2]}`,
		`{"op":"pub","subject":"a","b64":"aGk="}`,
		`{"op":"pub","subject":"a","data":1,"b64":""}`,
		`{"op":"sub","id":"x","subject":7}`,
		`{"op":"req","id":"r","subject":"s","timeout_ms":-1,"headers":{"k":["v"]}}`,
		`[1]`, ``, `{"op":"sub",`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		cmd, oerr := decodeCommand(bytes.Clone(p))
		if oerr != nil {
			if oerr.code == "" || oerr.message == "" {
				t.Fatalf("error without code or message: %+v", oerr)
			}
			return
		}
		if cmd.Op == "" {
			t.Fatal("decoded without an op")
		}
		payload, perr := cmd.payload()
		if cmd.Op != "pub" || cmd.Data == nil || cmd.B64 != nil {
			return
		}
		if perr != nil {
			t.Fatalf("payload of data: %v", perr)
		}
		var ref struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(p, &ref); err != nil {
			t.Fatalf("decodeCommand accepted what encoding/json refuses: %v", err)
		}
		if !bytes.Equal(payload, ref.Data) {
			t.Fatalf("payload = %q, data as sent = %q", payload, ref.Data)
		}
		if !json.Valid(payload) {
			t.Fatalf("payload %q is not a JSON value", payload)
		}
	})
}

// FuzzValidSubject compares validSubject with refValidSubject.
func FuzzValidSubject(f *testing.F) {
	for _, s := range []string{"a", "a.b", "*", ">", "a.>", "a.>.b", "a..b", ".", "a b", "a.*b", "\x7f", "κόσμε.*"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, wildcards bool) {
		if got, want := validSubject(s, wildcards), refValidSubject(s, wildcards); got != want {
			t.Fatalf("validSubject(%q, %v) = %v, reference %v", s, wildcards, got, want)
		}
	})
}

// FuzzAppendString checks that appendString always writes valid JSON that
// decodes to the input.
func FuzzAppendString(f *testing.F) {
	for _, s := range appendStringSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
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
