//go:build linux && !portable

package bridge

import "syscall"

// The bare-descriptor I/O of the epoll backend. After attach a plain
// connection is only its socket fd (conn.fd), which these read, write,
// half-close and close; fd_portable.go has the portable backend's
// counterparts.

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

// writeFD is one non-blocking write(2); EAGAIN means the send buffer is
// full.
func writeFD(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == nil && n <= 0:
			return 0, syscall.EIO
		}
		return max(n, 0), err
	}
}

// shutdownWriteFD half-closes fd: the peer reads EOF after what was sent.
func shutdownWriteFD(fd int) error { return syscall.Shutdown(fd, syscall.SHUT_WR) }

func closeFD(fd int) error { return syscall.Close(fd) }

// dupCloexec duplicates fd with close-on-exec set.
func dupCloexec(fd int) (int, error) {
	nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}
