// Package wire is the JSON protocol on /ws (docs/PROTOCOL.md): decoding a
// client's command, encoding the envelopes the bridge sends, the error
// codes, the subject and header rules, and where a JetStream subscription
// starts (From).
//
// It owns the bytes of the protocol and nothing else: no sockets, no
// NATS. Its encoders append to a caller's buffer; Decode copies what it
// keeps, so the input may be reused. Everything is safe for concurrent
// use.
package wire
