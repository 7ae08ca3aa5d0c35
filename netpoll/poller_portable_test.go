//go:build !linux || portable

package netpoll

import (
	"strings"
	"testing"
)

// TestPortableRefusesFD: the portable backend has no epoll, so a real
// descriptor is refused with an error that says why.
func TestPortableRefusesFD(t *testing.T) {
	p := newPoller(t, 1)
	err := p.Add(NewDesc(0, handlerFunc(func(Event) {})))
	if err == nil || !strings.Contains(err.Error(), "portable backend") {
		t.Fatalf("Add(fd 0) = %v, want the portable backend's refusal", err)
	}
}
