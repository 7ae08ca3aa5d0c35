package auth

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// pattern is a validated NATS subject pattern split into tokens. "*"
// matches exactly one token, ">" (last token only) one or more.
type pattern []string

// parsePatterns validates a permission list after replacing "{sub}" with
// sub; nil stays nil (nothing allowed). On failure it returns the offending
// pattern and errInvalidSubject (sub is not a single literal token) or
// errInvalidPermissions.
func parsePatterns(list []string, sub string) ([]pattern, string, error) {
	if list == nil {
		return nil, "", nil
	}
	ps := make([]pattern, 0, len(list))
	for _, s := range list {
		expanded := s
		if strings.Contains(s, "{sub}") {
			if !validToken(sub) {
				return nil, s, errInvalidSubject
			}
			expanded = strings.ReplaceAll(s, "{sub}", sub)
		}
		if !validSubject(expanded, true) {
			return nil, s, errInvalidPermissions
		}
		ps = append(ps, strings.Split(expanded, "."))
	}
	return ps, "", nil
}

// validSubject reports whether s is a well-formed subject: non-empty
// dot-separated tokens with no whitespace or control characters. With
// wildcards, "*" may be any token and ">" the last one; a token that merely
// contains '*' or '>' is refused to avoid literal-versus-wildcard confusion.
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

// permitted reports whether some allow pattern covers s and no deny pattern
// intersects it; s must already be valid.
func permitted(allow, deny []pattern, s string) bool {
	ok := false
	for _, a := range allow {
		if covers(a, s) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, d := range deny {
		if intersects(d, s) {
			return false
		}
	}
	return true
}
