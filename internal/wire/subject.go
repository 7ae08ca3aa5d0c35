package wire

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidSubject reports whether s is a NATS subject: dot-separated non-empty
// tokens. With wildcards, "*" and ">" may stand as whole tokens and ">"
// only last; without, they may not appear. A literal token never contains
// "*" or ">" (so "a*" and "b>" are invalid, not literals), ASCII space or
// control bytes, invalid UTF-8 (or U+FFFD), Unicode spaces or controls:
// the same rules auth applies to permission patterns, so a subject is
// refused as invalid_subject before any permission check.
func ValidSubject(s string, wildcards bool) bool {
	if s == "" || len(s) > MaxSubjectLen {
		return false
	}
	start := 0 // of the current token
	for i := 0; i <= len(s); {
		if i == len(s) || s[i] == '.' {
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
			i++
			start = i
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || (c == '*' || c == '>') && !wildcardToken(s, start, i) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		i += n
	}
	return true
}

// wildcardToken reports whether the byte at i is the whole token that
// starts at start: a wildcard, not part of a literal.
func wildcardToken(s string, start, i int) bool {
	return i == start && (i+1 == len(s) || s[i+1] == '.')
}

// MaxSubjectLen bounds subjects and queue names; NATS has no hard limit
// but nothing legitimate comes close.
const MaxSubjectLen = 1024

// ValidQueue reports whether q is usable as a NATS queue group name: a
// literal subject, as auth requires of the queues it matches.
func ValidQueue(q string) bool { return ValidSubject(q, false) }

// Reserved reports whether a subject or pattern names the JetStream API,
// system traffic or reply inboxes: clients may never publish, request or
// subscribe there, whatever their permissions.
func Reserved(s string) bool {
	return strings.HasPrefix(s, "$") || s == "_INBOX" || strings.HasPrefix(s, "_INBOX.")
}
