package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"wsbridge/internal/wsframe/wsframetest"
)

// chunksOf cuts stream into reads whose lengths cycle through sizes (a
// zero size means one byte), so the fuzzer chooses the split points.
func chunksOf(stream, sizes []byte) [][]byte {
	if len(sizes) == 0 {
		return [][]byte{stream}
	}
	var out [][]byte
	for i := 0; len(stream) > 0; i++ {
		n := min(max(int(sizes[i%len(sizes)]), 1), len(stream))
		out = append(out, stream[:n])
		stream = stream[n:]
	}
	return out
}

// FuzzAssembler feeds an arbitrary stream whole and split where the fuzzer
// says: both must deliver the same (op, payload) sequence and fail with
// the same error, no message may exceed maxPayload, and an assembler that
// failed delivers nothing more.
func FuzzAssembler(f *testing.F) {
	for _, tc := range assemblerCases() {
		if len(tc.stream) > 4096 {
			continue
		}
		mp := uint16(min(tc.maxPayload, 1<<16-1))
		if tc.maxPayload == 0 {
			mp = 1<<16 - 1
		}
		f.Add([]byte{1}, tc.stream, mp, tc.extended)
		f.Add([]byte{3, 7, 2}, tc.stream, mp, tc.extended)
	}
	// The conformance cases too, with any text as their messages.
	text := func(tag string, n int) []byte {
		b := []byte("<text message " + tag + ">")
		return append(b, bytes.Repeat([]byte{' '}, max(n-len(b), 0))...)
	}
	for _, tc := range wsframetest.Cases(text) {
		if len(tc.Send) <= 4096 {
			f.Add([]byte{5, 1, 9}, tc.Send, uint16(min(tc.MaxPayload, 1<<16-1)), tc.Deflate)
		}
	}
	f.Fuzz(func(t *testing.T, sizes, stream []byte, maxPayload uint16, extended bool) {
		newAsm := func() *Assembler { return &Assembler{maxPayload: int64(maxPayload), extended: extended} }
		whole, werr := feedChunks(newAsm(), [][]byte{stream})
		a := newAsm()
		split, serr := feedChunks(a, chunksOf(stream, sizes))
		if !slices.Equal(whole, split) {
			t.Fatalf("whole delivered %v, split %v", whole, split)
		}
		if !errors.Is(serr, werr) || !errors.Is(werr, serr) {
			t.Fatalf("whole failed with %v, split with %v", werr, serr)
		}
		for _, ev := range whole {
			if ev.op.IsControl() {
				if len(ev.p) > ws.MaxControlFramePayloadSize {
					t.Fatalf("control frame of %d bytes delivered", len(ev.p))
				}
				continue
			}
			if int64(len(ev.p)) > int64(maxPayload) {
				t.Fatalf("message of %d bytes delivered, max %d", len(ev.p), maxPayload)
			}
			if ev.op == ws.OpText && ev.rsv == 0 && !utf8.ValidString(ev.p) {
				t.Fatalf("invalid UTF-8 text delivered: %q", ev.p)
			}
		}
		if serr != nil {
			more, err := feedChunks(a, [][]byte{textFrame("more")})
			if len(more) > 0 || err != serr {
				t.Fatalf("after %v: delivered %v, err %v", serr, more, err)
			}
		}
	})
}

// FuzzUTF8Prefix compares utf8Prefix with its reference, including on
// every prefix, as an incrementally received message would be checked.
func FuzzUTF8Prefix(f *testing.F) {
	for _, s := range utf8Samples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		for i := 0; i <= len(p) && i < 64; i++ {
			checkUTF8Prefix(t, p[:i])
		}
		checkUTF8Prefix(t, p)
	})
}

// FuzzUpgrade upgrades arbitrary heads: Accept runs at most once and
// only on a request that passed RFC 6455's checks, the response is a
// 101 exactly when the handshake succeeded, deflate only comes with its
// header, the Request outlives the bytes it was read from, and Token
// keeps its order.
func FuzzUpgrade(f *testing.F) {
	for _, tc := range upgradeCases() {
		f.Add([]byte(tc.head), tc.u.Deflate, tc.refuse != nil)
	}
	f.Fuzz(func(t *testing.T, head []byte, deflate, refuse bool) {
		var seen *Request
		var snapshot Request
		calls := 0
		u := Upgrader{Deflate: deflate, Accept: func(r *Request) error {
			calls++
			seen = r
			snapshot = *r
			snapshot.Cookies = slices.Clone(r.Cookies)
			if refuse {
				return ws.RejectConnectionError(ws.RejectionStatus(403), ws.RejectionReason("no\n"))
			}
			return nil
		}}
		resp, accepted, err := u.Upgrade(nil, bytes.NewReader(head))
		if calls > 1 {
			t.Fatalf("Accept ran %d times", calls)
		}
		if ok := bytes.HasPrefix(resp, []byte("HTTP/1.1 101 Switching Protocols\r\n")); ok != (err == nil) {
			t.Fatalf("err %v with response %q", err, resp)
		}
		if err == nil && (calls != 1 || refuse) {
			t.Fatalf("upgraded with %d Accept calls (refusing: %v)", calls, refuse)
		}
		if len(resp) > 0 {
			checkResponse(t, resp)
		}
		if accepted && (err != nil || !deflate || !bytes.Contains(resp, []byte("\r\nSec-WebSocket-Extensions: permessage-deflate"))) {
			t.Fatalf("deflate accepted with err %v, enabled %v, response %q", err, deflate, resp)
		}
		if seen == nil {
			return
		}
		// Another handshake reuses gobwas's buffers: a Request aliasing
		// them would change.
		clear(head)
		_, _, _ = (&Upgrader{}).Upgrade(nil, strings.NewReader(upgradeHead("/xxxxxxxxxxxxxxxxxxxxxxxx", "Origin: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", "Cookie: zzzzzzzzzzzzzzzzzzzzzzzzzzzz")))
		if !reflect.DeepEqual(*seen, snapshot) {
			t.Fatalf("Request changed after its head was reused: %+v, was %+v", *seen, snapshot)
		}
		tok := seen.Token("tok")
		switch {
		case seen.Bearer != "" && tok != seen.Bearer:
			t.Fatalf("Token %q, not the bearer %q", tok, seen.Bearer)
		case seen.Bearer == "" && seen.ProtocolToken != "" && tok != seen.ProtocolToken:
			t.Fatalf("Token %q, not the protocol token %q", tok, seen.ProtocolToken)
		case seen.Token("") != "" && tok != seen.Token(""):
			t.Fatalf("Token with cookies %q, without %q", tok, seen.Token(""))
		}
	})
}

// checkResponse fails unless resp is one whole HTTP response.
func checkResponse(t *testing.T, resp []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(resp))
	hr, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response %q: %v", resp, err)
	}
	if hr.StatusCode != http.StatusSwitchingProtocols {
		if _, err := io.ReadAll(hr.Body); err != nil {
			t.Fatalf("response %q: body: %v", resp, err)
		}
	}
	if br.Buffered() > 0 {
		t.Fatalf("response %q: %d bytes after it", resp, br.Buffered())
	}
}
