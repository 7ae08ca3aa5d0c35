package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

var commandSeeds = []string{
	`{"op":"ping","id":"1"}`,
	`{"op":"pub","subject":"orders.new","data":{"id":1,"qty":2},"id":"p1"}`,
	`{ "op" : "pub" , "subject":"a", "data" : [1, "x]", {"y":"}"}] }`,
	`{"op":"pub","subject":"a","data":"q\"uote","id":"p"}`,
	`{"op":"pub","subject":"a","data":null}`,
	`{"op":"pub","subject":"a","data":1,"data":[2]}`,
	`{"op":"pub","subject":"a","b64":"aGk="}`,
	`{"op":"pub","subject":"a","b64":null}`,
	`{"op":"pub","subject":"a","ack":true,"msg_id":"m1","id":"p"}`,
	`{"op":"sub","id":"s","subject":"a.>","queue":"q","from":{"after":41}}`,
	`{"op":"req","id":"r","subject":"s","timeout_ms":2000}`,
	`{"op":"req","id":"r","subject":"s","timeout_ms":2.5}`,
	`{"op":"auth","id":"a","token":"x.y.z"}`,
	`{"OP":"ping","id":"1"}`,
	`{"op":"ping","id":"\u00e9"}`,
	`{"op":"ping"} x`,
	`{"op":"ping",}`,
	`{"op":"pub","subject":"a","data":tru}`,
	`{"op":"pub","subject":"a","headers":{"k":["v"]}}`,
	`{}`, `[]`, ``, `{"op":`,
}

// TestDecodeFastAgrees: every input the fast path accepts decodes exactly
// as encoding/json decodes it.
func TestDecodeFastAgrees(t *testing.T) {
	for _, s := range commandSeeds {
		checkFast(t, []byte(s))
	}
}

func TestDecodeFastTakesCommonCommands(t *testing.T) {
	for _, s := range commandSeeds[:13] {
		if s == `{"op":"pub","subject":"a","data":"q\"uote","id":"p"}` || s == `{"op":"req","id":"r","subject":"s","timeout_ms":2.5}` {
			continue
		}
		var cmd Command
		if !decodeFast([]byte(s), &cmd) {
			t.Errorf("fast path declined %s", s)
		}
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) { checkFast(t, p) })
}

func checkFast(t *testing.T, p []byte) {
	t.Helper()
	var fast Command
	if !decodeFast(p, &fast) {
		return
	}
	var ref Command
	if err := json.Unmarshal(p, &ref); err != nil {
		t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", p, err)
	}
	if !reflect.DeepEqual(fast, ref) {
		t.Fatalf("%q:\nfast %+v\nref  %+v", p, fast, ref)
	}
}

func BenchmarkDecodeCommandSlow(b *testing.B) {
	p := []byte(`{"op":"pub","subject":"orders.new","data":{"id":1,"qty":2},"id":"p1"}`)
	b.ReportAllocs()
	for range b.N {
		var cmd Command
		if err := json.Unmarshal(p, &cmd); err != nil {
			b.Fatal(err)
		}
	}
}
