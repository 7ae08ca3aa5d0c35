package tlsconn

import "testing"

// TestTLSBuffersReachable fails when a Go release moves the crypto/tls
// fields the transport trims (see buffers.go).
func TestTLSBuffersReachable(t *testing.T) {
	if !fieldsOK {
		t.Fatal("crypto/tls.Conn's rawInput, input or hand changed: idle TLS connections keep their buffers")
	}
}
