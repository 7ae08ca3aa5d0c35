// Package tlsconn is the transport under each wss:// connection's
// *tls.Conn: a net.Conn that passes through to the accepted connection
// during the handshake and, once attached to the bare non-blocking socket,
// never blocks.
//
//   - Reads return ErrWouldBlock, a temporary net.Error, on EAGAIN. In Go
//     1.26 crypto/tls keeps a read error only when it is not a temporary
//     net.Error (crypto/tls/conn.go:633 and :678, readRecordOrCCS), and a
//     partial record stays in its rawInput, so the next readiness event
//     resumes it. A client that sends half a record and stalls holds no
//     worker.
//   - Writes never fail with "would block": crypto/tls makes every write
//     error permanent (conn.go:1248–1255, setErrorLocked). They append the
//     records to the transport's ciphertext buffer (Pending), which the
//     caller writes with non-blocking write(2) like a plain connection's
//     queue and reports with Wrote.
//
// The caller keeps its frames as plaintext and encrypts them at flush
// time, Chunk at a time and only once the ciphertext before them is
// written (records already encrypted cannot be dropped: the peer would
// lose its sequence numbers). The bytes in flight are therefore bounded by
// the caller's own queue plus one chunk.
//
// It also lends crypto/tls its input buffer for each read turn
// (BeginRead, EndRead) and drops the buffers an idle tls.Conn keeps,
// through unexported fields (buffers.go).
// PreferChaCha20 is the server's cipher-suite preference, chosen for the
// same reason: the smallest state an idle connection keeps.
//
// It owns the ciphertext buffer and the lent buffer; it does not own the
// socket, which the caller closes, nor know WebSocket, NATS or what the
// bytes mean. Ciphertext buffers come from wsframe's pool, shared with the
// frames they carry. It starts no goroutines. A Transport and its tls.Conn
// are not safe for concurrent use: after Attach one goroutine at a time
// (the connection's worker) drives both. The functions are safe for
// concurrent use.
package tlsconn
