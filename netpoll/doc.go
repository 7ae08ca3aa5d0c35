// Package netpoll watches many sockets with one epoll instance and runs
// their handlers on a small, fixed pool of worker goroutines.
//
// It owns readiness and scheduling only: it knows file descriptors and
// events, never WebSocket or NATS. An idle descriptor costs no goroutine and
// no buffer, only its Desc.
//
// A Desc's Handler is never run concurrently with itself: events that
// arrive while it runs are merged and delivered in the next call. Every
// method is safe for concurrent use.
package netpoll
