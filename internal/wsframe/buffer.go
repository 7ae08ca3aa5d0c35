package bridge

import "sync"

// Buffers in flight (partial messages, pending writes, read scratch) come
// from these pools and go back as soon as they are empty, so an idle
// connection holds none.
const (
	bufSize    = 512      // initial capacity of a pooled buffer: most frames are small
	bufMaxKeep = 64 << 10 // larger buffers are dropped, not pooled
	readSize   = 16 << 10 // bytes read from a socket per syscall
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > bufMaxKeep {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

var readPool = sync.Pool{New: func() any { b := make([]byte, readSize); return &b }}
