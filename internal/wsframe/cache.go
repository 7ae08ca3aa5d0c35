package bridge

// shapes holds the frames built for one message, one per distinct receiver
// shape K (subscription id, protocol, compression), so a message fanned
// out to many clients is encoded once per shape, not once per client. Its
// owner resets it for each message; it is not safe for concurrent use.
type shapes[K comparable] struct {
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

func (s *shapes[K]) reset() {
	s.frames, s.built = s.frames[:0], s.built[:0]
	clear(s.byKey)
}

// lookup returns the frame built for k, valid until the next reset.
func (s *shapes[K]) lookup(k K) ([]byte, bool) {
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

// add records that s.frames[off:] is the frame for k and returns it.
func (s *shapes[K]) add(k K, off int) []byte {
	s.built = append(s.built, shape[K]{key: k, off: off, end: len(s.frames)})
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
	return s.frames[off:]
}

// deflated returns the compressed variant of a frame already built for
// plainKey, compressing it on first use under key.
func (s *shapes[K]) deflated(key K, plain []byte) []byte {
	if f, ok := s.lookup(key); ok {
		return f
	}
	off := len(s.frames)
	s.frames = appendDeflated(s.frames, plain)
	return s.add(key, off)
}

// swapRemove drops s[i] by moving the last element into its place. It
// returns the shorter slice and the element now at i, whose index its
// owner must update, or the zero value when s[i] was the last.
func swapRemove[T comparable](s []T, i int) ([]T, T) {
	var zero T
	last := len(s) - 1
	s[i] = s[last]
	s[last] = zero
	s = s[:last]
	if i < last {
		return s, s[i]
	}
	return s, zero
}
