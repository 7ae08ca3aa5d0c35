// Package bridge is the WebSocket edge itself: Server accepts
// connections, runs admission (auth, origin, host, limits), upgrades them,
// hands each to a netpoll worker, and maps the protocol onto NATS: core
// interest with one NATS subscription per subject and queue per node,
// publishes and requests through internal/publish, whose outbox keeps
// nats.go's connection lock off the workers, JetStream through
// internal/streams, and raw mode.
//
// It owns the *nats.Conn it is given and every connection it accepts. It
// declares the Authorizer it needs and never names auth's types; frame
// and protocol bytes come from internal/wsframe and internal/wire.
// Server's methods are safe for concurrent use; Shutdown is idempotent and
// waits for every goroutine the Server started.
package bridge
