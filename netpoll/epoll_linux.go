//go:build !portable

package netpoll

import (
	easy "github.com/mailru/easygo/netpoll"
)

// epoll wraps easygo's low-level epoll API. The higher-level
// easygo.Handle/NewDesc are avoided on purpose: they dup the descriptor
// (two fds per connection) and wrap it in an *os.File whose Fd() can switch
// the socket to blocking mode and whose finalizer may close a reused fd.
// Portable reports whether this build uses the portable backend
// (epoll_portable.go); false here: descriptors are watched by epoll.
const Portable = false

type epoll struct {
	ep *easy.Epoll
}

const watched = easy.EPOLLIN | easy.EPOLLOUT | easy.EPOLLRDHUP | easy.EPOLLET

func newEpoll(onErr func(error)) (epoll, error) {
	ep, err := easy.EpollCreate(&easy.EpollConfig{OnWaitError: onErr})
	return epoll{ep: ep}, err
}

// add registers fd. cb runs inline on easygo's single epoll_wait goroutine,
// so it only translates the event and hands off.
func (e epoll) add(fd int, cb func(Event)) error {
	return e.ep.Add(fd, watched, func(ev easy.EpollEvent) {
		var out Event
		if ev&(easy.EPOLLIN|easy.EPOLLPRI) != 0 {
			out |= Readable
		}
		if ev&easy.EPOLLOUT != 0 {
			out |= Writable
		}
		if ev&(easy.EPOLLRDHUP|easy.EPOLLHUP|easy.EPOLLERR) != 0 {
			out |= Hangup | Readable
		}
		if out == 0 {
			// easygo's private "epoll closed" notification, sent to
			// every callback on Close: the owner cleans up itself.
			return
		}
		cb(out)
	})
}

func (e epoll) del(fd int) error { return e.ep.Del(fd) }

func (e epoll) close() error { return e.ep.Close() }
