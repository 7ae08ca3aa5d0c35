//go:build !linux || portable

package netpoll

import "errors"

// Portable reports whether this build uses the portable backend: true
// off Linux, and on Linux with the build tag portable. It watches no
// descriptors: every Desc has fd -1 and its owner feeds it events with
// Schedule (the bridge does so from a reader and a writer goroutine per
// connection). The worker pool is the same as with epoll.
const Portable = true

// errPortable is what Add answers for a real descriptor.
var errPortable = errors.New("netpoll: the portable backend watches no descriptors (no epoll on this platform or with -tags portable): use a Desc with fd -1 fed by Schedule")

type epoll struct{}

func newEpoll(func(error)) (epoll, error) { return epoll{}, nil }
func (epoll) add(int, func(Event)) error  { return errPortable }
func (epoll) del(int) error               { return errPortable }
func (epoll) close() error                { return nil }
