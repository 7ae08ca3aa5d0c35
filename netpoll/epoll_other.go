//go:build !linux

package netpoll

import "errors"

// errUnsupported is returned on platforms without epoll.
var errUnsupported = errors.New("netpoll: epoll is only available on linux")

type epoll struct{}

func newEpoll(func(error)) (epoll, error) { return epoll{}, errUnsupported }
func (epoll) add(int, func(Event)) error  { return errUnsupported }
func (epoll) del(int) error               { return errUnsupported }
func (epoll) close() error                { return nil }
