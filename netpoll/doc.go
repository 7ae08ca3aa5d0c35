// Package netpoll watches many sockets with one epoll instance and runs
// their handlers on a small, fixed pool of worker goroutines.
//
// It owns readiness and scheduling only: it knows file descriptors and
// events, never WebSocket or NATS. An idle descriptor costs no goroutine and
// no buffer, only its Desc.
//
// Off Linux, and on Linux with the build tag portable, the portable
// backend (Portable is true) has no epoll: Add accepts only Descs with
// fd -1, which their owners feed with Schedule. The worker pool, the
// queue and the no-overlap guarantee are the same.
//
// A Desc's Handler is never run concurrently with itself: events that
// arrive while it runs are merged and delivered in the next call. Every
// method is safe for concurrent use.
package netpoll
