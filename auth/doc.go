// Package auth decides who a WebSocket client is and what it may touch.
//
// It owns three things: verifying the bearer token presented at the
// handshake (mode "none" or signed JWTs, see [Config]), matching the
// publish and subscribe permissions carried by a token against NATS
// subjects, and the browser Origin policy ([OriginPolicy]).
//
// It does not own sockets, HTTP, NATS connections or subject validation:
// the bridge validates subjects, filters delivery of reserved subjects and
// maps the errors returned here to HTTP statuses. The package imports
// nothing else from this repository; main adapts [Verifier.Verify] to the
// bridge's Authorizer interface.
//
// A [Verifier], an [Identity] and an [OriginPolicy] are safe for concurrent
// use. [Verifier.Reload] swaps the key set atomically: a verification in
// flight uses either the old keys or the new ones, never a mix. The
// package starts no goroutines.
package auth
