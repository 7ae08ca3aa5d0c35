package wsframe

import (
	"sync"
	"testing"
	"unicode/utf8"
)

// properPrefixes holds every proper prefix of every valid UTF-8 encoding:
// the byte strings that may still become valid when more bytes arrive.
var properPrefixes = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool)
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		enc := utf8.AppendRune(nil, r)
		for l := 1; l < len(enc); l++ {
			m[string(enc[:l])] = true
		}
	}
	return m
})

// refUTF8Prefix is utf8Prefix's reference, built from unicode/utf8: n is
// the length of the longest valid prefix of whole code points, and ok
// says whether the rest can still become valid.
func refUTF8Prefix(p []byte) (n int, ok bool) {
	for n < len(p) {
		r, size := utf8.DecodeRune(p[n:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		n += size
	}
	return n, n == len(p) || properPrefixes()[string(p[n:])]
}

func checkUTF8Prefix(t *testing.T, p []byte) {
	t.Helper()
	n, ok := utf8Prefix(p)
	rn, rok := refUTF8Prefix(p)
	if ok != rok || n != rn {
		t.Fatalf("utf8Prefix(%q) = %d, %v; reference says %d, %v", p, n, ok, rn, rok)
	}
	if ok && n == len(p) && !utf8.Valid(p) {
		t.Fatalf("utf8Prefix(%q) accepts the whole of invalid UTF-8", p)
	}
}

// utf8Samples are valid and invalid strings, among them the Autobahn
// §6 cases: overlongs, surrogates, code points past U+10FFFF, stray
// continuation bytes and truncated sequences.
var utf8Samples = []string{
	"", "a", "Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\xf0\x9f\x98\x80 emoji", "\xef\xbf\xbd", "\xef\xbf\xbf",
	"\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80",
	"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
	"\x80", "\xbf", "\x80\xbf\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf", "\xf0\x80\x80\xaf",
	"\xf0\x8f\xbf\xbf", "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80", "\xfe", "\xff", "\xfe\xfe\xff\xff",
	"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
	"\xc2", "\xe0\xa0", "\xf0\x90\x80", "a\xc2b", "\xe2\x82\xac\xe2\x82", "\xf0\x90\x80a", "\xc2\x80\x80",
}

// TestUTF8Prefix compares utf8Prefix with the reference on every prefix of
// the samples, and on every string of up to two bytes.
func TestUTF8Prefix(t *testing.T) {
	for _, s := range utf8Samples {
		for i := 0; i <= len(s); i++ {
			checkUTF8Prefix(t, []byte(s[:i]))
			checkUTF8Prefix(t, []byte("ab"+s[:i]))
		}
	}
	var b [2]byte
	for i := range 256 {
		b[0] = byte(i)
		checkUTF8Prefix(t, b[:1])
		for j := range 256 {
			b[1] = byte(j)
			checkUTF8Prefix(t, b[:2])
		}
	}
}

// TestUTF8PrefixThreeBytes covers every three-byte string whose first byte
// starts a multi-byte sequence, where the range rules are.
func TestUTF8PrefixThreeBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("exhaustive")
	}
	var b [3]byte
	for i := 0xc0; i < 256; i++ {
		for j := 0x70; j < 0xd0; j++ {
			for k := 0x70; k < 0xd0; k++ {
				b = [3]byte{byte(i), byte(j), byte(k)}
				checkUTF8Prefix(t, b[:])
			}
		}
	}
}

func BenchmarkUTF8Prefix(b *testing.B) {
	p := []byte("Hello-µ@ßöäüàá-UTF-8!! κόσμε \xf0\x9f\x98\x80 plain ascii text that dominates real traffic")
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, ok := utf8Prefix(p); !ok {
			b.Fatal("invalid")
		}
	}
}
