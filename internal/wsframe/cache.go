package wsframe

// Cache holds the frames built for one message, one per distinct receiver
// shape K (subscription id, protocol, compression), so a message fanned
// out to many clients is encoded once per shape, not once per client. Its
// owner resets it for each message. Frames it returns are valid until the
// next Reset. It is not safe for concurrent use; the zero Cache is empty
// and ready.
type Cache[K comparable] struct {
	frames []byte // the frames, back to back
	built  []shape[K]
	byKey  map[K]int // index into built, once it outgrows linear search
}

type shape[K comparable] struct {
	key      K
	off, end int
}

// maxLinear is how many distinct shapes are looked up linearly before an
// index map is used.
const maxLinear = 8

// Reset forgets every frame, keeping the memory for the next message.
func (s *Cache[K]) Reset() {
	s.frames, s.built = s.frames[:0], s.built[:0]
	clear(s.byKey)
}

// Lookup returns the frame built for k.
func (s *Cache[K]) Lookup(k K) ([]byte, bool) {
	if len(s.built) > maxLinear {
		if i, ok := s.byKey[k]; ok {
			b := s.built[i]
			return s.frames[b.off:b.end], true
		}
		return nil, false
	}
	for _, b := range s.built {
		if b.key == k {
			return s.frames[b.off:b.end], true
		}
	}
	return nil, false
}

// Len is the number of frames built since the last Reset.
func (s *Cache[K]) Len() int { return len(s.built) }

// Buffer returns the cache's frame buffer. The caller appends one frame
// to it and hands the result to Add.
func (s *Cache[K]) Buffer() []byte { return s.frames }

// Add records that frames, the result of appending to Buffer, ends with
// the frame for k, and returns that frame.
func (s *Cache[K]) Add(k K, frames []byte) []byte {
	off := len(s.frames)
	s.frames = frames
	s.built = append(s.built, shape[K]{key: k, off: off, end: len(frames)})
	switch {
	case len(s.built) == maxLinear+1:
		if s.byKey == nil {
			s.byKey = make(map[K]int)
		}
		for i, b := range s.built {
			s.byKey[b.key] = i
		}
	case len(s.built) > maxLinear+1:
		s.byKey[k] = len(s.built) - 1
	}
	return frames[off:]
}

// Deflated returns the compressed variant of plain, a frame built for
// another key, compressing it on first use under key.
func (s *Cache[K]) Deflated(key K, plain []byte) []byte {
	if f, ok := s.Lookup(key); ok {
		return f
	}
	return s.Add(key, AppendDeflated(s.frames, plain))
}

// Cap is the memory the cache holds for its frames, in bytes.
func (s *Cache[K]) Cap() int { return cap(s.frames) }
