package wsframe

import "strings"

// handshakeRequest is what admission needs from an upgrade request.
type handshakeRequest struct {
	uri, host, origin string
	bearer            string   // Authorization: Bearer
	protoToken        string   // Sec-WebSocket-Protocol: wsbridge.bearer.<token>
	cookies           []string // Cookie header values
	secure            bool     // arrived over TLS
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// cookieValue finds the named cookie in Cookie header values.
func cookieValue(headers []string, name string) string {
	for _, h := range headers {
		for _, part := range strings.Split(h, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}
