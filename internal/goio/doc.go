// Package goio is the portable backend's connection I/O: where there is
// no epoll (off Linux, or with the build tag portable), a connection keeps
// its net.Conn, TLS or not, and a reader and a writer goroutine do
// blocking I/O on it for the same worker-driven protocol code that runs on
// bare non-blocking sockets elsewhere.
//
// A Conn exchanges bytes with that code through two small buffers that
// behave like a non-blocking socket: Read and Write return syscall.EAGAIN
// when they would block, and the Config's Readable and Writable callbacks
// say when that changes, as edge-triggered readiness would. CloseWrite is
// shutdown(SHUT_WR) once what was queued is written; Close lets the writer
// flush what is queued (a WebSocket close frame above all) for a short
// linger and then closes the socket.
//
// It costs two goroutines and a 4 KiB read buffer per connection: fine for
// development, not for a production fan-out (README.md, "Portable
// backend"). It is built on every platform, so callers can name it
// whatever the backend.
//
// It owns the net.Conn it is given, its two goroutines and their buffers.
// It does not know WebSocket, NATS, netpoll or what the bytes mean, and
// it does not decide when to read or write: its callbacks only report
// readiness to whoever schedules that.
//
// A Conn is safe for concurrent use by its caller and its own goroutines,
// but Read and Write are meant for one goroutine at a time (the
// connection's worker): two readers would split the stream between them.
package goio
