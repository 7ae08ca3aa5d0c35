package auth

import (
	"fmt"
	"strings"
	"testing"
)

// identityWith builds an Identity from permission lists, failing the test
// on invalid patterns.
func identityWith(tb testing.TB, sub string, p permissions) *Identity {
	tb.Helper()
	id, err := newIdentity(sub, testTime, &p)
	if err != nil {
		tb.Fatalf("newIdentity: %v", err)
	}
	return id
}

func TestCanPublish(t *testing.T) {
	id := identityWith(t, "alice", permissions{Pub: direction{
		Allow: []string{"orders.*", "users.>", "me.{sub}", "$SYS.>", "_INBOX.>"},
		Deny:  []string{"orders.secret", "users.*.admin"},
	}})
	tests := []struct {
		subject string
		want    bool
	}{
		{"orders.eu", true},
		{"orders.secret", false},
		{"orders", false},
		{"orders.eu.x", false},
		{"users.a", true},
		{"users", false},
		{"users.a.admin", false},
		{"users.a.b.admin", true},
		{"users.admin", true},
		{"me.alice", true},
		{"me.bob", false},
		{"me.{sub}", false},
		{"orders.*", false}, // wildcards are not literal subjects
		{"users.>", false},
		{"$SYS.x", false}, // reserved even when allowed
		{"$", false},
		{"_INBOX.abc", false},
		{"_INBOXES.abc", false},
		{"", false},
		{"orders..eu", false},
		{"orders.eu.", false},
		{".orders", false},
		{"orders.e u", false},
		{"orders.e\x7fu", false},
		{"orders.\xff", false},
		{"orders.\u00a0", false},
		{"orders.a*", false},
		{"orders.été", true},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			if got := id.CanPublish(tt.subject); got != tt.want {
				t.Errorf("CanPublish(%q) = %v, want %v", tt.subject, got, tt.want)
			}
		})
	}
}

func TestCanSubscribe(t *testing.T) {
	tests := []struct {
		name    string
		allow   []string
		deny    []string
		pattern string
		want    bool
	}{
		{"narrower allow does not cover", []string{"orders.eu.>"}, nil, "orders.>", false},
		{"star covered by gt", []string{"orders.>"}, nil, "orders.*", true},
		{"star covered by star star", []string{"*.*"}, nil, "orders.*", true},
		{"deeper gt covered by gt", []string{"orders.>"}, nil, "orders.eu.>", true},
		{"gt not covered by star", []string{"orders.*"}, nil, "orders.>", false},
		{"star star not covered by literal", []string{"orders.eu"}, nil, "orders.*", false},
		{"parent not covered by gt", []string{"orders.>"}, nil, "orders", false},
		{"everything needs gt", []string{"orders.>"}, nil, ">", false},
		{"literal", []string{"orders.eu"}, nil, "orders.eu", true},
		{"longer than star star", []string{"*.*"}, nil, "orders.eu.x", false},
		{"any allow suffices", []string{"a.b", "orders.>"}, nil, "orders.*.x", true},
		{"deny inside gt", []string{"orders.>"}, []string{"orders.secret"}, "orders.>", false},
		{"deny inside star", []string{"orders.>"}, []string{"orders.secret"}, "orders.*", false},
		{"deny elsewhere", []string{"orders.>"}, []string{"orders.secret"}, "orders.eu.>", true},
		{"deny literal equal", []string{"orders.>"}, []string{"orders.secret"}, "orders.secret", false},
		{"deny literal other", []string{"orders.>"}, []string{"orders.secret"}, "orders.public", true},
		{"deny star hits literal", []string{">"}, []string{"orders.*"}, "orders.eu", false},
		{"deny star misses deeper", []string{">"}, []string{"orders.*"}, "orders.eu.x", true},
		{"deny star misses parent", []string{">"}, []string{"orders.*"}, "orders", true},
		{"deny star hits gt", []string{">"}, []string{"orders.*"}, "orders.>", false},
		{"deny gt meets star", []string{">"}, []string{"*.x.>"}, "a.*.y", false},
		{"deny gt needs depth", []string{">"}, []string{"*.x.>"}, "a.*", true},
		{"deny gt hits star deeper", []string{">"}, []string{"*.x.>"}, "a.*.y.z", false},
		{"deny everything", []string{">"}, []string{">"}, "a", false},
		{"gt subscribable", []string{">"}, nil, ">", true},
		{"star gt subscribable", []string{">"}, nil, "*.>", true},
		{"star subscribable", []string{">"}, nil, "*", true},
		{"system refused", []string{">"}, nil, "$SYS.>", false},
		{"dollar refused", []string{">"}, nil, "$JS.API.*", false},
		{"inbox refused", []string{">"}, nil, "_INBOX.>", false},
		{"bare inbox refused", []string{">"}, nil, "_INBOX", false},
		{"inbox lookalike", []string{">"}, nil, "_INBOXES.>", true},
		{"no allow", nil, nil, "a", false},
		{"empty", []string{">"}, nil, "", false},
		{"gt not last", []string{">"}, nil, "a.>.b", false},
		{"partial wildcard", []string{">"}, nil, "a*", false},
		{"empty token", []string{">"}, nil, "a..b", false},
		{"space", []string{">"}, nil, "a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := identityWith(t, "", permissions{Sub: direction{Allow: tt.allow, Deny: tt.deny}})
			if got := id.CanSubscribe(tt.pattern); got != tt.want {
				t.Errorf("allow %q deny %q: CanSubscribe(%q) = %v, want %v", tt.allow, tt.deny, tt.pattern, got, tt.want)
			}
		})
	}
}

// TestCoversIntersectsReference compares covers and intersects with their
// definitions, evaluated over every subject of a small universe: tokens a, b
// and c (c stands for "anything else"), up to one token longer than the
// longest pattern.
func TestCoversIntersectsReference(t *testing.T) {
	var patterns []string
	var gen func(prefix []string, n int)
	gen = func(prefix []string, n int) {
		if len(prefix) > 0 {
			patterns = append(patterns, strings.Join(prefix, "."))
		}
		if n == 0 || (len(prefix) > 0 && prefix[len(prefix)-1] == ">") {
			return
		}
		for _, tok := range []string{"a", "b", "*", ">"} {
			gen(append(prefix[:len(prefix):len(prefix)], tok), n-1)
		}
	}
	gen(nil, 3)
	var subjects []string
	var genS func(prefix []string, n int)
	genS = func(prefix []string, n int) {
		if len(prefix) > 0 {
			subjects = append(subjects, strings.Join(prefix, "."))
		}
		if n == 0 {
			return
		}
		for _, tok := range []string{"a", "b", "c"} {
			genS(append(prefix[:len(prefix):len(prefix)], tok), n-1)
		}
	}
	genS(nil, 4)

	matches := make(map[string][]bool, len(patterns))
	for _, p := range patterns {
		m := make([]bool, len(subjects))
		for i, s := range subjects {
			m[i] = covers(strings.Split(p, "."), s)
		}
		matches[p] = m
	}
	for _, a := range patterns {
		for _, p := range patterns {
			wantCover, wantIntersect := true, false
			for i := range subjects {
				if matches[p][i] && !matches[a][i] {
					wantCover = false
				}
				if matches[p][i] && matches[a][i] {
					wantIntersect = true
				}
			}
			if got := covers(strings.Split(a, "."), p); got != wantCover {
				t.Errorf("covers(%q, %q) = %v, want %v", a, p, got, wantCover)
			}
			if got := intersects(strings.Split(a, "."), p); got != wantIntersect {
				t.Errorf("intersects(%q, %q) = %v, want %v", a, p, got, wantIntersect)
			}
		}
	}
	// The matching used above must itself agree with the regexp reference.
	for _, p := range patterns {
		for i, s := range subjects {
			if want := refMatch(p, s); matches[p][i] != want {
				t.Fatalf("match(%q, %q) = %v, want %v", p, s, matches[p][i], want)
			}
		}
	}
}

func benchIdentity(b *testing.B) *Identity {
	b.Helper()
	var allow, deny []string
	for i := range 10 {
		allow = append(allow, fmt.Sprintf("tenant%d.*.events.>", i))
		deny = append(deny, fmt.Sprintf("tenant%d.*.events.secret", i))
	}
	allow = append(allow, "users.{sub}.>")
	p := direction{Allow: allow, Deny: deny}
	return identityWith(b, "alice", permissions{Pub: p, Sub: p})
}

func BenchmarkCanPublish(b *testing.B) {
	id := benchIdentity(b)
	b.ReportAllocs()
	for b.Loop() {
		if !id.CanPublish("users.alice.inbox.x") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkCanSubscribe(b *testing.B) {
	id := benchIdentity(b)
	b.ReportAllocs()
	for b.Loop() {
		if !id.CanSubscribe("tenant9.eu.events.orders.*") {
			b.Fatal("refused")
		}
	}
}
