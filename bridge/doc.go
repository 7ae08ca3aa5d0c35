// Package bridge is the WebSocket edge itself: Server accepts
// connections, runs admission (auth, origin, host, limits), upgrades them,
// hands each to a netpoll worker, and maps the protocol onto NATS: core
// interest with one NATS subscription per subject and queue per node,
// publishes and requests, JetStream, and raw mode.
//
// It owns the connection state machine and the *nats.Conn; the layers
// under it are packages of their own, which know nothing of bridge:
// internal/wsframe (RFC 6455 frames and the opening handshake),
// internal/wire (the JSON protocol), internal/streams (JetStream
// delivery), internal/publish (publishes and requests off the workers),
// internal/subscribe (core subscriptions off the workers),
// internal/tlsconn and internal/goio (a connection's I/O over TLS and on
// the portable backend), internal/cluster (announcements and
// rebalancing arithmetic), internal/metrics, internal/ratelimit and
// internal/memtrim. It declares the Authorizer it needs and never names
// auth's types. Server's methods are safe for concurrent use; Shutdown is
// idempotent and waits for every goroutine the Server started.
package bridge
