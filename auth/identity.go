package auth

import "time"

// Identity is an authenticated client and its permissions. It is immutable
// and safe for concurrent use.
type Identity struct {
	subject  string
	expires  time.Time
	pubAllow []pattern
	pubDeny  []pattern
	subAllow []pattern
	subDeny  []pattern
}

// Subject returns the token's "sub" claim; empty for anonymous clients.
func (id *Identity) Subject() string { return id.subject }

// Expires returns the token's "exp" claim plus the leeway; the zero time
// means never (anonymous clients).
func (id *Identity) Expires() time.Time { return id.expires }

// CanPublish reports whether the client may publish or send requests to the
// literal subject: some "pub" allow pattern matches it and no deny pattern
// does. Invalid subjects, subjects containing wildcards and reserved
// subjects ("$..." and "_INBOX...") are refused.
func (id *Identity) CanPublish(subject string) bool {
	if !validSubject(subject, false) || reserved(subject) {
		return false
	}
	return permitted(id.pubAllow, id.pubDeny, subject)
}

// CanSubscribe reports whether the client may subscribe to pattern: true only
// if every subject the pattern can match is allowed, that is some "sub" allow
// pattern covers it and no deny pattern can match any subject it matches.
// Patterns whose first token is literally reserved ("$..." or "_INBOX") are
// refused; ">" stays subscribable, the bridge filters reserved deliveries.
func (id *Identity) CanSubscribe(pattern string) bool {
	if !validSubject(pattern, true) || reserved(pattern) {
		return false
	}
	return permitted(id.subAllow, id.subDeny, pattern)
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
// in patterns. It fails if a pattern is invalid or "{sub}" is used and sub
// is not a single literal token.
func newIdentity(sub string, exp time.Time, p *permissions) (*Identity, error) {
	id := &Identity{subject: sub, expires: exp}
	if p == nil {
		return id, nil
	}
	var err error
	if id.pubAllow, _, err = parsePatterns(p.Pub.Allow, sub); err != nil {
		return nil, err
	}
	if id.pubDeny, _, err = parsePatterns(p.Pub.Deny, sub); err != nil {
		return nil, err
	}
	if id.subAllow, _, err = parsePatterns(p.Sub.Allow, sub); err != nil {
		return nil, err
	}
	if id.subDeny, _, err = parsePatterns(p.Sub.Deny, sub); err != nil {
		return nil, err
	}
	return id, nil
}
