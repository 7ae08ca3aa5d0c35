package bridge

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps conn inside the 512-byte allocation size class: every
// idle connection holds one, and the next class is 576 bytes.
// docs/BENCHMARKS.md has the per-connection figures it is part of.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 512 {
		t.Fatalf("conn is %d bytes, over the 512-byte size class: pack its fields (bools together, narrow ints) or move cold ones out", n)
	}
}
