// Package wsframetest holds the RFC 6455 conformance cases that need
// nothing but frames, and the client frame builders they are written
// with. One table serves two suites: wsframe's own tests run every case
// against the Assembler, fed in many splittings, and bridge's end-to-end
// suite sends the same bytes to a live bridge over ws:// and wss:// and
// checks what comes back. A case says what the frame layer must make of
// its bytes (messages and control frames delivered, or the close code the
// connection fails with); each suite turns that into what its endpoint
// does.
//
// It is imported only by _test.go files. It knows bytes and RFCs only: not
// the JSON protocol (text payloads come from the caller's MessageFunc),
// not sockets, not NATS, and it imports nothing of wsbridge, so that
// wsframe's in-package tests can use it too. It keeps no state: every
// function is safe for concurrent use and returns newly allocated bytes.
package wsframetest
