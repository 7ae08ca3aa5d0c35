//go:build !portable

package tlsconn

import (
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// waitUnread waits until fd has at least n bytes to read.
func waitUnread(t *testing.T, fd, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var have int32
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&have)))
		if errno != 0 {
			t.Fatal(errno)
		}
		if int(have) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes to read, want %d", have, n)
		}
		tick()
	}
}
