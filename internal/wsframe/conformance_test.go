package wsframe_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"wsbridge/internal/wsframe"
	"wsbridge/internal/wsframe/wsframetest"
)

// The conformance suite runs wsframetest's cases, the ones bridge's
// end-to-end suite sends to a live bridge, against the frame layer alone,
// through its exported API only: each case's stream is fed whole, a byte
// at a time, in the case's own chops and cut at random points, and every
// splitting must give the same messages, control frames and close code.

// message is the suite's wsframetest.MessageFunc: any text will do, since
// the Assembler's delivery is checked byte for byte.
func message(tag string, n int) []byte {
	b := []byte("<text message " + tag + ">")
	if len(b) < n {
		b = append(b, bytes.Repeat([]byte{' '}, n-len(b))...)
	}
	return b
}

// endpoint is what a server built on wsframe does with a client's stream,
// as bridge's read path does it: it feeds the Assembler until it is done,
// inflates compressed messages within the limit and checks their UTF-8
// (RFC 7692 §6, RFC 6455 §8.1), and stops at the first violation.
type endpoint struct {
	asm wsframe.Assembler
	max int64
	got []wsframetest.Frame
	err error
}

func newEndpoint(tc wsframetest.Case, b *wsframe.Budget) *endpoint {
	e := &endpoint{max: tc.MaxPayload}
	e.asm.Configure(tc.MaxPayload, tc.Deflate)
	e.asm.Share(b)
	return e
}

func (e *endpoint) feed(p []byte) {
	if e.asm.Done() {
		return
	}
	if err := e.asm.Feed(p, e.sink); err != nil {
		e.err = err
		e.asm.Stop()
	}
}

func (e *endpoint) sink(op ws.OpCode, rsv byte, p []byte) error {
	f := wsframetest.Frame{Op: op}
	if wsframe.Compressed(rsv) {
		z, err := wsframe.Inflate(p, e.max)
		if err != nil {
			return err
		}
		defer wsframe.PutBuffer(z)
		p = *z
		if op == ws.OpText && !utf8.Valid(p) {
			return wsframe.ErrInvalidUTF8
		}
		f.Compressed = true
	}
	f.Payload = bytes.Clone(p) // p is valid only until the sink returns
	e.got = append(e.got, f)
	return nil
}

// splitting is one way a stream arrives: the sizes of its reads.
type splitting struct {
	name  string
	sizes []int
}

func (s splitting) String() string {
	const show = 12
	if len(s.sizes) <= show {
		return fmt.Sprintf("%s, reads %v", s.name, s.sizes)
	}
	return fmt.Sprintf("%s, %d reads %v…", s.name, len(s.sizes), s.sizes[:show])
}

// randomSplits is how many random splittings each case is fed in.
const randomSplits = 8

// splittings returns the ways tc's stream is fed: whole, a byte at a time,
// in tc.Chunk chops, and randomSplits times at random cut points, from a
// rand seeded with the case id so that a failure reproduces.
func splittings(tc wsframetest.Case) []splitting {
	n := len(tc.Send)
	chops := func(name string, size int) splitting {
		s := splitting{name: name}
		for left := n; left > 0; left -= size {
			s.sizes = append(s.sizes, min(size, left))
		}
		return s
	}
	out := []splitting{{name: "whole", sizes: []int{n}}, chops("byte-wise", 1)}
	if tc.Chunk > 1 {
		out = append(out, chops(fmt.Sprintf("chops of %d", tc.Chunk), tc.Chunk))
	}
	h := fnv.New64a()
	h.Write([]byte(tc.ID))
	seed := h.Sum64()
	for i := range randomSplits {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		// Reads of 1 byte up to the whole stream, so both headers cut
		// anywhere and payloads in a few large reads are covered.
		largest := 1 << rng.IntN(bits.Len(uint(n))+1)
		s := splitting{name: fmt.Sprintf("random %d (seed %#x)", i, seed)}
		for left := n; left > 0; {
			k := min(1+rng.IntN(largest), left)
			s.sizes = append(s.sizes, k)
			left -= k
		}
		out = append(out, s)
	}
	return out
}

// TestConformance checks each case's outcome, however its stream is split:
// the frames delivered, byte for byte, then the close: the violation's
// code, or the peer's close ending the stream, or a connection that still
// takes messages. Every splitting ends with the partial-message budget
// back at zero.
func TestConformance(t *testing.T) {
	for _, tc := range wsframetest.Cases(message) {
		t.Run(tc.ID+" "+tc.Name, func(t *testing.T) {
			t.Parallel()
			for _, s := range splittings(tc) {
				conform(t, tc, s)
			}
		})
	}
}

func conform(t *testing.T, tc wsframetest.Case, s splitting) {
	t.Helper()
	budget := wsframe.NewBudget(1 << 30)
	e := newEndpoint(tc, budget)
	stream := bytes.Clone(tc.Send) // Feed unmasks in place
	for _, k := range s.sizes {
		e.feed(stream[:k])
		stream = stream[k:]
	}
	if err := sameFrames(e.got, tc.Want); err != nil {
		t.Fatalf("%v: %v", s, err)
	}
	var ce *wsframe.CloseError
	switch {
	case tc.Fail == 0 && e.err != nil:
		t.Fatalf("%v: failed with %v, want no violation", s, e.err)
	case tc.Fail != 0 && !errors.As(e.err, &ce):
		t.Fatalf("%v: err = %v, want a close %d", s, e.err, tc.Fail)
	case tc.Fail != 0 && ce.Code != tc.Fail:
		t.Fatalf("%v: close %d %q, want %d", s, ce.Code, ce.Reason, tc.Fail)
	}
	code, echo := tc.Close()
	switch {
	case echo:
		if !e.asm.Done() {
			t.Fatalf("%v: the peer's close did not end the stream", s)
		}
		if !wsframe.ValidCloseCode(code) && code != ws.StatusNormalClosure {
			t.Fatalf("%v: echoing close code %d, which must never be sent", s, code)
		}
		var late []wsframetest.Frame
		late, e.got = e.got, nil
		if err := e.asm.Feed(wsframetest.ClientFrame(wsframetest.Fin|byte(ws.OpText), []byte("late")), e.sink); err != nil || len(e.got) > 0 {
			t.Fatalf("%v: after the peer's close, delivered %v, err %v; want nothing", s, e.got, err)
		}
		e.got = late
	case code == 0:
		if e.asm.Done() {
			t.Fatalf("%v: stream ended without a close", s)
		}
		e.got = nil
		e.feed(wsframetest.ClientFrame(wsframetest.Fin|byte(ws.OpText), []byte("still open")))
		if e.err != nil || len(e.got) != 1 || string(e.got[0].Payload) != "still open" {
			t.Fatalf("%v: a message after the case: delivered %v, err %v", s, e.got, e.err)
		}
	}
	e.asm.Release()
	if n := budget.Used(); n != 0 {
		t.Fatalf("%v: %d bytes of partial messages still counted after Release", s, n)
	}
}

// sameFrames reports how got differs from want, showing long payloads cut.
func sameFrames(got, want []wsframetest.Frame) error {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Errorf("delivered %d frames, want %d: missing %v", len(got), len(want), show(want[i]))
		case i >= len(want):
			return fmt.Errorf("delivered %d frames, want %d: extra %v", len(got), len(want), show(got[i]))
		}
		g, w := got[i], want[i]
		if g.Op != w.Op || g.Compressed != w.Compressed || !bytes.Equal(g.Payload, w.Payload) {
			return fmt.Errorf("frame %d: delivered %v, want %v", i, show(g), show(w))
		}
	}
	return nil
}

func show(f wsframetest.Frame) string {
	p := f.Payload
	cut := ""
	if len(p) > 64 {
		p, cut = p[:64], fmt.Sprintf("…(%d bytes)", len(f.Payload))
	}
	z := ""
	if f.Compressed {
		z = " compressed"
	}
	return fmt.Sprintf("{%v%s %q%s}", f.Op, z, p, cut)
}

// TestCloseTable checks every close the bridge sends, from the one table
// (close.go), fits on the wire: a code a peer may receive (RFC 6455
// §7.4.1), and a UTF-8 reason that leaves the close frame a valid control
// frame of at most 125 bytes (§5.5).
func TestCloseTable(t *testing.T) {
	table := []*wsframe.CloseError{
		wsframe.ErrUnmasked, wsframe.ErrReservedBits, wsframe.ErrReservedOpCode, wsframe.ErrControlTooLong,
		wsframe.ErrControlFragment, wsframe.ErrUnexpectedCont, wsframe.ErrExpectedCont, wsframe.ErrBadLength,
		wsframe.ErrCloseLength, wsframe.ErrCloseCode, wsframe.ErrInvalidUTF8, wsframe.ErrBadDeflate,
		wsframe.ErrTooBig, wsframe.ErrBusy,
		wsframe.CloseGoingAway, wsframe.ClosePingTimeout, wsframe.CloseBinary, wsframe.CloseSlow,
		wsframe.CloseNoPublish, wsframe.CloseExpired, wsframe.CloseRateLimited, wsframe.CloseInternal,
		wsframe.CloseRebalance, wsframe.CloseUnavailable,
	}
	for _, e := range table {
		t.Run(fmt.Sprintf("%d %s", e.Code, e.Reason), func(t *testing.T) {
			if !wsframe.ValidCloseCode(e.Code) {
				t.Errorf("code %d must never be on the wire", e.Code)
			}
			if e.Reason == "" || !utf8.ValidString(e.Reason) || strings.TrimSpace(e.Reason) != e.Reason {
				t.Errorf("reason %q: want non-empty, trimmed UTF-8", e.Reason)
			}
			f := wsframe.AppendClose(nil, e)
			h, err := ws.ReadHeader(bytes.NewReader(f))
			if err != nil || !h.Fin || h.OpCode != ws.OpClose || h.Masked || h.Length > ws.MaxControlFramePayloadSize {
				t.Fatalf("close frame % x: header %+v, %v", f, h, err)
			}
			// What the peer's Assembler makes of it, masked as a client's.
			var a wsframe.Assembler
			a.Configure(0, false)
			p := f[len(f)-int(h.Length):]
			var got []byte
			err = a.Feed(wsframetest.ClientFrame(wsframetest.Fin|byte(ws.OpClose), p), func(_ ws.OpCode, _ byte, q []byte) error {
				got = bytes.Clone(q)
				return nil
			})
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("an Assembler reading it: %q, %v", got, err)
			}
		})
	}
}
