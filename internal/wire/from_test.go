package wire

import (
	"encoding/json"
	"testing"
)

func TestParseFrom(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		kind FromKind
	}{
		{`"new"`, true, FromNew},
		{`"all"`, true, FromAll},
		{`"last"`, true, FromLast},
		{`{"after":0}`, true, FromAfter},
		{`{"after":42}`, true, FromAfter},
		{`{"time":"2024-05-01T10:00:00Z"}`, true, FromTime},
		{`{"time":"2024-05-01T10:00:00.123456789+02:00"}`, true, FromTime},
		{`"first"`, false, 0},
		{`null`, false, 0},
		{`42`, false, 0},
		{`{}`, false, 0},
		{`{"after":-1}`, false, 0},
		{`{"after":1.5}`, false, 0},
		{`{"after":1,"time":"2024-05-01T10:00:00Z"}`, false, 0},
		{`{"time":"yesterday"}`, false, 0},
		{`{"seq":1}`, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			p, e := ParseFrom(json.RawMessage(tc.in))
			if (e == nil) != tc.ok {
				t.Fatalf("ParseFrom(%s) err = %v, want ok=%v", tc.in, e, tc.ok)
			}
			if e != nil && e.Code != CodeBadRequest {
				t.Fatalf("code %s, want bad_request", e.Code)
			}
			if tc.ok && p.Kind != tc.kind {
				t.Fatalf("kind %d, want %d", p.Kind, tc.kind)
			}
		})
	}
}
