//go:build !linux

package bridge

import "testing"

// waitUnread needs Linux's TIOCINQ; the tests that call it run on the
// epoll backend only, so elsewhere it is never reached.
func waitUnread(t *testing.T, _, _ int) {
	t.Helper()
	t.Fatal("waitUnread: Linux only")
}
