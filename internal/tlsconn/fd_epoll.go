//go:build linux && !portable

package tlsconn

import "syscall"

// readFD is one non-blocking read(2); EAGAIN means no bytes now.
func readFD(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err == syscall.EINTR {
			continue
		}
		return max(n, 0), err
	}
}
