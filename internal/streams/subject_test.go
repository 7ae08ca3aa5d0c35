package bridge

import (
	"encoding/json"
	"testing"
)

func TestSubjectCovers(t *testing.T) {
	cases := []struct {
		filter, pattern string
		want            bool
	}{
		{"orders.>", "orders.>", true},
		{"orders.>", "orders.*", true},
		{"orders.>", "orders.a.b", true},
		{"orders.>", "orders", false},
		{"orders.>", ">", false},
		{"orders.*", "orders.>", false},
		{"orders.*", "orders.*", true},
		{"orders.*", "orders.a", true},
		{"orders.*", "orders.a.b", false},
		{"orders.a", "orders.*", false},
		{"orders.a", "orders.a", true},
		{">", "anything.at.all", true},
		{"*.x", "a.x", true},
		{"*.x", "a.y", false},
	}
	for _, tc := range cases {
		t.Run(tc.filter+" "+tc.pattern, func(t *testing.T) {
			if got := subjectCovers(tc.filter, tc.pattern); got != tc.want {
				t.Fatalf("subjectCovers(%q, %q) = %v, want %v", tc.filter, tc.pattern, got, tc.want)
			}
		})
	}
}

func TestParseFrom(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		kind fromKind
	}{
		{`"new"`, true, fromNew},
		{`"all"`, true, fromAll},
		{`"last"`, true, fromLast},
		{`{"after":0}`, true, fromAfter},
		{`{"after":42}`, true, fromAfter},
		{`{"time":"2024-05-01T10:00:00Z"}`, true, fromTime},
		{`{"time":"2024-05-01T10:00:00.123456789+02:00"}`, true, fromTime},
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
			p, e := parseFrom(json.RawMessage(tc.in))
			if (e == nil) != tc.ok {
				t.Fatalf("parseFrom(%s) err = %v, want ok=%v", tc.in, e, tc.ok)
			}
			if e != nil && e.code != codeBadRequest {
				t.Fatalf("code %s, want bad_request", e.code)
			}
			if tc.ok && p.kind != tc.kind {
				t.Fatalf("kind %d, want %d", p.kind, tc.kind)
			}
		})
	}
}
