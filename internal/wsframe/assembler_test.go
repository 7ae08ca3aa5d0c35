package wsframe

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"wsbridge/internal/wsframe/wsframetest"
)

// Short names for the client frames the tests build with wsframetest: a
// frame's first byte (FIN, RSV1-3, opcode) as RFC 6455 §5.2 draws it.
const (
	bFin  = wsframetest.Fin
	bRsv1 = wsframetest.Rsv1
	bRsv2 = wsframetest.Rsv2
	bRsv3 = wsframetest.Rsv3

	bCont   = byte(ws.OpContinuation)
	bText   = byte(ws.OpText)
	bBinary = byte(ws.OpBinary)
	bClose  = byte(ws.OpClose)
	bPing   = byte(ws.OpPing)
	bPong   = byte(ws.OpPong)
)

func clientHeader(b0 byte, n uint64) []byte  { return wsframetest.ClientHeader(b0, n) }
func clientFrame(b0 byte, p []byte) []byte   { return wsframetest.ClientFrame(b0, p) }
func unmaskedFrame(b0 byte, p []byte) []byte { return wsframetest.UnmaskedFrame(b0, p) }
func closePayload(code uint16, r string) []byte {
	return wsframetest.ClosePayload(ws.StatusCode(code), r)
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

// event is one call of the assembler's sink, copied.
type event struct {
	op  ws.OpCode
	rsv byte
	p   string
}

func (e event) String() string { return fmt.Sprintf("{%v rsv=%d %q}", e.op, e.rsv, e.p) }

// feedChunks feeds each chunk in turn, as separate reads would, and returns
// what was delivered and the first error. It copies the chunks: feed
// unmasks in place.
func feedChunks(a *Assembler, chunks [][]byte) ([]event, error) {
	var evs []event
	fn := func(op ws.OpCode, rsv byte, p []byte) error {
		evs = append(evs, event{op, rsv, string(p)})
		return nil
	}
	for _, c := range chunks {
		if err := a.Feed(bytes.Clone(c), fn); err != nil {
			return evs, err
		}
	}
	return evs, nil
}

// splitAt cuts stream at the given offsets.
func splitAt(stream []byte, at ...int) [][]byte {
	var out [][]byte
	prev := 0
	for _, i := range at {
		out = append(out, stream[prev:i])
		prev = i
	}
	return append(out, stream[prev:])
}

func bytewise(stream []byte) [][]byte {
	out := make([][]byte, len(stream))
	for i := range stream {
		out[i] = stream[i : i+1]
	}
	return out
}

// assemblerCase is one stream and what the assembler must make of it,
// however the stream is split.
type assemblerCase struct {
	name       string
	maxPayload int64 // zero means 1 MiB
	extended   bool
	stream     []byte
	want       []event
	err        *CloseError
}

func (tc assemblerCase) newAssembler() *Assembler {
	a := &Assembler{maxPayload: tc.maxPayload, extended: tc.extended}
	if a.maxPayload == 0 {
		a.maxPayload = 1 << 20
	}
	return a
}

func textEv(s string) event     { return event{op: ws.OpText, p: s} }
func binEv(s string) event      { return event{op: ws.OpBinary, p: s} }
func pingEv(s string) event     { return event{op: ws.OpPing, p: s} }
func pongEv(s string) event     { return event{op: ws.OpPong, p: s} }
func closeEv(p []byte) event    { return event{op: ws.OpClose, p: string(p)} }
func repeat(n int) []byte       { return bytes.Repeat([]byte{'a'}, n) }
func repeatStr(n int) string    { return strings.Repeat("a", n) }
func textFrame(s string) []byte { return clientFrame(bFin|bText, []byte(s)) }

func assemblerCases() []assemblerCase {
	kosme := "κόσμε"
	return []assemblerCase{
		// Framing and lengths (§5.2).
		{name: "text empty", stream: textFrame(""), want: []event{textEv("")}},
		{name: "text 125", stream: textFrame(repeatStr(125)), want: []event{textEv(repeatStr(125))}},
		{name: "text 126", stream: textFrame(repeatStr(126)), want: []event{textEv(repeatStr(126))}},
		{name: "text 65535", stream: textFrame(repeatStr(65535)), want: []event{textEv(repeatStr(65535))}},
		{name: "text 65536", stream: textFrame(repeatStr(65536)), want: []event{textEv(repeatStr(65536))}},
		{name: "binary", stream: clientFrame(bFin|bBinary, []byte{0, 1, 0xff}), want: []event{binEv("\x00\x01\xff")}},
		{name: "two messages", stream: cat(textFrame("a"), textFrame("b")), want: []event{textEv("a"), textEv("b")}},
		{name: "unmasked", stream: unmaskedFrame(bFin|bText, []byte("hi")), err: ErrUnmasked},
		{name: "unmasked after a message", stream: cat(textFrame("a"), unmaskedFrame(bFin|bText, []byte("hi"))), want: []event{textEv("a")}, err: ErrUnmasked},
		{name: "length with top bit set", stream: cat(clientHeader(bFin|bBinary, 1<<63)), err: ErrBadLength},

		// Control frames (§5.5).
		{name: "ping empty", stream: clientFrame(bFin|bPing, nil), want: []event{pingEv("")}},
		{name: "ping 125", stream: clientFrame(bFin|bPing, repeat(125)), want: []event{pingEv(repeatStr(125))}},
		{name: "ping 126", stream: clientFrame(bFin|bPing, repeat(126)), err: ErrControlTooLong},
		{name: "pong", stream: clientFrame(bFin|bPong, []byte("x")), want: []event{pongEv("x")}},
		{name: "fragmented ping", stream: clientFrame(bPing, []byte("x")), err: ErrControlFragment},
		{name: "fragmented pong", stream: clientFrame(bPong, nil), err: ErrControlFragment},
		{
			name: "ping between fragments",
			stream: cat(clientFrame(bText, []byte("fra")), clientFrame(bFin|bPing, []byte("p")),
				clientFrame(bFin|bCont, []byte("gment"))),
			want: []event{pingEv("p"), textEv("fragment")},
		},
		{
			name: "pings between many fragments",
			stream: cat(clientFrame(bBinary, []byte("1")), clientFrame(bFin|bPing, []byte("a")),
				clientFrame(bCont, []byte("2")), clientFrame(bFin|bPong, []byte("b")),
				clientFrame(bCont, nil), clientFrame(bFin|bPing, nil), clientFrame(bFin|bCont, []byte("3"))),
			want: []event{pingEv("a"), pongEv("b"), pingEv(""), binEv("123")},
		},

		// Reserved bits and opcodes (§5.2).
		{name: "rsv1 text", stream: clientFrame(bFin|bRsv1|bText, []byte("x")), err: ErrReservedBits},
		{name: "rsv2 text", stream: clientFrame(bFin|bRsv2|bText, []byte("x")), err: ErrReservedBits},
		{name: "rsv3 binary", stream: clientFrame(bFin|bRsv3|bBinary, []byte("x")), err: ErrReservedBits},
		{name: "rsv on ping", stream: clientFrame(bFin|bRsv1|bRsv2|bPing, nil), err: ErrReservedBits},
		{name: "rsv on close", stream: clientFrame(bFin|bRsv3|bClose, nil), err: ErrReservedBits},
		{name: "rsv1 with extension", extended: true, stream: clientFrame(bFin|bRsv1|bText, []byte{0xff}), want: []event{{ws.OpText, 4, "\xff"}}},
		{name: "rsv2 with extension", extended: true, stream: clientFrame(bFin|bRsv2|bText, nil), err: ErrReservedBits},
		{name: "rsv1 on continuation with extension", extended: true, stream: cat(clientFrame(bRsv1|bText, nil), clientFrame(bFin|bRsv1|bCont, nil)), err: ErrReservedBits},
		{name: "rsv1 on ping with extension", extended: true, stream: clientFrame(bFin|bRsv1|bPing, nil), err: ErrReservedBits},
		{name: "opcode 3", stream: clientFrame(bFin|3, nil), err: ErrReservedOpCode},
		{name: "opcode 7", stream: clientFrame(bFin|7, []byte("x")), err: ErrReservedOpCode},
		{name: "opcode 0xb", stream: clientFrame(bFin|0xb, nil), err: ErrReservedOpCode},
		{name: "opcode 0xf", stream: clientFrame(bFin|0xf, []byte("x")), err: ErrReservedOpCode},

		// Fragmentation (§5.4).
		{name: "two fragments", stream: cat(clientFrame(bText, []byte("ab")), clientFrame(bFin|bCont, []byte("cd"))), want: []event{textEv("abcd")}},
		{name: "binary fragments", stream: cat(clientFrame(bBinary, []byte{1}), clientFrame(bCont, []byte{2}), clientFrame(bFin|bCont, []byte{3})), want: []event{binEv("\x01\x02\x03")}},
		{name: "empty first fragment", stream: cat(clientFrame(bText, nil), clientFrame(bFin|bCont, []byte("x"))), want: []event{textEv("x")}},
		{name: "empty last fragment", stream: cat(clientFrame(bText, []byte("x")), clientFrame(bFin|bCont, nil)), want: []event{textEv("x")}},
		{name: "all fragments empty", stream: cat(clientFrame(bText, nil), clientFrame(bCont, nil), clientFrame(bFin|bCont, nil)), want: []event{textEv("")}},
		{name: "message after fragmented one", stream: cat(clientFrame(bText, []byte("a")), clientFrame(bFin|bCont, []byte("b")), textFrame("c")), want: []event{textEv("ab"), textEv("c")}},
		{name: "continuation without message", stream: clientFrame(bFin|bCont, []byte("x")), err: ErrUnexpectedCont},
		{name: "unfinished continuation without message", stream: clientFrame(bCont, nil), err: ErrUnexpectedCont},
		{name: "continuation after finished message", stream: cat(textFrame("a"), clientFrame(bFin|bCont, nil)), want: []event{textEv("a")}, err: ErrUnexpectedCont},
		{name: "text inside fragmented text", stream: cat(clientFrame(bText, []byte("a")), textFrame("b")), err: ErrExpectedCont},
		{name: "binary inside fragmented text", stream: cat(clientFrame(bText, nil), clientFrame(bFin|bBinary, nil)), err: ErrExpectedCont},

		// UTF-8 (§8.1).
		{name: "valid utf-8", stream: textFrame(kosme), want: []event{textEv(kosme)}},
		{name: "code point split across fragments", stream: cat(clientFrame(bText, []byte(kosme[:3])), clientFrame(bFin|bCont, []byte(kosme[3:]))), want: []event{textEv(kosme)}},
		{name: "invalid utf-8", stream: textFrame("a\xffb"), err: ErrInvalidUTF8},
		{name: "surrogate", stream: textFrame("\xed\xa0\x80"), err: ErrInvalidUTF8},
		{name: "overlong", stream: textFrame("\xc0\xaf"), err: ErrInvalidUTF8},
		{name: "beyond U+10FFFF", stream: textFrame("\xf4\x90\x80\x80"), err: ErrInvalidUTF8},
		{name: "truncated code point at the end", stream: textFrame("a\xce"), err: ErrInvalidUTF8},
		{name: "truncated code point at the end of fragments", stream: cat(clientFrame(bText, []byte("a\xce")), clientFrame(bFin|bCont, nil)), err: ErrInvalidUTF8},
		{name: "invalid in first fragment", stream: cat(clientFrame(bText, []byte("\xff")), clientFrame(bFin|bCont, []byte("a"))), err: ErrInvalidUTF8},
		{name: "invalid across fragments", stream: cat(clientFrame(bText, []byte("\xf4")), clientFrame(bFin|bCont, []byte("\x90\x80\x80"))), err: ErrInvalidUTF8},
		{name: "binary is not utf-8 checked", stream: clientFrame(bFin|bBinary, []byte{0xff}), want: []event{binEv("\xff")}},

		// Close (§5.5.1, §7.4).
		{name: "close empty", stream: clientFrame(bFin|bClose, nil), want: []event{closeEv(nil)}},
		{name: "close with code", stream: clientFrame(bFin|bClose, closePayload(1000, "")), want: []event{closeEv(closePayload(1000, ""))}},
		{name: "close with reason", stream: clientFrame(bFin|bClose, closePayload(4999, "bye")), want: []event{closeEv(closePayload(4999, "bye"))}},
		{name: "close 1 byte", stream: clientFrame(bFin|bClose, []byte{3}), err: ErrCloseLength},
		{name: "close code 1005", stream: clientFrame(bFin|bClose, closePayload(1005, "")), err: ErrCloseCode},
		{name: "close code 999", stream: clientFrame(bFin|bClose, closePayload(999, "")), err: ErrCloseCode},
		{name: "close reason not utf-8", stream: clientFrame(bFin|bClose, closePayload(1000, "\xff")), err: ErrInvalidUTF8},
		{name: "frames after close ignored", stream: cat(clientFrame(bFin|bClose, nil), textFrame("late"), unmaskedFrame(0xff, nil)), want: []event{closeEv(nil)}},

		// Limits.
		{name: "at the limit", maxPayload: 10, stream: textFrame(repeatStr(10)), want: []event{textEv(repeatStr(10))}},
		{name: "over the limit", maxPayload: 10, stream: textFrame(repeatStr(11)), err: ErrTooBig},
		{name: "fragments over the limit", maxPayload: 10, stream: cat(clientFrame(bText, repeat(6)), clientFrame(bFin|bCont, repeat(5))), err: ErrTooBig},
		{name: "fragments at the limit", maxPayload: 10, stream: cat(clientFrame(bText, repeat(5)), clientFrame(bFin|bCont, repeat(5))), want: []event{textEv(repeatStr(10))}},
		{name: "endless fragments", maxPayload: 10, stream: cat(clientFrame(bText, repeat(4)), clientFrame(bCont, repeat(4)), clientFrame(bCont, repeat(4)), clientFrame(bCont, repeat(4))), err: ErrTooBig},
		{name: "huge length announced", maxPayload: 10, stream: clientHeader(bFin|bBinary, 1<<40), err: ErrTooBig},
		{name: "control frames do not count", maxPayload: 10, stream: cat(clientFrame(bText, repeat(10)), clientFrame(bFin|bPing, repeat(100)), clientFrame(bFin|bCont, nil)), want: []event{pingEv(repeatStr(100)), textEv(repeatStr(10))}},
	}
}

// TestAssembler feeds every case whole, a byte at a time, and split at
// every offset into two reads (three for short streams): the result must
// not depend on how the stream arrives.
func TestAssembler(t *testing.T) {
	for _, tc := range assemblerCases() {
		t.Run(tc.name, func(t *testing.T) {
			check := func(how string, chunks [][]byte) {
				t.Helper()
				got, err := feedChunks(tc.newAssembler(), chunks)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("%s: delivered %v, want %v", how, got, tc.want)
				}
				if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("%s: err = %v, want %v", how, err, tc.err)
				}
			}
			check("whole", [][]byte{tc.stream})
			if len(tc.stream) > 4096 {
				for i := 1; i < len(tc.stream); i += 997 {
					check(fmt.Sprintf("split at %d", i), splitAt(tc.stream, i))
				}
				return
			}
			check("byte-wise", bytewise(tc.stream))
			for i := 1; i < len(tc.stream); i++ {
				check(fmt.Sprintf("split at %d", i), splitAt(tc.stream, i))
			}
			if len(tc.stream) <= 64 {
				for i := 1; i < len(tc.stream); i++ {
					for j := i + 1; j < len(tc.stream); j++ {
						check(fmt.Sprintf("split at %d,%d", i, j), splitAt(tc.stream, i, j))
					}
				}
			}
		})
	}
}

// TestAssemblerFailsFast checks that violations are reported as soon as
// the offending bytes arrive, before the rest of the frame or message.
func TestAssemblerFailsFast(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		err    *CloseError
	}{
		{"invalid utf-8 in an unfinished fragment", clientFrame(bText, []byte("ok\xffmore")), ErrInvalidUTF8},
		{"invalid utf-8 in a partly read frame", clientFrame(bFin|bText, []byte("ok\xc0"))[:6+3], ErrInvalidUTF8},
		{"unmasked, second byte", []byte{bFin | bText, 0x7f}, ErrUnmasked},
		{"too big, header only", clientHeader(bFin|bText, 1<<40), ErrTooBig},
		{"reserved opcode, header only", clientHeader(bFin|0x3, 10), ErrReservedOpCode},
		{"long ping, header only", clientHeader(bFin|bPing, 200), ErrControlTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &Assembler{maxPayload: 4096}
			_, err := feedChunks(a, [][]byte{tc.stream})
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// TestAssemblerStopsAfterError checks that an assembler that reported a
// violation delivers nothing more, whatever it is fed.
func TestAssemblerStopsAfterError(t *testing.T) {
	a := &Assembler{maxPayload: 4096}
	_, err := feedChunks(a, [][]byte{clientFrame(bFin|0x3, []byte("xx"))})
	if !errors.Is(err, ErrReservedOpCode) {
		t.Fatalf("err = %v, want %v", err, ErrReservedOpCode)
	}
	got, err := feedChunks(a, [][]byte{textFrame("after")})
	if len(got) != 0 || !errors.Is(err, ErrReservedOpCode) {
		t.Fatalf("after an error: delivered %v, err %v; want nothing and the same error", got, err)
	}
}

// TestAssemblerSinkError checks that the sink's own error stops the feed
// and is returned as is.
func TestAssemblerSinkError(t *testing.T) {
	stop := errors.New("stop")
	a := &Assembler{maxPayload: 4096}
	n := 0
	err := a.Feed(cat(textFrame("a"), textFrame("b")), func(ws.OpCode, byte, []byte) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err = %v after %d calls, want %v after 1", err, n, stop)
	}
}

// TestAssemblerReleases checks that an idle assembler holds no buffer once
// a fragmented message has been delivered.
func TestAssemblerReleases(t *testing.T) {
	a := &Assembler{maxPayload: 4096}
	stream := cat(clientFrame(bText, []byte("a")), clientFrame(bFin|bCont, []byte("b")))
	if _, err := feedChunks(a, bytewise(stream)); err != nil {
		t.Fatal(err)
	}
	if a.msg != nil || a.ctl != nil || a.checked != 0 || a.op != 0 {
		t.Fatalf("idle assembler holds state: msg=%v ctl=%v checked=%d op=%v", a.msg, a.ctl, a.checked, a.op)
	}
}

func TestValidCloseCode(t *testing.T) {
	valid := []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	invalid := []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	for _, c := range valid {
		if !ValidCloseCode(ws.StatusCode(c)) {
			t.Errorf("ValidCloseCode(%d) = false, want true", c)
		}
	}
	for _, c := range invalid {
		if ValidCloseCode(ws.StatusCode(c)) {
			t.Errorf("ValidCloseCode(%d) = true, want false", c)
		}
	}
}

func BenchmarkAssembler(b *testing.B) {
	stream := cat(textFrame(`{"op":"pub","subject":"a.b","data":{"x":1}}`), clientFrame(bText, repeat(512)), clientFrame(bFin|bCont, repeat(512)))
	buf := make([]byte, len(stream))
	a := &Assembler{maxPayload: 1 << 20}
	fn := func(ws.OpCode, byte, []byte) error { return nil }
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		copy(buf, stream)
		if err := a.Feed(buf, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBudgetSharedAcrossAssemblers: partly assembled messages count
// against a shared Budget; one that would pass it fails with ErrBusy, and
// bytes come back when a message completes or is released.
func TestBudgetSharedAcrossAssemblers(t *testing.T) {
	b := NewBudget(10)
	var a1, a2 Assembler
	a1.Configure(100, false)
	a2.Configure(100, false)
	a1.Share(b)
	a2.Share(b)
	nop := func(ws.OpCode, byte, []byte) error { return nil }
	if err := a1.Feed(clientFrame(bText, repeat(8)), nop); err != nil {
		t.Fatalf("first partial: %v", err)
	}
	if b.Used() != 8 {
		t.Fatalf("used = %d, want 8", b.Used())
	}
	if err := a2.Feed(clientFrame(bText, repeat(5)), nop); err != ErrBusy {
		t.Fatalf("second partial past the budget: err = %v, want ErrBusy", err)
	}
	if err := a1.Feed(clientFrame(bFin|bCont, repeat(1)), nop); err != nil {
		t.Fatalf("completing the first: %v", err)
	}
	if b.Used() != 0 {
		t.Fatalf("used after completion = %d, want 0", b.Used())
	}
	var a3 Assembler
	a3.Configure(100, false)
	a3.Share(b)
	if err := a3.Feed(clientFrame(bText, repeat(5)), nop); err != nil {
		t.Fatalf("partial after room came back: %v", err)
	}
	a3.Release()
	if b.Used() != 0 {
		t.Fatalf("used after Release = %d, want 0", b.Used())
	}
}
