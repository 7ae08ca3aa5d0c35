//go:build !linux || portable

package bridge

import "errors"

// The portable backend has no bare descriptors: every connection keeps
// its net.Conn and is served by internal/goio, so conn.fd stays -1 and
// these are never reached. They exist so the shared code compiles where a
// socket is not an int (Windows).

var errNoFD = errors.New("bridge: the portable backend has no bare descriptors")

func readFD(int, []byte) (int, error)  { return 0, errNoFD }
func writeFD(int, []byte) (int, error) { return 0, errNoFD }
func shutdownWriteFD(int) error        { return errNoFD }
func closeFD(int) error                { return errNoFD }
func dupCloexec(int) (int, error)      { return -1, errNoFD }
