package wire

import "testing"

func TestReservedHeader(t *testing.T) {
	cases := []struct {
		name string
		h    map[string][]string
		want string
	}{
		{"none", nil, ""},
		{"ordinary", map[string][]string{"Trace": {"a"}, "X-Nats": {"b"}}, ""},
		{"rollup", map[string][]string{"Nats-Rollup": {"all"}}, "Nats-Rollup"},
		{"lower case", map[string][]string{"nats-msg-id": {"x"}}, "nats-msg-id"},
		{"expected", map[string][]string{"NATS-EXPECTED-LAST-SEQUENCE": {"1"}}, "NATS-EXPECTED-LAST-SEQUENCE"},
		{"identity", map[string][]string{"Wsbridge-Sub": {"alice"}}, "Wsbridge-Sub"},
		{"several, sorted", map[string][]string{"Wsbridge-Node": {"n"}, "Nats-TTL": {"1s"}, "Ok": {"1"}}, "Nats-TTL"},
		{"prefix alone", map[string][]string{"Nats": {"x"}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReservedHeader(tc.h); got != tc.want {
				t.Fatalf("ReservedHeader(%v) = %q, want %q", tc.h, got, tc.want)
			}
		})
	}
}

// FuzzReservedHeader checks ReservedHeader against the rule stated
// directly: a name is reserved iff, lower-cased, it starts with "nats-" or
// "wsbridge-".
func FuzzReservedHeader(f *testing.F) {
	for _, s := range []string{"Nats-Rollup", "nats-", "Wsbridge-Sub", "NATS", "X-Nats-Y", "wsbridge", "Ünicode"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := ReservedHeader(map[string][]string{name: {"v"}}) != ""
		lower := []rune{}
		for _, r := range name {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			lower = append(lower, r)
		}
		ls := string(lower)
		want := len(ls) >= 5 && ls[:5] == "nats-" || len(ls) >= 9 && ls[:9] == "wsbridge-"
		if got != want {
			t.Fatalf("ReservedHeader(%q) = %v, want %v", name, got, want)
		}
	})
}
