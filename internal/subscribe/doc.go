// Package subscribe makes and ends a node's core NATS subscriptions off
// its callers' goroutines, and confirms new ones in batches. nats.go's
// Subscribe and Unsubscribe take the connection's lock, which a write
// stuck on a frozen NATS socket holds; so callers (in bridge, workers and
// handshakes) queue an op and go on, and one goroutine, Run, applies the
// ops and then confirms them with one FlushTimeout round trip covering
// every SUB written before it. A thousand clients subscribing at once
// cost a handful of round trips. While NATS is unreachable the flush is
// retried until it succeeds or Run is stopped, so the subscriptions go
// live once NATS is back.
//
// It owns the queue of ops (bounded: see Full), the Waiters, and the loop
// that batches them; Run is started and waited for by its owner. It does
// not own the subscriptions: an Interest makes and ends its own, keeps
// its *nats.Subscription and records a refusal. It knows nothing of
// connections, sockets or the client protocol: what being confirmed means
// (in bridge, an interest marked ready and a client's ok queued) is the
// Waiter's business.
//
// Ordering: ops are applied in the order they were queued, so an
// Unsubscribe queued after its Subscribe comes after it (bridge queues
// both under its interest lock). A Waiter hears Confirmed only once every
// op queued before its Await, by any goroutine, has been applied (a
// refused Subscribe included: its Interest has recorded why) and a round
// trip sent after them has been answered; ops queued after the Await may
// have been applied too. Waiters hear in the order of their Awaits.
//
// Lock order: the caller's lock, then the Flusher's. The Flusher holds
// its own only to queue or take ops and Waiters, never across a call to
// an Interest, a Waiter or nats.go. So a caller may hold its lock across
// Full and Subscribe (bridge holds imu, which makes the check and the
// queueing one step), and an Interest or a Waiter may take that lock
// (bridge's Interest takes imu after a refused subscribe, its Waiter the
// connection's lock). An Interest must not hold it across its own
// nats.go call, or a stuck NATS write would stall the callers through it.
//
// Full, Subscribe, Unsubscribe and Await are safe for concurrent use and
// never block on NATS. Run is called once, on a goroutine of its owner;
// Waiters still waiting when it is stopped never hear.
package subscribe
