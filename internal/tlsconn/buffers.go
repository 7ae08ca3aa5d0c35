package tlsconn

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// crypto/tls.Conn keeps its input buffers for the connection's life:
// rawInput (a bytes.Buffer as large as the biggest record it saw, 2 KiB
// after a TLS 1.3 handshake and 17 KiB or more after one full record),
// input (a bytes.Reader into rawInput) and hand (handshake messages,
// 1.5 KiB after the handshake). That is 3.5–20 KiB per idle connection, the
// bulk of its cost, and no exported API releases it.
//
// The transport therefore lends tls.Conn a pooled rawInput for each read
// turn and takes it back when the turn ends, keeping only a partial
// record, in an exactly sized copy, when one is pending; hand is dropped
// whenever it is empty. This reaches unexported fields, located by name
// and type once at start: if a Go release renames or retypes them,
// fieldsOK is false, the transport keeps working with crypto/tls's own
// buffers (more memory per idle connection), and TestTLSBuffersReachable
// fails so the upgrade is noticed. The fields are touched only on the
// connection's worker, between tls.Conn calls, when no goroutine is inside
// the tls.Conn. docs/BENCHMARKS.md has the figures with and without.
var rawInputOff, inputOff, handOff, fieldsOK = fields()

func fields() (raw, in, hand uintptr, ok bool) {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, typ reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		return f.Offset, ok && f.Type == typ && len(f.Index) == 1
	}
	buf, rd := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	raw, ok1 := field("rawInput", buf)
	in, ok2 := field("input", rd)
	hand, ok3 := field("hand", buf)
	return raw, in, hand, ok1 && ok2 && ok3
}

// buffersEnabled is cleared by tests that measure the cost without.
var buffersEnabled = true

func (t *Transport) buffers() (raw *bytes.Buffer, in *bytes.Reader, hand *bytes.Buffer, ok bool) {
	if !fieldsOK || !buffersEnabled {
		return nil, nil, nil, false
	}
	p := unsafe.Pointer(t.tc)
	return (*bytes.Buffer)(unsafe.Add(p, rawInputOff)),
		(*bytes.Reader)(unsafe.Add(p, inputOff)),
		(*bytes.Buffer)(unsafe.Add(p, handOff)), true
}

// Drained reports that a further read of the tls.Conn would only find
// that it would block: the last read(2) under it in this read turn (since
// BeginRead) left the socket empty, and it holds no bytes, decrypted or
// not. Edge-triggered readiness
// reports bytes that arrive later, so a read turn may end here instead of
// making that read, which costs crypto/tls an allocation. It is false
// when the buffers are out of reach.
func (t *Transport) Drained() bool {
	raw, in, _, ok := t.buffers()
	return ok && t.drained && raw.Len() == 0 && in.Len() == 0
}

// BeginRead starts a read turn: it gives the tls.Conn a pooled rawInput,
// carrying over a partial record, until EndRead. It does nothing while
// the tls.Conn holds decrypted bytes (input points into rawInput) or when
// the fields are out of reach.
func (t *Transport) BeginRead() {
	// Drained speaks of this turn's reads only: readiness that came after
	// an earlier turn's last read(2) may be the very event that started
	// this one, and a turn served from what tls.Conn holds would miss it.
	t.drained = false
	raw, in, _, ok := t.buffers()
	if !ok || t.rbuf != nil || in.Len() != 0 {
		return
	}
	t.rbuf = readPool.Get().(*[]byte)
	*raw = *bytes.NewBuffer(append((*t.rbuf)[:0], raw.Bytes()...))
}

// EndRead ends a read turn: it takes the pooled rawInput back; a partial
// record stays in an exactly sized copy.
func (t *Transport) EndRead() {
	raw, in, _, ok := t.buffers()
	if !ok || in.Len() != 0 {
		return
	}
	if t.rbuf != nil {
		var keep bytes.Buffer
		if raw.Len() > 0 {
			keep.Write(raw.Bytes())
		}
		*raw = keep
		in.Reset(nil)
		readPool.Put(t.rbuf)
		t.rbuf = nil
	}
	// A turn that could not lend (tc still held bytes from the handshake)
	// leaves crypto/tls's own buffers: drop them now they are empty.
	t.trim()
}

// trim drops what tc keeps without needing it: an empty rawInput's
// capacity (from the handshake) and an empty hand.
func (t *Transport) trim() {
	raw, in, hand, ok := t.buffers()
	if !ok {
		return
	}
	if t.rbuf == nil && raw.Len() == 0 && in.Len() == 0 {
		*raw = bytes.Buffer{}
		in.Reset(nil)
	}
	if hand.Len() == 0 {
		*hand = bytes.Buffer{}
	}
}
