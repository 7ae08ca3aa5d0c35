package streams

import (
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
