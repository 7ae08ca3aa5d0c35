package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeCommand checks that Decode never panics and that a pub's
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
		cmd, oerr := Decode(bytes.Clone(p))
		if oerr != nil {
			if oerr.Code == "" || oerr.Message == "" {
				t.Fatalf("error without code or message: %+v", oerr)
			}
			return
		}
		if cmd.Op == "" {
			t.Fatal("decoded without an op")
		}
		payload, perr := cmd.Payload()
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
			t.Fatalf("Decode accepted what encoding/json refuses: %v", err)
		}
		if !bytes.Equal(payload, ref.Data) {
			t.Fatalf("payload = %q, data as sent = %q", payload, ref.Data)
		}
		if !json.Valid(payload) {
			t.Fatalf("payload %q is not a JSON value", payload)
		}
	})
}

// FuzzValidSubject compares ValidSubject with refValidSubject.
func FuzzValidSubject(f *testing.F) {
	for _, s := range []string{"a", "a.b", "*", ">", "a.>", "a.>.b", "a..b", ".", "a b", "a.*b", "\x7f", "κόσμε.*"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, wildcards bool) {
		if got, want := ValidSubject(s, wildcards), refValidSubject(s, wildcards); got != want {
			t.Fatalf("ValidSubject(%q, %v) = %v, reference %v", s, wildcards, got, want)
		}
	})
}

// FuzzAppendString checks that AppendString always writes valid JSON that
// decodes to the input.
func FuzzAppendString(f *testing.F) {
	for _, s := range appendStringSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
	})
}
