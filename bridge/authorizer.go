package bridge

import (
	"errors"
	"time"
)

// Authorizer decides who a client is and what it may touch. The bridge
// declares it and never names the implementation; main wires one in
// (auth.Verifier in production, AllowAll in tests).
//
// Implementations must be safe for concurrent use.
type Authorizer interface {
	// Authenticate turns the token presented at the handshake (empty when
	// the client sent none) into an Identity. A non-nil error refuses the
	// connection with HTTP 401; the error text is the short reason sent to
	// the client, so it must never contain the token.
	Authenticate(token string) (Identity, error)
}

// Identity is an authenticated client and its permissions. Implementations
// must be immutable and safe for concurrent use.
type Identity interface {
	// Subject is the token's "sub" claim; empty for anonymous clients.
	Subject() string
	// Expires is when the identity stops being valid; the zero time means
	// never.
	Expires() time.Time
	// CanPublish reports whether the client may publish or send requests
	// to the literal subject.
	CanPublish(subject string) bool
	// CanSubscribe reports whether the client may subscribe to the
	// pattern: true only if every subject the pattern can match is allowed.
	CanSubscribe(pattern string) bool
	// CanSubscribeQueue is CanSubscribe for a subscription in queue group
	// queue (NATS's "SUBJECT QUEUE" permission entries); queue "" is a
	// plain subscription, the same as CanSubscribe.
	CanSubscribeQueue(pattern, queue string) bool
}

// ErrUnauthorized is the generic authentication failure.
var ErrUnauthorized = errors.New("bridge: unauthorized")

// AllowAll is an Authorizer that lets every client publish and subscribe
// everywhere (reserved subjects stay reserved: the bridge enforces those
// itself).
type AllowAll struct{}

// Authenticate implements Authorizer.
func (AllowAll) Authenticate(string) (Identity, error) { return anonymous{}, nil }

type anonymous struct{}

func (anonymous) Subject() string          { return "" }
func (anonymous) Expires() time.Time       { return time.Time{} }
func (anonymous) CanPublish(string) bool   { return true }
func (anonymous) CanSubscribe(string) bool { return true }

func (anonymous) CanSubscribeQueue(string, string) bool { return true }
