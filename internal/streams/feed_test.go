package streams

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/wire"
)

// fanoutMember is a Member that keeps what it is sent.
type fanoutMember struct {
	sid      string
	compress bool
	queue    []byte
}

func (m *fanoutMember) SID() string { return m.sid }
func (m *fanoutMember) Enqueue(fr []byte, _ int64) bool {
	m.queue = append(m.queue, fr...)
	return true
}
func (m *fanoutMember) Queued() (int, bool) { return len(m.queue), true }
func (m *fanoutMember) Compress(n int) bool { return m.compress && n >= 64 }
func (m *fanoutMember) Attached()           {}
func (m *fanoutMember) Fail(error)          {}

// fanoutMsg is a stored message as the feed's consumer hands it over.
type fanoutMsg struct {
	jetstream.Msg
	subject string
	data    []byte
	header  nats.Header
	seq     uint64
}

func (m fanoutMsg) Subject() string      { return m.subject }
func (m fanoutMsg) Data() []byte         { return m.data }
func (m fanoutMsg) Headers() nats.Header { return m.header }
func (m fanoutMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}

// frames splits b into server frames and returns their payloads, inflated
// (compress/flate and the RFC 7692 §7.2.2 tail) when RSV1 is set.
func fanoutFrames(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil || !h.Fin || h.OpCode != ws.OpText {
			t.Fatalf("header %+v: %v", h, err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		if h.Rsv1() {
			fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
			if p, err = io.ReadAll(fr); err != nil {
				t.Fatalf("inflate: %v", err)
			}
		}
		out = append(out, string(p))
	}
	return out
}

// TestFeedDeliver: live members with distinct sids, plain or compressed,
// and a fanoutMember still catching up all get exactly the envelope built whole,
// seq included.
func TestFeedDeliver(t *testing.T) {
	r := New(Config{WriteBuffer: 1 << 20})
	f := &feed{r: r, subject: "orders.>"}
	var ms []*fanoutMember
	for i := range 6 {
		m := &fanoutMember{sid: fmt.Sprintf("%08x-4b1d-4e8a-9c3f-%012x", i, i), compress: i%2 == 1}
		ms = append(ms, m)
		js := &Sub{r: r, m: m, sid: m.sid, pre: wire.AppendMsgPrefix(nil, m.sid)} // live: in f.members
		if i == 5 {
			js.last = 1 // asked to start after seq 1
		}
		f.add(js)
	}
	sent := []fanoutMsg{
		{subject: "orders.eu", data: []byte(`{"text":"` + strings.Repeat("order lines ", 50) + `"}`), seq: 1},
		{subject: "orders.us", data: []byte(`{"id":2}`), header: nats.Header{"Trace": {"t"}}, seq: 2},
		{subject: "orders.eu", data: []byte("not json " + strings.Repeat("x", 100)), seq: 3},
	}
	for _, m := range sent {
		f.deliver(m)
	}
	for i, m := range ms {
		var want []string
		for _, s := range sent {
			if i == 5 && s.seq == 1 {
				continue
			}
			fr := wire.AppendMsgFrame(nil, m.sid, s.subject, wire.AppendBody(nil, s.data, s.header, ""), s.seq)
			want = append(want, string(fr[len(fr)-fanoutPayloadLen(fr):]))
		}
		got := fanoutFrames(t, m.queue)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("fanoutMember %d got\n%s\nwant\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if c := f.frames.Cap(); c > 4096 {
		t.Errorf("feed holds %d bytes between messages", c)
	}
}

func fanoutPayloadLen(f []byte) int {
	if l := int(f[1] & 0x7f); l < 126 {
		return l
	}
	return int(f[2])<<8 | int(f[3])
}
