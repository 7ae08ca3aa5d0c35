package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Command is a client → bridge message on /ws (docs/PROTOCOL.md).
type Command struct {
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

// Decode parses one text message. On failure it still returns the id when
// one could be read, so the err can carry a ref. The Command holds no
// reference to p.
func Decode(p []byte) (Command, *Error) {
	var cmd Command
	if decodeFast(p, &cmd) {
		if cmd.Op == "" {
			return cmd, Errf(CodeBadRequest, "missing op")
		}
		return cmd, nil
	}
	cmd = Command{}
	if err := json.Unmarshal(p, &cmd); err != nil {
		var idOnly struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(p, &idOnly)
		cmd.ID = idOnly.ID
		return cmd, Errf(CodeBadRequest, "malformed command: expected a JSON object with string op")
	}
	if cmd.Op == "" {
		return cmd, Errf(CodeBadRequest, "missing op")
	}
	return cmd, nil
}

// Payload returns the NATS payload a pub or req carries: the JSON text of
// data exactly as sent, the bytes of b64, or nothing.
func (cmd *Command) Payload() ([]byte, *Error) {
	switch {
	case cmd.Data != nil && cmd.B64 != nil:
		return nil, Errf(CodeBadRequest, "data and b64 are mutually exclusive")
	case cmd.B64 != nil:
		b, err := base64.StdEncoding.DecodeString(*cmd.B64)
		if err != nil {
			return nil, Errf(CodeBadRequest, "b64 is not valid standard base64")
		}
		return b, nil
	}
	return cmd.Data, nil
}

// decodeFast decodes the common shape of a command without reflection:
// an object whose keys are the exact field names and whose strings need
// no unescaping. It reports false for anything else (escapes, headers,
// odd keys or types, trailing data, invalid JSON), and the caller falls
// back to encoding/json, whose result is the reference
// (FuzzDecodeCommand checks they agree). Strings are copied: p is the
// read buffer.
func decodeFast(p []byte, cmd *Command) bool {
	i := skipSpace(p, 0)
	if i == len(p) || p[i] != '{' {
		return false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return skipSpace(p, i+1) == len(p)
	}
	for {
		key, j, ok := plainString(p, i)
		if !ok {
			return false
		}
		i = skipSpace(p, j)
		if i == len(p) || p[i] != ':' {
			return false
		}
		i = skipSpace(p, i+1)
		end, ok := skipValue(p, i)
		if !ok {
			return false
		}
		v := p[i:end]
		switch string(key) {
		case "op":
			ok = setString(&cmd.Op, v)
		case "id":
			ok = setString(&cmd.ID, v)
		case "subject":
			ok = setString(&cmd.Subject, v)
		case "queue":
			ok = setString(&cmd.Queue, v)
		case "msg_id":
			ok = setString(&cmd.MsgID, v)
		case "token":
			ok = setString(&cmd.Token, v)
		case "b64":
			if string(v) == "null" {
				cmd.B64 = nil
				break
			}
			var s string
			if ok = setString(&s, v); ok {
				cmd.B64 = &s
			}
		case "data":
			if ok = json.Valid(v); ok {
				cmd.Data = append(json.RawMessage(nil), v...)
			}
		case "from":
			if ok = json.Valid(v); ok {
				cmd.From = append(json.RawMessage(nil), v...)
			}
		case "timeout_ms":
			if string(v) != "null" {
				// JSON's number grammar is stricter than ParseInt's
				// (no leading zeros or plus sign).
				n, err := strconv.ParseInt(string(v), 10, 64)
				ok = err == nil && json.Valid(v)
				cmd.TimeoutMS = n
			}
		case "ack":
			switch string(v) {
			case "true":
				cmd.Ack = true
			case "false":
				cmd.Ack = false
			case "null":
			default:
				ok = false
			}
		default:
			ok = false // headers, unknown or differently cased keys
		}
		if !ok {
			return false
		}
		i = skipSpace(p, end)
		if i == len(p) {
			return false
		}
		switch p[i] {
		case ',':
			i = skipSpace(p, i+1)
		case '}':
			return skipSpace(p, i+1) == len(p)
		default:
			return false
		}
	}
}

func skipSpace(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// plainString reads a JSON string at p[i] that has no escapes, no
// control characters and valid UTF-8, returning its contents and the index
// after the closing quote.
func plainString(p []byte, i int) ([]byte, int, bool) {
	if i >= len(p) || p[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(p); j++ {
		switch c := p[j]; {
		case c == '"':
			s := p[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// setString stores a plain JSON string value; null leaves dst unchanged,
// as encoding/json does.
func setString(dst *string, v []byte) bool {
	if string(v) == "null" {
		return true
	}
	s, end, ok := plainString(v, 0)
	if !ok || end != len(v) {
		return false
	}
	*dst = string(s)
	return true
}

// skipValue finds the end of the JSON value at p[i]. It tracks only
// structure (strings, nesting); callers validate the span where it
// matters, and anything malformed is caught by the fallback.
func skipValue(p []byte, i int) (int, bool) {
	depth := 0
	for j := i; j < len(p); j++ {
		switch c := p[j]; c {
		case '"':
			k := bytes.IndexByte(p[j+1:], '"')
			for k >= 0 && backslashes(p[:j+1+k])%2 == 1 {
				n := bytes.IndexByte(p[j+2+k:], '"')
				if n < 0 {
					return 0, false
				}
				k += 1 + n
			}
			if k < 0 {
				return 0, false
			}
			j += 1 + k
			if depth == 0 {
				return j + 1, true
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j, j > i // end of the enclosing object
			}
			if depth--; depth == 0 {
				return j + 1, true
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return j, j > i
			}
		}
	}
	return len(p), depth == 0 && len(p) > i
}

// backslashes counts the backslashes that end b.
func backslashes(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\\' {
		n++
	}
	return n
}
