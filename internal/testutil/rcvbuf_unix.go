//go:build unix

package testutil

import (
	"errors"
	"syscall"
)

// recvBuffer returns a net.Dialer Control setting SO_RCVBUF to n bytes.
func recvBuffer(n int) func(network, address string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		return errors.Join(err, serr)
	}
}
