package wsframe

import "sync"

// Buffers in flight (partial messages, pending writes, frames being built)
// come from one pool and go back as soon as they are empty, so an idle
// connection holds none.
const (
	bufSize    = 512      // initial capacity of a pooled buffer: most frames are small
	bufMaxKeep = 64 << 10 // larger buffers are dropped, not pooled
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

// GetBuffer returns an empty pooled buffer. Give it back with PutBuffer.
func GetBuffer() *[]byte { return bufPool.Get().(*[]byte) }

// PutBuffer returns b to the pool; the caller must not use it afterwards.
func PutBuffer(b *[]byte) {
	if cap(*b) > bufMaxKeep {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
