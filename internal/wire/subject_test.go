package wire

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestValidSubject(t *testing.T) {
	cases := []struct {
		s         string
		literal   bool // valid without wildcards
		wildcards bool // valid with wildcards
	}{
		{"a", true, true},
		{"orders.eu.new", true, true},
		{"a-b_c.d:e", true, true},
		{"κόσμε.x", true, true},
		// A wildcard character inside a literal token is refused, as auth
		// refuses it in permissions (issue 13), not taken as a literal.
		{"a.b*", false, false},
		{"a.*b", false, false},
		{"a.>b", false, false},
		{"a*", false, false},
		{"b>", false, false},
		{"a.\u00a0", false, false},
		{"a.\xff", false, false},
		{"*", false, true},
		{">", false, true},
		{"a.*", false, true},
		{"a.*.c", false, true},
		{"a.>", false, true},
		{"*.>", false, true},
		{"a.>.b", false, false},
		{">.a", false, false},
		{"", false, false},
		{".", false, false},
		{".a", false, false},
		{"a.", false, false},
		{"a..b", false, false},
		{"a b", false, false},
		{"a\tb", false, false},
		{"a\nb", false, false},
		{"a\rb", false, false},
		{"a\fb", false, false},
		{"a\x00b", false, false},
		{"a\x7fb", false, false},
		{strings.Repeat("a", MaxSubjectLen), true, true},
		{strings.Repeat("a", MaxSubjectLen+1), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.s, func(t *testing.T) {
			if got := ValidSubject(tc.s, false); got != tc.literal {
				t.Errorf("ValidSubject(%q, false) = %v, want %v", tc.s, got, tc.literal)
			}
			if got := ValidSubject(tc.s, true); got != tc.wildcards {
				t.Errorf("ValidSubject(%q, true) = %v, want %v", tc.s, got, tc.wildcards)
			}
			if got, ref := ValidSubject(tc.s, true), refValidSubject(tc.s, true); got != ref {
				t.Errorf("reference disagrees on %q", tc.s)
			}
		})
	}
}

func TestValidQueue(t *testing.T) {
	cases := []struct {
		q    string
		want bool
	}{
		{"workers", true},
		{"a.b", true},
		{"q-1_x", true},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00", false},
		{"a\x7f", false},
		{strings.Repeat("q", MaxSubjectLen), true},
		{strings.Repeat("q", MaxSubjectLen+1), false},
	}
	for _, tc := range cases {
		if got := ValidQueue(tc.q); got != tc.want {
			t.Errorf("ValidQueue(%q) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestReserved(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"$JS.API.INFO", true},
		{"$SYS.>", true},
		{"$", true},
		{"_INBOX", true},
		{"_INBOX.abc", true},
		{"_INBOX.>", true},
		{"_INBOXES", false},
		{"_inbox.abc", false},
		{"orders.$x", false},
		{"a._INBOX", false},
		{">", false}, // deliveries from Reserved subjects are filtered instead
		{"orders.new", false},
	}
	for _, tc := range cases {
		if got := Reserved(tc.s); got != tc.want {
			t.Errorf("Reserved(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// refValidSubject is ValidSubject written the obvious way, for the fuzzer.
func refValidSubject(s string, wildcards bool) bool {
	if s == "" || len(s) > MaxSubjectLen || !utf8.ValidString(s) {
		return false
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return false
		case tok == "*" && wildcards:
		case tok == ">" && wildcards && i == len(toks)-1:
		case strings.ContainsFunc(tok, func(r rune) bool {
			return r <= ' ' || r == 0x7f || r == '*' || r == '>' || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r)
		}):
			return false
		}
	}
	return true
}
