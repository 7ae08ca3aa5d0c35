// Package procstat samples a process's memory, threads, descriptors and CPU
// time from /proc (Linux only). It owns reading /proc and nothing else.
// Functions are safe for concurrent use.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTick = 100

// Sample is one reading of a process. A zero PID reads /proc/self.
type Sample struct {
	At      time.Time
	RSS     int64         // VmRSS, bytes
	Threads int           // kernel threads
	FDs     int           // open descriptors
	CPU     time.Duration // utime+stime, including exited threads; 10 ms resolution
}

// Read samples process pid; 0 means the calling process.
func Read(pid int) (Sample, error) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	s := Sample{At: time.Now()}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) == 0 {
			continue
		}
		switch string(k) {
		case "VmRSS":
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			s.RSS = kb << 10
		case "Threads":
			s.Threads, _ = strconv.Atoi(f[0])
		}
	}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	s.FDs = len(fds)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("procstat: %w", err)
	}
	// The command name may hold spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("procstat: malformed %s/stat", dir)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("procstat: short %s/stat", dir)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.CPU = time.Duration(ut+st) * time.Second / clockTick
	return s, nil
}
