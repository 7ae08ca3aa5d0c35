package bridge

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
)

// command is a client → bridge message on /ws (docs/PROTOCOL.md).
type command struct {
	Op        string              `json:"op"`
	ID        string              `json:"id"`
	Subject   string              `json:"subject"`
	Queue     string              `json:"queue"`
	Data      json.RawMessage     `json:"data"`
	B64       *string             `json:"b64"`
	Headers   map[string][]string `json:"headers"`
	TimeoutMS int64               `json:"timeout_ms"`
	From      json.RawMessage     `json:"from"`   // sub: JetStream start position
	Ack       bool                `json:"ack"`    // pub: through JetStream, ok carries stream and seq
	MsgID     string              `json:"msg_id"` // pub: Nats-Msg-Id for stream deduplication
	Token     string              `json:"token"`  // auth: the refreshed token
}

// decodeCommand parses one text message. On failure it still returns the
// id when one could be read, so the err can carry a ref.
func decodeCommand(p []byte) (command, *opError) {
	var cmd command
	if decodeFast(p, &cmd) {
		if cmd.Op == "" {
			return cmd, errf(codeBadRequest, "missing op")
		}
		return cmd, nil
	}
	cmd = command{}
	if err := json.Unmarshal(p, &cmd); err != nil {
		var idOnly struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(p, &idOnly)
		cmd.ID = idOnly.ID
		return cmd, errf(codeBadRequest, "malformed command: expected a JSON object with string op")
	}
	if cmd.Op == "" {
		return cmd, errf(codeBadRequest, "missing op")
	}
	return cmd, nil
}

// payload returns the NATS payload a pub or req carries: the JSON text of
// data exactly as sent, the bytes of b64, or nothing.
func (cmd *command) payload() ([]byte, *opError) {
	switch {
	case cmd.Data != nil && cmd.B64 != nil:
		return nil, errf(codeBadRequest, "data and b64 are mutually exclusive")
	case cmd.B64 != nil:
		b, err := base64.StdEncoding.DecodeString(*cmd.B64)
		if err != nil {
			return nil, errf(codeBadRequest, "b64 is not valid standard base64")
		}
		return b, nil
	}
	return cmd.Data, nil
}

// Envelopes are encoded by appending to a caller's buffer so the hot path
// allocates nothing. Each append* writes one complete JSON object.

func appendOK(b []byte, ref string) []byte {
	b = append(b, `{"op":"ok","ref":`...)
	b = appendString(b, ref)
	return append(b, '}')
}

// appendPubAck appends the ok of an acked pub: the stream, the sequence
// the message was stored at and, for a deduplicated re-send, duplicate.
func appendPubAck(b []byte, ref, stream string, seq uint64, duplicate bool) []byte {
	b = append(b, `{"op":"ok","ref":`...)
	b = appendString(b, ref)
	b = append(b, `,"stream":`...)
	b = appendString(b, stream)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	return append(b, '}')
}

// appendMsgFrame appends a text frame holding
// {"op":"msg","sid":...,"subject":...<body>} and, for a JetStream message
// (seq > 0; stream sequences start at 1), ,"seq":N before the brace.
func appendMsgFrame(b []byte, sid, subject string, body []byte, seq uint64) []byte {
	var digits [20]byte
	var num []byte
	n := len(`{"op":"msg","sid":,"subject":}`) + jsonStringLen(sid) + jsonStringLen(subject) + len(body)
	if seq > 0 {
		num = strconv.AppendUint(digits[:0], seq, 10)
		n += len(`,"seq":`) + len(num)
	}
	b = appendFrameHeader(b, ws.OpText, n)
	b = append(b, `{"op":"msg","sid":`...)
	b = appendString(b, sid)
	b = append(b, `,"subject":`...)
	b = appendString(b, subject)
	b = append(b, body...)
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = append(b, num...)
	}
	return append(b, '}')
}

func appendErr(b []byte, ref string, e *opError) []byte {
	b = append(b, `{"op":"err"`...)
	if ref != "" {
		b = append(b, `,"ref":`...)
		b = appendString(b, ref)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.message)
	return append(b, '}')
}

func appendPong(b []byte, ref string) []byte {
	b = append(b, `{"op":"pong","ref":`...)
	b = appendString(b, ref)
	return append(b, '}')
}

func appendHello(b []byte, node string, maxPayload int64) []byte {
	b = append(b, `{"op":"hello","node":`...)
	b = appendString(b, node)
	b = append(b, `,"max_payload":`...)
	b = strconv.AppendInt(b, maxPayload, 10)
	return append(b, '}')
}

// appendBody appends the part of a msg or reply envelope that does not
// depend on the receiver: the payload (rule: exactly one valid JSON value
// goes out verbatim as data, anything else as b64, so every payload
// round-trips byte for byte), then headers and reply when present. It
// starts with a comma and leaves the object open.
func appendBody(b []byte, m *nats.Msg) []byte {
	if isJSONValue(m.Data) {
		b = append(b, `,"data":`...)
		b = append(b, m.Data...)
	} else {
		b = append(b, `,"b64":"`...)
		b = base64.StdEncoding.AppendEncode(b, m.Data)
		b = append(b, '"')
	}
	if len(m.Header) > 0 {
		b = append(b, `,"headers":`...)
		b = appendHeaders(b, m.Header)
	}
	if m.Reply != "" {
		b = append(b, `,"reply":`...)
		b = appendString(b, m.Reply)
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

func appendHeaders(b []byte, h nats.Header) []byte {
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
		b = appendString(b, k)
		b = append(b, ':', '[')
		for j, v := range h[k] {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does, so the frame stays valid text.
func appendString(b []byte, s string) []byte {
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

// appendFrame appends a complete unmasked server frame carrying p.
func appendFrame(b []byte, op ws.OpCode, p []byte) []byte {
	b = appendFrameHeader(b, op, len(p))
	return append(b, p...)
}

// appendFrameHeader appends the header of a final, unmasked server frame
// (RFC 6455 §5.2) whose payload is n bytes.
func appendFrameHeader(b []byte, op ws.OpCode, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return b
}

// frameLen returns the total length of the server frame at the start of b,
// which must hold at least its header.
func frameLen(b []byte) int {
	switch l := b[1] & 0x7f; l {
	case 126:
		return 4 + (int(b[2])<<8 | int(b[3]))
	case 127:
		n := 0
		for _, c := range b[2:10] {
			n = n<<8 | int(c)
		}
		return 10 + n
	default:
		return 2 + int(l)
	}
}

// appendClose appends a close frame with code and reason.
func appendClose(b []byte, e *closeError) []byte {
	b = appendFrameHeader(b, ws.OpClose, 2+len(e.reason))
	b = append(b, byte(e.code>>8), byte(e.code))
	return append(b, e.reason...)
}
