// Package wsframe is the RFC 6455 layer: the incremental Assembler that
// turns a client's byte stream into messages and control frames (with the
// UTF-8 and size rules of §5 and §8.1), permessage-deflate (RFC 7692),
// server frame writers, the per-message Fanout that writes one encoded
// body to many receivers, the one table of close codes and reasons, the
// parsers of an upgrade request's head, and the server side of the
// opening handshake (Upgrader), which reads what admission needs into a
// Request. Admission itself (limits, origin and token policy) is not
// here: Upgrader.Accept is the caller's.
//
// It knows bytes and RFCs only: not sockets, not the JSON protocol, not
// NATS. It imports gobwas/ws for the protocol's constants and handshake
// helpers and starts no goroutines. Assembler and Fanout are not safe for
// concurrent use; their owner drives them from one goroutine at a time.
// An Upgrader is safe for concurrent use if its Accept is. The functions
// are safe for concurrent use.
package wsframe
