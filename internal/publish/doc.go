// Package publish is the path from a client's publish to nats.go: core
// pubs, acked pubs, requests and raw-mode messages. Its Outbox keeps
// nats.go's Publish, which takes the connection's lock and can block on a
// stuck NATS socket, off the caller's goroutine: callers queue a job and
// go on, one goroutine publishes, and a watchdog refuses new jobs and
// answers queued ones unavailable once a publish has been stuck. Requests
// share one wildcard inbox subscription, with a timer each, so a request
// costs no goroutine and no NATS subscription.
//
// It owns the queue, the publisher and watchdog goroutines (Start, Close)
// and the request inbox. It knows nats.go and the wire error codes, and
// hands acked pubs to internal/streams' Publisher, which tracks their
// PubAcks. It knows nothing of sockets, frames or connection state: the
// client is a Member, which it answers and never waits for.
//
// Every method of Outbox is safe for concurrent use and never blocks on
// NATS.
package publish
