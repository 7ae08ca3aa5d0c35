package auth

import (
	"errors"
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

// queueTests are subscribe lists with queue entries; they also seed
// FuzzQueuePermissions.
var queueTests = []struct {
	name    string
	allow   []string
	deny    []string
	pattern string
	queue   string
	want    bool
}{
	// A plain allow permits the subject with or without any queue.
	{"plain allow, no queue", []string{"svc.>"}, nil, "svc.a", "", true},
	{"plain allow, any queue", []string{"svc.>"}, nil, "svc.a", "workers", true},
	{"plain allow, pattern in queue", []string{"svc.>"}, nil, "svc.*", "web.eu", true},
	// An allow with a queue permits only that queue on that subject.
	{"queue allow, that queue", []string{"svc.> web"}, nil, "svc.a", "web", true},
	{"queue allow, other queue", []string{"svc.> web"}, nil, "svc.a", "workers", false},
	{"queue allow, no queue", []string{"svc.> web"}, nil, "svc.a", "", false},
	{"queue allow, subject not covered", []string{"svc.a web"}, nil, "svc.*", "web", false},
	{"queue allow, other subject", []string{"svc.a web"}, nil, "svc.b", "web", false},
	{"queue allow beside plain allow", []string{"svc.a", "svc.> web"}, nil, "svc.b", "web", true},
	{"plain allow beside queue allow", []string{"svc.a", "svc.> web"}, nil, "svc.a", "workers", true},
	{"queue star", []string{"svc.> web.*"}, nil, "svc.a", "web.eu", true},
	{"queue star, too deep", []string{"svc.> web.*"}, nil, "svc.a", "web.eu.1", false},
	{"queue star, too shallow", []string{"svc.> web.*"}, nil, "svc.a", "web", false},
	{"queue gt", []string{"svc.> web.>"}, nil, "svc.a", "web.eu.1", true},
	{"queue gt only", []string{"svc.> >"}, nil, "svc.a", "anything", true},
	{"queue gt, no queue", []string{"svc.> >"}, nil, "svc.a", "", false},
	// A deny with a queue denies that queue only; a plain deny denies
	// the subject with or without a queue.
	{"queue deny, that queue", []string{"svc.>"}, []string{"svc.> workers"}, "svc.a", "workers", false},
	{"queue deny, other queue", []string{"svc.>"}, []string{"svc.> workers"}, "svc.a", "web", true},
	{"queue deny, no queue", []string{"svc.>"}, []string{"svc.> workers"}, "svc.a", "", true},
	{"queue deny, intersecting pattern", []string{"svc.>"}, []string{"svc.secret workers"}, "svc.*", "workers", false},
	{"queue deny, disjoint subject", []string{"svc.>"}, []string{"svc.secret workers"}, "svc.public", "workers", true},
	{"queue deny star", []string{"svc.>"}, []string{"svc.> workers.*"}, "svc.a", "workers.eu", false},
	{"queue deny star, other depth", []string{"svc.>"}, []string{"svc.> workers.*"}, "svc.a", "workers", true},
	{"queue deny gt, every queue", []string{"svc.>"}, []string{"svc.> >"}, "svc.a", "x.y", false},
	{"queue deny gt, no queue", []string{"svc.>"}, []string{"svc.> >"}, "svc.a", "", true},
	{"plain deny, queue", []string{"svc.>"}, []string{"svc.secret"}, "svc.secret", "workers", false},
	{"plain deny, no queue", []string{"svc.>"}, []string{"svc.secret"}, "svc.secret", "", false},
	{"deny wins over queue allow", []string{"svc.> web"}, []string{"svc.> web"}, "svc.a", "web", false},
	{"deny wins over plain allow", []string{"svc.>", "svc.> web"}, []string{"svc.a"}, "svc.a", "web", false},
	// Queue names are literal subjects.
	{"dotted queue", []string{">"}, nil, "a", "eu.workers", true},
	{"star queue refused", []string{">"}, nil, "a", "*", false},
	{"gt queue refused", []string{">"}, nil, "a", ">", false},
	{"wildcard token in queue refused", []string{"a >"}, nil, "a", "w.*", false},
	{"partial wildcard queue refused", []string{">"}, nil, "a", "w*", false},
	{"empty token in queue refused", []string{">"}, nil, "a", "w..x", false},
	{"space in queue refused", []string{">"}, nil, "a", "w x", false},
	{"tab in queue refused", []string{">"}, nil, "a", "w\tx", false},
	{"control in queue refused", []string{">"}, nil, "a", "w\x00", false},
	{"bad utf-8 in queue refused", []string{">"}, nil, "a", "w\xff", false},
	{"unicode queue", []string{">"}, nil, "a", "ouvrières", true},
	{"reserved-looking queue is just a name", []string{">"}, nil, "a", "$SYS", true},
	// The subject part keeps its rules.
	{"reserved subject with queue", []string{"> >"}, nil, "$SYS.x", "q", false},
	{"invalid subject with queue", []string{"> >"}, nil, "a*", "q", false},
}

func TestCanSubscribeQueue(t *testing.T) {
	for _, tt := range queueTests {
		t.Run(tt.name, func(t *testing.T) {
			id := identityWith(t, "", permissions{Sub: direction{Allow: tt.allow, Deny: tt.deny}})
			if got := id.CanSubscribeQueue(tt.pattern, tt.queue); got != tt.want {
				t.Errorf("allow %q deny %q: CanSubscribeQueue(%q, %q) = %v, want %v", tt.allow, tt.deny, tt.pattern, tt.queue, got, tt.want)
			}
			if tt.queue == "" && id.CanSubscribe(tt.pattern) != tt.want {
				t.Errorf("CanSubscribe(%q) differs from CanSubscribeQueue with no queue", tt.pattern)
			}
		})
	}
}

// TestParseEntries checks which permission entries are accepted, in publish
// and subscribe lists, and the operator-facing error naming the entry.
// entryTests are single permission entries; they also seed
// FuzzQueuePermissions.
var entryTests = []struct {
	name    string
	entry   string
	sub     string
	queues  bool
	wantErr string // substring; empty means valid
	reason  error
}{
	{"subject", "orders.>", "", true, "", nil},
	{"subject and queue", "orders.> workers", "", true, "", nil},
	{"wildcard queue", "orders.> workers.*", "", true, "", nil},
	{"gt queue", "orders.> >", "", true, "", nil},
	{"sub in queue", "users.{sub}.> q.{sub}", "alice", true, "", nil},
	{"sub only in queue", "users.> {sub}", "alice", true, "", nil},
	{"queue in publish list", "orders.> workers", "", false, `invalid pattern "orders.> workers": a queue is not allowed in a publish permission`, errInvalidPermissions},
	{"two spaces", "orders.>  workers", "", true, `"orders.>  workers": more than one space`, errInvalidPermissions},
	{"two queues", "orders.> a b", "", true, "more than one space", errInvalidPermissions},
	{"empty queue", "orders.> ", "", true, `"orders.> ": empty queue`, errInvalidPermissions},
	{"empty subject", " workers", "", true, `" workers": empty subject`, errInvalidPermissions},
	{"only a space", " ", "", true, "empty subject", errInvalidPermissions},
	{"tab separator", "orders.>\tworkers", "", true, "invalid subject", errInvalidPermissions},
	{"bad queue", "orders.> a..b", "", true, `"orders.> a..b": invalid queue`, errInvalidPermissions},
	{"gt not last in queue", "orders.> >.a", "", true, "invalid queue", errInvalidPermissions},
	{"partial wildcard queue", "orders.> w*", "", true, "invalid queue", errInvalidPermissions},
	{"control in queue", "orders.> w\x01", "", true, "invalid queue", errInvalidPermissions},
	{"bad subject with queue", "orders..x workers", "", true, `"orders..x workers": invalid subject`, errInvalidPermissions},
	{"sub needed in queue", "users.> {sub}", "", true, "{sub} needs a sub claim", errInvalidSubject},
	{"sub cannot add a space", "users.> {sub}", "a b", true, "{sub} needs a sub claim", errInvalidSubject},
	{"sub cannot add a token to the queue", "users.> q.{sub}", "a.>", true, "{sub} needs a sub claim", errInvalidSubject},
	// Tokens mixing a wildcard with other characters are invalid.
	{"star suffix", "a*", "", true, "invalid subject", errInvalidPermissions},
	{"star prefix", "*a", "", true, "invalid subject", errInvalidPermissions},
	{"gt suffix", "b>", "", true, "invalid subject", errInvalidPermissions},
	{"gt prefix", "a.>b", "", true, "invalid subject", errInvalidPermissions},
	{"double star", "a.**", "", true, "invalid subject", errInvalidPermissions},
	{"double gt", "a.>>", "", true, "invalid subject", errInvalidPermissions},
	{"star in middle token", "a.b*c.d", "", false, "invalid subject", errInvalidPermissions},
}

func TestParseEntries(t *testing.T) {
	for _, tt := range entryTests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := parseEntries([]string{tt.entry}, tt.sub, tt.queues)
			if tt.wantErr == "" {
				if err != nil || len(es) != 1 {
					t.Fatalf("parseEntries(%q) = %v, %v", tt.entry, es, err)
				}
				return
			}
			var ee *entryError
			if !errors.As(err, &ee) {
				t.Fatalf("parseEntries(%q) = %v, want an *entryError", tt.entry, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if ee.reason != tt.reason {
				t.Errorf("client reason %v, want %v", ee.reason, tt.reason)
			}
		})
	}
}

// TestWildcardTokens checks that a token mixing '*' or '>' with other
// characters is refused as a subject and as a pattern, whatever the
// permissions, so the bridge can answer invalid_subject for it.
func TestWildcardTokens(t *testing.T) {
	p := direction{Allow: []string{">"}}
	id := identityWith(t, "", permissions{Pub: p, Sub: p})
	for _, s := range []string{"a*", "*a", "b>", ">b", "a.b*", "a.*b.c", "a.>>", "a.**", "*>", "a.b>.c", "x.\u2217"} {
		t.Run(s, func(t *testing.T) {
			wantValid := s == "x.\u2217" // U+2217 is not '*'
			if got := id.CanPublish(s); got != wantValid {
				t.Errorf("CanPublish(%q) = %v", s, got)
			}
			if got := id.CanSubscribe(s); got != wantValid {
				t.Errorf("CanSubscribe(%q) = %v", s, got)
			}
			if got := id.CanSubscribeQueue("a", s); got != wantValid {
				t.Errorf("CanSubscribeQueue(a, %q) = %v", s, got)
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

func BenchmarkCanSubscribeQueue(b *testing.B) {
	var allow, deny []string
	for i := range 10 {
		allow = append(allow, fmt.Sprintf("tenant%d.*.events.> web.*", i))
		deny = append(deny, fmt.Sprintf("tenant%d.*.events.secret web.>", i))
	}
	p := direction{Allow: append(allow, "users.{sub}.>"), Deny: deny}
	id := identityWith(b, "alice", permissions{Sub: p})
	b.ReportAllocs()
	for b.Loop() {
		if !id.CanSubscribeQueue("tenant9.eu.events.orders.*", "web.eu") {
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
