//go:build !linux || portable

package tlsconn

import "errors"

// The portable backend has no bare descriptors: a connection keeps its
// net.Conn and its Transport is never attached, so readFD is never
// reached. It exists so that the package compiles where a socket is not
// an int (Windows).

var errNoFD = errors.New("tlsconn: the portable backend has no bare descriptors")

func readFD(int, []byte) (int, error) { return 0, errNoFD }
