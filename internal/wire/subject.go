package wire

import "strings"

// ValidSubject reports whether s is a NATS subject: dot-separated non-empty
// tokens without whitespace or control characters. With wildcards, "*" and
// ">" may stand as whole tokens and ">" only last; without, they may not
// appear as tokens at all.
func ValidSubject(s string, wildcards bool) bool {
	if s == "" || len(s) > MaxSubjectLen {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			c := s[i]
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c < 0x20 || c == 0x7f {
				return false
			}
			if c != '.' {
				continue
			}
		}
		tok := s[start:i]
		switch {
		case tok == "":
			return false
		case tok == "*":
			if !wildcards {
				return false
			}
		case tok == ">":
			if !wildcards || i != len(s) {
				return false
			}
		}
		start = i + 1
	}
	return true
}

// MaxSubjectLen bounds subjects and queue names; NATS has no hard limit
// but nothing legitimate comes close.
const MaxSubjectLen = 1024

// ValidQueue reports whether q is usable as a NATS queue group name.
func ValidQueue(q string) bool {
	if q == "" || len(q) > MaxSubjectLen {
		return false
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Reserved reports whether a subject or pattern names the JetStream API,
// system traffic or reply inboxes: clients may never publish, request or
// subscribe there, whatever their permissions.
func Reserved(s string) bool {
	return strings.HasPrefix(s, "$") || s == "_INBOX" || strings.HasPrefix(s, "_INBOX.")
}
