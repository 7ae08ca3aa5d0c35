package wsframe

import "unicode/utf8"

// utf8Prefix checks p, which may end in the middle of a code point, and
// returns how many leading bytes are complete, valid UTF-8. ok is false as
// soon as a byte makes p invalid whatever follows (RFC 6455 §8.1: fail
// fast); otherwise p[n:] is a proper prefix of some valid sequence.
func utf8Prefix(p []byte) (n int, ok bool) {
	for n < len(p) {
		if c := p[n]; c < utf8.RuneSelf {
			n++
			continue
		}
		r, size := utf8.DecodeRune(p[n:])
		if r != utf8.RuneError || size > 1 {
			n += size
			continue
		}
		return n, validPrefix(p[n:])
	}
	return n, true
}

// validPrefix reports whether p (shorter than a full sequence) can still
// become valid UTF-8 when more bytes arrive.
func validPrefix(p []byte) bool {
	if len(p) == 0 || len(p) >= utf8.UTFMax {
		return false
	}
	c := p[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 2
	case c == 0xE0:
		need, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 3
	case c == 0xED:
		need, hi = 3, 0x9F
	case c == 0xF0:
		need, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 4
	case c == 0xF4:
		need, hi = 4, 0x8F
	default:
		return false
	}
	if len(p) >= need {
		return false // complete yet undecodable
	}
	for i, b := range p[1:] {
		if i == 0 && (b < lo || b > hi) {
			return false
		}
		if i > 0 && (b < 0x80 || b > 0xBF) {
			return false
		}
	}
	return true
}
