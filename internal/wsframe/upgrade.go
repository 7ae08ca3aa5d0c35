package wsframe

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gobwas/ws"
)

// The server side of the opening handshake (RFC 6455 §4.2): reading an
// upgrade request into a Request and writing the response to it.

// Request is what an upgrade request tells admission about its client.
// Its strings are copies, valid after the request's bytes are reused.
type Request struct {
	URI    string // the request target, as sent
	Host   string // the Host header
	Origin string // the Origin header (RFC 6455 §10.2); empty when not sent
	// Bearer is the token of "Authorization: Bearer <token>".
	Bearer string
	// ProtocolToken is the token offered as Sec-WebSocket-Protocol
	// wsbridge.bearer.<token>, for browsers, which cannot set
	// Authorization.
	ProtocolToken string
	Cookies       []string // the Cookie header values, in order
	// Secure reports that the request arrived over TLS, which its head
	// cannot say: it is Upgrader.Secure, or r.TLS != nil in HTTPRequest.
	Secure bool
}

// Token returns the token the client presented, from the first of these
// that has one: the Authorization bearer, the Sec-WebSocket-Protocol
// token, the target's ?token= query parameter, and, when cookieName is
// not empty, that cookie. Empty means none. A target that does not parse
// (url.ParseRequestURI) has no query token. Browsers attach cookies to
// cross-site requests too, so a cookie's token is only as good as the
// origin check made before it is used.
func (r *Request) Token(cookieName string) string {
	token := firstNonEmpty(r.Bearer, r.ProtocolToken, r.queryToken())
	if token == "" && cookieName != "" {
		token = cookieValue(r.Cookies, cookieName)
	}
	return token
}

func (r *Request) queryToken() string {
	if r.Bearer != "" || r.ProtocolToken != "" {
		return "" // not needed: spare the parse
	}
	target, err := url.ParseRequestURI(r.URI)
	if err != nil {
		return ""
	}
	return target.Query().Get("token")
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

// HTTPRequest returns the Request of an upgrade request net/http parsed,
// for upgrades that reach net/http instead of an Upgrader. Its Secure is
// r.TLS != nil, which a net.Conn wrapping the tls.Conn hides: such a
// caller knows better and sets it.
func HTTPRequest(r *http.Request) *Request {
	_, token := OfferedProtocols(strings.Join(r.Header.Values("Sec-WebSocket-Protocol"), ","))
	return &Request{
		URI:           r.RequestURI,
		Host:          r.Host,
		Origin:        r.Header.Get("Origin"),
		Bearer:        BearerToken(r.Header.Get("Authorization")),
		ProtocolToken: token,
		Cookies:       r.Header.Values("Cookie"),
		Secure:        r.TLS != nil,
	}
}

// Upgrader answers opening handshakes (RFC 6455 §4.2) with gobwas/ws's
// zero-copy upgrader, on a request head the caller has already read
// from its connection. The zero value declines permessage-deflate and
// accepts every valid request. An Upgrader is safe for concurrent use if
// its Accept is.
type Upgrader struct {
	// Deflate accepts permessage-deflate offers (RFC 7692), always without
	// context takeover; false declines them.
	Deflate bool
	// Secure is copied to every Request: the connection is TLS.
	Secure bool
	// Accept decides on a request that passed RFC 6455's checks, before
	// the 101 is written; the Request is its to keep. A non-nil error
	// refuses it: one made by ws.RejectConnectionError with its status,
	// reason and headers, any other with 500. Nil accepts every request.
	Accept func(*Request) error
}

// Upgrade reads one request head from r, which the caller bounds to the
// head (an io.LimitReader) so that nothing after it is consumed, and
// appends the response to dst for the caller to write: the 101, or the
// refusal. deflate reports that permessage-deflate was accepted. err is
// non-nil when the handshake failed: refused by the checks of RFC 6455
// §4.2.1 (a *ws.ConnectionRejectedError) or by Accept (its error), or
// cut short by a read error or a malformed request line, which get no
// response.
func (u *Upgrader) Upgrade(dst []byte, r io.Reader) (resp []byte, deflate bool, err error) {
	req := Request{Secure: u.Secure}
	gu := ws.Upgrader{
		OnRequest: func(b []byte) error {
			req.URI = string(b)
			return nil
		},
		OnHost: func(b []byte) error {
			req.Host = string(b)
			return nil
		},
		OnHeader: func(k, v []byte) error {
			switch {
			case bytes.EqualFold(k, []byte("Origin")):
				req.Origin = string(v)
			case bytes.EqualFold(k, []byte("Authorization")):
				req.Bearer = BearerToken(string(v))
			case bytes.EqualFold(k, []byte("Cookie")):
				req.Cookies = append(req.Cookies, string(v))
			}
			return nil
		},
		ProtocolCustom: func(v []byte) (string, bool) {
			selected, token := OfferedProtocols(string(v))
			if token != "" {
				req.ProtocolToken = token
			}
			return selected, true
		},
	}
	var ext *Negotiation
	if u.Deflate {
		ext = Negotiator()
		gu.Negotiate = ext.Negotiate
	}
	if u.Accept != nil {
		gu.OnBeforeUpgrade = func() (ws.HandshakeHeader, error) {
			return nil, u.Accept(&req)
		}
	}
	out := sliceWriter{b: dst}
	_, err = gu.Upgrade(struct {
		io.Reader
		io.Writer
	}{r, &out})
	return out.b, err == nil && ext != nil && ext.Accepted(), err
}
