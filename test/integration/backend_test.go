package integration

import (
	"strings"
	"testing"

	"wsbridge/netpoll"
)

// TestBackendAtStart: the binary says at start that it runs the portable
// backend, and says nothing of the kind with epoll.
func TestBackendAtStart(t *testing.T) {
	p := startProcess(t, "BRIDGE_NATS_URL=", "BRIDGE_EMBEDDED_NATS_LISTEN=off", "BRIDGE_DATA_DIR="+t.TempDir())
	if !p.logs.waitFor(`"msg":"wsbridge listening"`, wait) {
		t.Fatalf("no listening line:\n%s", p.logs)
	}
	said := strings.Contains(p.logs.String(), `"msg":"portable backend`)
	if said != netpoll.Portable {
		t.Fatalf("portable backend line logged: %v, want %v (netpoll.Portable):\n%s", said, netpoll.Portable, p.logs)
	}
}
