package auth

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pattern is a validated NATS subject pattern split into tokens. "*"
// matches exactly one token, ">" (last token only) one or more.
type pattern []string

// entry is one permission: a subject pattern and, for a subscribe entry
// written "SUBJECT QUEUE" (NATS syntax, one space), a queue pattern. A nil
// queue means the entry applies to the subject with or without a queue.
type entry struct {
	subject pattern
	queue   pattern
}

// entryError says which permission entry is invalid and why. Error is for
// operators (it names the entry); reason is the short client-safe error
// Verify returns for a token carrying it.
type entryError struct {
	entry  string // as written, before "{sub}" substitution
	detail string
	reason error // errInvalidSubject or errInvalidPermissions
}

func (e *entryError) Error() string {
	return fmt.Sprintf("invalid pattern %q: %s", e.entry, e.detail)
}

// parseEntries validates a permission list after replacing "{sub}" with
// sub, in the queue part as well as the subject; nil stays nil (nothing
// allowed). queues says whether "SUBJECT QUEUE" entries are accepted
// (subscribe lists) or refused (publish lists). Both parts must be valid
// subject patterns; sub must be a single literal token where "{sub}" is
// used, so it can add neither a token nor a space. Errors are *entryError.
func parseEntries(list []string, sub string, queues bool) ([]entry, error) {
	if list == nil {
		return nil, nil
	}
	es := make([]entry, 0, len(list))
	for _, s := range list {
		bad := func(detail string) error {
			return &entryError{entry: s, detail: detail, reason: errInvalidPermissions}
		}
		expanded := s
		if strings.Contains(s, "{sub}") {
			if !validToken(sub) {
				return nil, &entryError{entry: s, detail: "{sub} needs a sub claim that is a single literal token", reason: errInvalidSubject}
			}
			expanded = strings.ReplaceAll(s, "{sub}", sub)
		}
		subj, queue, hasQueue := strings.Cut(expanded, " ")
		var e entry
		switch {
		case hasQueue && !queues:
			return nil, bad("a queue is not allowed in a publish permission")
		case hasQueue && strings.Contains(queue, " "):
			return nil, bad(`more than one space (want "SUBJECT" or "SUBJECT QUEUE")`)
		case hasQueue && subj == "":
			return nil, bad("empty subject")
		case hasQueue && queue == "":
			return nil, bad("empty queue")
		case !validSubject(subj, true):
			return nil, bad("invalid subject")
		case hasQueue && !validSubject(queue, true):
			return nil, bad("invalid queue")
		}
		e.subject = strings.Split(subj, ".")
		if hasQueue {
			e.queue = strings.Split(queue, ".")
		}
		es = append(es, e)
	}
	return es, nil
}

// validSubject reports whether s is a well-formed subject: non-empty
// dot-separated tokens with no whitespace or control characters. With
// wildcards, "*" may be any token and ">" the last one; a token that merely
// contains '*' or '>' ("a*", "*a", "b>") is refused everywhere to avoid
// literal-versus-wildcard confusion. The bridge's subject validation must
// accept exactly the same subjects (it adds only a length bound), or a
// client would see permission_denied where invalid_subject is due.
func validSubject(s string, wildcards bool) bool {
	if s == "" {
		return false
	}
	for s != "" {
		tok, rest, more := strings.Cut(s, ".")
		if more && rest == "" {
			return false // trailing dot
		}
		switch {
		case tok == "*" && wildcards:
		case tok == ">" && wildcards:
			if more {
				return false
			}
		case !validToken(tok):
			return false
		}
		s = rest
	}
	return true
}

// validToken reports whether tok is a single literal subject token: non-empty,
// valid UTF-8, without '.', '*', '>', whitespace or control characters.
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); {
		c := tok[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(tok[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		i += n
	}
	return true
}

// reserved reports whether the first token of s names a subject the bridge
// keeps for itself ("$..." system subjects and "_INBOX" reply subjects).
func reserved(s string) bool {
	first, _, _ := strings.Cut(s, ".")
	return strings.HasPrefix(first, "$") || first == "_INBOX"
}

// covers reports whether every subject matched by the valid pattern s is
// also matched by a. For a literal s this is plain matching.
func covers(a pattern, s string) bool {
	for _, at := range a {
		if s == "" {
			return false // a needs more tokens than s has
		}
		st, rest, _ := strings.Cut(s, ".")
		switch {
		case at == ">":
			return true
		case st == ">":
			return false // s matches any depth, a only this one
		case at == "*":
		case st == "*":
			return false
		case at != st:
			return false
		}
		s = rest
	}
	return s == ""
}

// intersects reports whether some subject is matched by both d and the valid
// pattern s.
func intersects(d pattern, s string) bool {
	for _, dt := range d {
		if s == "" {
			return false
		}
		st, rest, _ := strings.Cut(s, ".")
		if dt == ">" || st == ">" {
			return true
		}
		if dt != "*" && st != "*" && dt != st {
			return false
		}
		s = rest
	}
	return s == ""
}

// permitted reports whether some allow entry covers s and no deny entry
// intersects it, counting only entries without a queue or, when q is not
// empty, entries whose queue pattern matches q. s must be a valid pattern
// and q empty or a valid literal.
func permitted(allow, deny []entry, s, q string) bool {
	ok := false
	for _, a := range allow {
		if appliesTo(a, q) && covers(a.subject, s) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, d := range deny {
		if appliesTo(d, q) && intersects(d.subject, s) {
			return false
		}
	}
	return true
}

// appliesTo reports whether e counts for a subscription in queue q ("" for
// none): a plain entry counts for every subscription, a queue entry only for
// a queue its pattern matches.
func appliesTo(e entry, q string) bool {
	if e.queue == nil {
		return true
	}
	return q != "" && covers(e.queue, q)
}
