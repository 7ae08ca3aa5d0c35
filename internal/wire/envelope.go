package wire

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	"wsbridge/internal/wsframe"

	"github.com/gobwas/ws"
)

// Envelopes are encoded by appending to a caller's buffer so the hot path
// allocates nothing. Each append* writes one complete JSON object.

// AppendOK appends {"op":"ok","ref":ref}.
func AppendOK(b []byte, ref string) []byte {
	b = append(b, `{"op":"ok","ref":`...)
	b = AppendString(b, ref)
	return append(b, '}')
}

// AppendPubAck appends the ok of an acked pub: the stream, the sequence
// the message was stored at and, for a deduplicated re-send, duplicate.
func AppendPubAck(b []byte, ref, stream string, seq uint64, duplicate bool) []byte {
	b = append(b, `{"op":"ok","ref":`...)
	b = AppendString(b, ref)
	b = append(b, `,"stream":`...)
	b = AppendString(b, stream)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}

// AppendMsgFrame appends a text frame holding
// {"op":"msg","sid":...,"subject":...<body>} and, for a JetStream message
// (seq > 0; stream sequences start at 1), ,"seq":N before the brace.
func AppendMsgFrame(b []byte, sid, subject string, body []byte, seq uint64) []byte {
	var digits [20]byte
	var num []byte
	n := len(`{"op":"msg","sid":,"subject":}`) + JSONStringLen(sid) + JSONStringLen(subject) + len(body)
	if seq > 0 {
		num = strconv.AppendUint(digits[:0], seq, 10)
		n += len(`,"seq":`) + len(num)
	}
	b = wsframe.AppendFrameHeader(b, ws.OpText, n)
	b = append(b, `{"op":"msg","sid":`...)
	b = AppendString(b, sid)
	b = append(b, `,"subject":`...)
	b = AppendString(b, subject)
	b = append(b, body...)
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = append(b, num...)
	}
	return append(b, '}')
}

// AppendMsgPrefix appends the receiver's part of a msg envelope,
// {"op":"msg","sid":<sid>. AppendMsgTail appends the rest, the same for
// every receiver of the message; together they are AppendMsgFrame's
// payload.
func AppendMsgPrefix(b []byte, sid string) []byte {
	b = append(b, `{"op":"msg","sid":`...)
	return AppendString(b, sid)
}

// AppendMsgTail appends what follows AppendMsgPrefix:
// ,"subject":<subject>, the fields of AppendBody(data, header, reply),
// ,"seq":N for a JetStream message (seq > 0), and the closing brace.
func AppendMsgTail(b []byte, subject string, data []byte, header map[string][]string, reply string, seq uint64) []byte {
	b = append(b, `,"subject":`...)
	b = AppendString(b, subject)
	b = AppendBody(b, data, header, reply)
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
	}
	return append(b, '}')
}

// AppendErr appends the err envelope of e, with ref unless it is empty.
func AppendErr(b []byte, ref string, e *Error) []byte {
	b = append(b, `{"op":"err"`...)
	if ref != "" {
		b = append(b, `,"ref":`...)
		b = AppendString(b, ref)
	}
	b = append(b, `,"code":`...)
	b = AppendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Message)
	return append(b, '}')
}

// AppendPong appends the answer to a ping.
func AppendPong(b []byte, ref string) []byte {
	b = append(b, `{"op":"pong","ref":`...)
	b = AppendString(b, ref)
	return append(b, '}')
}

// AppendHello appends the first message of a connection: the node's name,
// the largest payload a client may send, the largest frame the bridge
// will send (a client's read limit must be at least that), and whether
// the bridge has NATS.
func AppendHello(b []byte, node string, maxPayload, maxFrame int64, natsUp bool) []byte {
	b = append(b, `{"op":"hello","node":`...)
	b = AppendString(b, node)
	b = append(b, `,"max_payload":`...)
	b = strconv.AppendInt(b, maxPayload, 10)
	b = append(b, `,"max_frame":`...)
	b = strconv.AppendInt(b, maxFrame, 10)
	b = append(b, `,"nats":`...)
	b = append(b, linkWord(natsUp)...)
	return append(b, '}')
}

// AppendStatus appends the message that tells a client the bridge lost or
// regained NATS: {"op":"status","nats":"down"} or "up".
func AppendStatus(b []byte, natsUp bool) []byte {
	b = append(b, `{"op":"status","nats":`...)
	b = append(b, linkWord(natsUp)...)
	return append(b, '}')
}

func linkWord(up bool) string {
	if up {
		return `"up"`
	}
	return `"down"`
}

// AppendBody appends the part of a msg or reply envelope that does not
// depend on the receiver: the payload (rule: exactly one valid JSON value
// goes out verbatim as data, anything else as b64, so every payload
// round-trips byte for byte), then headers and reply when present. It
// starts with a comma and leaves the object open.
func AppendBody(b, data []byte, header map[string][]string, reply string) []byte {
	if isJSONValue(data) {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	} else {
		b = append(b, `,"b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	if len(header) > 0 {
		b = append(b, `,"headers":`...)
		b = appendHeaders(b, header)
	}
	if reply != "" {
		b = append(b, `,"reply":`...)
		b = AppendString(b, reply)
	}
	return b
}

// isJSONValue reports whether p is exactly one JSON value: no surrounding
// whitespace, valid UTF-8 (the envelope is a text frame) and valid JSON.
func isJSONValue(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch p[0] {
	case ' ', '\t', '\r', '\n':
		return false
	}
	switch p[len(p)-1] {
	case ' ', '\t', '\r', '\n':
		return false
	}
	return utf8.Valid(p) && json.Valid(p)
}

func appendHeaders(b []byte, h map[string][]string) []byte {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, k)
		b = append(b, ':', '[')
		for j, v := range h[k] {
			if j > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so the frame stays valid text.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// JSONStringLen returns len(AppendString(nil, s)) without building it.
func JSONStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// MaxFrame is the largest frame the bridge sends for messages of at most
// maxPayload bytes (data and headers, as NATS counts them): base64 makes
// data 4/3 its size, and FrameSlack leaves room for the envelope, the sid,
// the subject and escaped headers. Frames above it are not sent.
func MaxFrame(maxPayload int64) int64 {
	return 4*((maxPayload+2)/3) + FrameSlack
}

// FrameSlack is MaxFrame's room above the encoded payload.
const FrameSlack = 64 << 10
