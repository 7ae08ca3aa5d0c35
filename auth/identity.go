package auth

import (
	"errors"
	"time"
)

// Identity is an authenticated client and its permissions. It is immutable
// and safe for concurrent use.
type Identity struct {
	subject  string
	expires  time.Time
	pubAllow []entry // never with a queue
	pubDeny  []entry
	subAllow []entry
	subDeny  []entry
}

// Subject returns the token's "sub" claim; empty for anonymous clients.
func (id *Identity) Subject() string { return id.subject }

// Expires returns the token's "exp" claim plus the leeway; the zero time
// means never (anonymous clients).
func (id *Identity) Expires() time.Time { return id.expires }

// CanPublish reports whether the client may publish or send requests to the
// literal subject: some "pub" allow pattern matches it and no deny pattern
// does. Invalid subjects, subjects containing wildcards and reserved
// subjects ("$..." and "_INBOX...") are refused. A literal subject is one or
// more tokens separated by '.', each non-empty valid UTF-8 without '*', '>',
// whitespace (unicode.IsSpace) or control characters (unicode.IsControl,
// DEL included).
func (id *Identity) CanPublish(subject string) bool {
	if !validSubject(subject, false) || reserved(subject) {
		return false
	}
	return permitted(id.pubAllow, id.pubDeny, subject, "")
}

// CanSubscribe reports whether the client may subscribe to pattern without a
// queue group; it is CanSubscribeQueue(pattern, "").
func (id *Identity) CanSubscribe(pattern string) bool {
	return id.CanSubscribeQueue(pattern, "")
}

// CanSubscribeQueue reports whether the client may subscribe to pattern in
// queue group queue ("" for a plain subscription). It is true only if every
// subject the pattern can match is allowed: some "sub" allow entry covers
// the pattern and no deny entry can match any subject it matches. Entries
// written "SUBJECT QUEUE" count only for a queue their queue pattern matches
// (wildcards allowed, as in NATS): an allow entry with a queue permits that
// queue only, a deny entry with a queue denies that queue only, and plain
// entries apply with or without any queue. A non-empty queue must be a
// literal subject (dot-separated tokens, no wildcards, see CanPublish for
// the characters); anything else is refused. Patterns whose first token is
// literally reserved ("$..." or "_INBOX") are refused; ">" stays
// subscribable, the bridge filters reserved deliveries.
func (id *Identity) CanSubscribeQueue(pattern, queue string) bool {
	if !validSubject(pattern, true) || reserved(pattern) {
		return false
	}
	if queue != "" && !validSubject(queue, false) {
		return false
	}
	return permitted(id.subAllow, id.subDeny, pattern, queue)
}

// permissions is the "nats" claim.
type permissions struct {
	Pub direction `json:"pub"`
	Sub direction `json:"sub"`
}

// direction is one side of the "nats" claim; a missing allow list allows
// nothing.
type direction struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// newIdentity builds an Identity from verified claims, substituting "{sub}"
// in patterns. It fails with errInvalidPermissions if an entry is invalid
// (including a queue in a "pub" list) and errInvalidSubject if "{sub}" is
// used and sub is not a single literal token.
func newIdentity(sub string, exp time.Time, p *permissions) (*Identity, error) {
	id := &Identity{subject: sub, expires: exp}
	if p == nil {
		return id, nil
	}
	lists := []struct {
		dst    *[]entry
		src    []string
		queues bool
	}{
		{&id.pubAllow, p.Pub.Allow, false},
		{&id.pubDeny, p.Pub.Deny, false},
		{&id.subAllow, p.Sub.Allow, true},
		{&id.subDeny, p.Sub.Deny, true},
	}
	for _, l := range lists {
		es, err := parseEntries(l.src, sub, l.queues)
		if err != nil {
			// Clients get the short reason; the entry stays unnamed.
			if ee := (*entryError)(nil); errors.As(err, &ee) {
				return nil, ee.reason
			}
			return nil, errInvalidPermissions
		}
		*l.dst = es
	}
	return id, nil
}
