package bridge

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeFast decodes the common shape of a command without reflection:
// an object whose keys are the exact field names and whose strings need
// no unescaping. It reports false for anything else (escapes, headers,
// odd keys or types, trailing data, invalid JSON), and the caller falls
// back to encoding/json, whose result is the reference
// (FuzzDecodeCommand checks they agree). Strings are copied: p is the
// read buffer.
func decodeFast(p []byte, cmd *command) bool {
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
