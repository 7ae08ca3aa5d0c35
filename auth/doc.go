// Package auth decides who a WebSocket client is and what it may touch.
//
// It owns four things: verifying the bearer token presented at the
// handshake (mode "none" or signed JWTs, see [Config]), matching the
// publish and subscribe permissions carried by a token against NATS
// subjects and queue groups ([Identity]), the browser Origin policy
// ([OriginPolicy]) and the Host policy against DNS rebinding
// ([HostPolicy]).
//
// Permission entries use NATS syntax: subject patterns with "*" and ">",
// and in subscribe lists "SUBJECT QUEUE" (one space) for an entry that
// applies to one queue group (or queue pattern) only. A subject token is
// "*", ">" (last only) or a literal; a token that mixes a wildcard with
// other characters ("a*", "b>") is invalid in configuration, in tokens and
// in every check, so the bridge's own subject validation can agree with
// this package exactly.
//
// It does not own sockets, HTTP, NATS connections or the bridge's subject
// validation: the bridge validates subjects and queue names first, filters
// delivery of reserved subjects and maps the errors returned here to HTTP
// statuses. The package imports
// nothing else from this repository; main adapts [Verifier.Verify] to the
// bridge's Authorizer interface.
//
// A [Verifier], an [Identity], an [OriginPolicy] and a [HostPolicy] are
// safe for concurrent use. [Verifier.Reload] swaps the key set atomically: a verification in
// flight uses either the old keys or the new ones, never a mix. The
// package starts no goroutines.
package auth
