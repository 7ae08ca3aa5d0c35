package wsframe

import (
	"bufio"
	"bytes"
	"strings"
)

// Parsers for the head of an HTTP/1.1 upgrade request (RFC 6455 §4.1),
// read before the request is handed to gobwas/ws or net/http.

// Subprotocols (Sec-WebSocket-Protocol, RFC 6455 §1.9) the bridge knows:
// ProtocolV1 is selected when offered; ProtocolBearer prefixes a token
// offered by browsers, which cannot set an Authorization header.
const (
	ProtocolV1     = "wsbridge.v1"
	ProtocolBearer = "wsbridge.bearer."
)

// BearerToken returns the token of an "Authorization: Bearer" value.
func BearerToken(v string) string {
	if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// OfferedProtocols reads a Sec-WebSocket-Protocol value: selected is
// wsbridge.v1 when offered, token the one carried as wsbridge.bearer.<token>.
func OfferedProtocols(v string) (selected, token string) {
	for _, p := range strings.Split(v, ",") {
		switch p = strings.TrimSpace(p); {
		case p == ProtocolV1:
			selected = ProtocolV1
		case strings.HasPrefix(p, ProtocolBearer):
			token = p[len(ProtocolBearer):]
		}
	}
	return selected, token
}

// PeekHead waits until br holds a whole request head and returns its length
// up to and including the blank line. A head trickled one byte at a time
// is fine, and costs linear time: each byte is scanned once. One that does
// not complete before the reader's deadline is dropped; one that fills
// br's buffer fails with bufio.ErrBufferFull.
func PeekHead(br *bufio.Reader) (int, error) {
	scanned := 0 // bytes known not to end a head, less the 3 a terminator may span
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf[scanned:], []byte("\r\n\r\n")); i >= 0 {
			return scanned + i + 4, nil
		}
		scanned = max(0, len(buf)-3)
		if br.Buffered() == br.Size() {
			return 0, bufio.ErrBufferFull
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return 0, err
		}
	}
}

// RequestPath returns the path of the request line in head, without the
// query.
func RequestPath(head []byte) string {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return ""
	}
	target, _, _ := bytes.Cut(rest, []byte(" "))
	path, _, _ := bytes.Cut(target, []byte("?"))
	return string(path)
}

// HasHeader reports whether head has a header field named name
// (case-insensitive, RFC 9110 §5.1).
func HasHeader(head []byte, name string) bool {
	_, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, _, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte(name)) {
			return true
		}
	}
	return false
}
