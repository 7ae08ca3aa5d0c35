package bridge

import "syscall"

// presizeFDTable grows this process's descriptor table to its limit once,
// at start, while the process has few threads: growing it later, under a
// connection storm, stalls every descriptor-allocating syscall of every
// thread (the kernel waits for an RCU grace period per resize).
func presizeFDTable() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil || rl.Cur < 1024 {
		return
	}
	top := int(min(rl.Cur, 1<<20) - 1)
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	if syscall.Dup3(fd, top, syscall.O_CLOEXEC) == nil {
		_ = syscall.Close(top)
	}
}
