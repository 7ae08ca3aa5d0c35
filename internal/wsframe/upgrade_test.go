package wsframe

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

const (
	testKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" // RFC 6455 §1.3's example
)

// upgradeHead is a valid upgrade request for target, with extra header
// lines after the required ones.
func upgradeHead(target string, extra ...string) string {
	lines := append([]string{
		"GET " + target + " HTTP/1.1",
		"Host: 127.0.0.1",
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + testKey,
		"Sec-WebSocket-Version: 13",
	}, extra...)
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

// without is a valid upgrade request of /ws less its header line prefixed
// by name.
func without(name string) string {
	var kept []string
	for _, l := range strings.Split(upgradeHead("/ws"), "\r\n") {
		if !strings.HasPrefix(l, name+":") {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "\r\n")
}

type upgradeCase struct {
	name    string
	head    string
	u       Upgrader // Accept is the test's
	refuse  error    // what Accept returns
	want    *Request // what Accept sees; nil when it must not run
	resp    string   // the whole response, when not empty
	status  int
	header  string // a header line the response must carry
	absent  string // a header name the response must not carry
	deflate bool
	// viaHTTP is false where net/http reads the head differently
	// (TestHTTPRequest).
	viaHTTP bool
}

func upgradeCases() []upgradeCase {
	plain := &Request{URI: "/ws", Host: "127.0.0.1"}
	with := func(f func(r *Request)) *Request {
		r := *plain
		f(&r)
		return &r
	}
	const deflateOK = "Sec-WebSocket-Extensions: permessage-deflate;server_no_context_takeover;client_no_context_takeover"
	return []upgradeCase{
		{
			name: "valid", head: upgradeHead("/ws"), want: plain, status: 101, viaHTTP: true,
			resp: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
		},
		{
			name: "target with a query", head: upgradeHead("/ws/raw?sub=a.b&token=t"), status: 101, viaHTTP: true,
			want: with(func(r *Request) { r.URI = "/ws/raw?sub=a.b&token=t" }),
		},
		{
			name: "odd-case names", status: 101, viaHTTP: true,
			head: "GET /ws HTTP/1.1\r\nhOsT: h\r\nuPgRaDe: WebSocket\r\ncOnNeCtIoN: keep-alive, UPGRADE\r\n" +
				"sec-websocket-key: " + testKey + "\r\nSEC-WEBSOCKET-VERSION: 13\r\noRiGiN: https://a.example\r\n" +
				"authorization: BEARER tok\r\ncookie: a=1\r\n\r\n",
			want: &Request{URI: "/ws", Host: "h", Origin: "https://a.example", Bearer: "tok", Cookies: []string{"a=1"}},
		},
		{
			name: "origin, bearer and cookies", status: 101, viaHTTP: true,
			head: upgradeHead("/ws", "Origin: https://a.example", "Authorization: bearer   tok  ", "Cookie: a=1; tok=2", "Cookie: b=3"),
			want: with(func(r *Request) {
				r.Origin, r.Bearer, r.Cookies = "https://a.example", "tok", []string{"a=1; tok=2", "b=3"}
			}),
		},
		{
			name: "not a bearer", head: upgradeHead("/ws", "Authorization: Basic dTpw"), want: plain, status: 101, viaHTTP: true,
		},
		{
			name: "protocol and its token", head: upgradeHead("/ws", "Sec-WebSocket-Protocol: wsbridge.v1, wsbridge.bearer.tok"),
			want: with(func(r *Request) { r.ProtocolToken = "tok" }), status: 101, viaHTTP: true,
			header: "Sec-WebSocket-Protocol: wsbridge.v1",
		},
		{
			name: "unknown protocol", head: upgradeHead("/ws", "Sec-WebSocket-Protocol: chat"), want: plain, status: 101, viaHTTP: true,
			absent: "Sec-WebSocket-Protocol",
		},
		{
			name: "token in a second protocol header", head: upgradeHead("/ws", "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: wsbridge.bearer.tok"),
			want: with(func(r *Request) { r.ProtocolToken = "tok" }), status: 101, viaHTTP: true,
		},
		{
			// gobwas reads no protocol header after one selected a
			// protocol; net/http joins them all.
			name: "token after a selected protocol", head: upgradeHead("/ws", "Sec-WebSocket-Protocol: wsbridge.v1", "Sec-WebSocket-Protocol: wsbridge.bearer.tok"),
			want: plain, status: 101, header: "Sec-WebSocket-Protocol: wsbridge.v1",
		},
		{
			// gobwas keeps the last; net/http's Get the first.
			name: "two origins", head: upgradeHead("/ws", "Origin: https://a.example", "Origin: https://b.example"),
			want: with(func(r *Request) { r.Origin = "https://b.example" }), status: 101,
		},
		{
			name: "secure", head: upgradeHead("/ws"), u: Upgrader{Secure: true}, status: 101,
			want: with(func(r *Request) { r.Secure = true }),
		},
		{
			name: "deflate accepted", head: upgradeHead("/ws", "Sec-WebSocket-Extensions: permessage-deflate"),
			u: Upgrader{Deflate: true}, want: plain, status: 101, header: deflateOK, deflate: true, viaHTTP: true,
		},
		{
			name: "deflate with a window size accepted", head: upgradeHead("/ws", "Sec-WebSocket-Extensions: x-foo, permessage-deflate; client_max_window_bits"),
			u: Upgrader{Deflate: true}, want: plain, status: 101, header: deflateOK, deflate: true, viaHTTP: true,
		},
		{
			name: "deflate not enabled", head: upgradeHead("/ws", "Sec-WebSocket-Extensions: permessage-deflate"),
			want: plain, status: 101, absent: "Sec-WebSocket-Extensions", viaHTTP: true,
		},
		{
			name: "deflate with an unknown parameter declined", head: upgradeHead("/ws", "Sec-WebSocket-Extensions: permessage-deflate; bogus=1"),
			u: Upgrader{Deflate: true}, want: plain, status: 101, absent: "Sec-WebSocket-Extensions", viaHTTP: true,
		},
		{
			name: "deflate not offered", head: upgradeHead("/ws"),
			u: Upgrader{Deflate: true}, want: plain, status: 101, absent: "Sec-WebSocket-Extensions", viaHTTP: true,
		},
		{
			name: "refused by Accept", head: upgradeHead("/ws"), want: plain, status: 403, viaHTTP: true,
			refuse: ws.RejectConnectionError(ws.RejectionStatus(403), ws.RejectionReason("origin not allowed\n")),
			resp:   "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n\r\norigin not allowed\n",
		},
		{
			name: "refused by Accept with a header", head: upgradeHead("/ws"), want: plain, status: 503, header: "Retry-After: 2", viaHTTP: true,
			refuse: ws.RejectConnectionError(ws.RejectionStatus(503), ws.RejectionReason("busy\n"),
				ws.RejectionHeader(ws.HandshakeHeaderString("Retry-After: 2\r\n"))),
		},
		{
			name: "failed in Accept", head: upgradeHead("/ws"), want: plain, status: 500, viaHTTP: true,
			refuse: errors.New("boom"),
		},
		{name: "POST", head: strings.Replace(upgradeHead("/ws"), "GET", "POST", 1), status: 405},
		{name: "HTTP/1.0", head: strings.Replace(upgradeHead("/ws"), "HTTP/1.1", "HTTP/1.0", 1), status: 505},
		{name: "version 8", head: strings.Replace(upgradeHead("/ws"), "Version: 13", "Version: 8", 1), status: 426, header: "Sec-WebSocket-Version: 13"},
		{name: "no version", head: without("Sec-WebSocket-Version"), status: 400},
		{name: "no Host", head: without("Host"), status: 400},
		{name: "no key", head: without("Sec-WebSocket-Key"), status: 400},
		{name: "short key", head: strings.Replace(upgradeHead("/ws"), testKey, "dG9vc2hvcnQ=", 1), status: 400},
		{name: "wrong Upgrade", head: strings.Replace(upgradeHead("/ws"), "websocket", "h2c", 1), status: 400},
		{name: "wrong Connection", head: strings.Replace(upgradeHead("/ws"), "Connection: Upgrade", "Connection: close", 1), status: 400},
		{name: "header without a colon", head: upgradeHead("/ws", "Bad header line"), status: 400},
		{name: "no blank line", head: strings.TrimSuffix(upgradeHead("/ws"), "\r\n")},
		{name: "no request line", head: "\r\n\r\n"},
	}
}

// runUpgrade upgrades tc.head and returns the response, the deflate
// outcome, the error, and the Request Accept saw (nil when it did not run).
func runUpgrade(t *testing.T, tc upgradeCase, dst []byte) (resp []byte, deflate bool, err error, seen *Request) {
	t.Helper()
	u := tc.u
	u.Accept = func(r *Request) error {
		if seen != nil {
			t.Fatal("Accept ran twice")
		}
		seen = r
		return tc.refuse
	}
	resp, deflate, err = u.Upgrade(dst, strings.NewReader(tc.head))
	return resp, deflate, err, seen
}

func TestUpgrade(t *testing.T) {
	for _, tc := range upgradeCases() {
		t.Run(tc.name, func(t *testing.T) {
			resp, deflate, err, seen := runUpgrade(t, tc, nil)
			if !reflect.DeepEqual(seen, tc.want) {
				t.Errorf("Accept saw %+v, want %+v", seen, tc.want)
			}
			if deflate != tc.deflate {
				t.Errorf("deflate %v, want %v", deflate, tc.deflate)
			}
			if tc.resp != "" && string(resp) != tc.resp {
				t.Errorf("response %q, want %q", resp, tc.resp)
			}
			if tc.status == 0 {
				if err == nil || len(resp) != 0 {
					t.Fatalf("err %v, response %q: want an error and no response", err, resp)
				}
				return
			}
			hr, rerr := http.ReadResponse(bufio.NewReader(bytes.NewReader(resp)), nil)
			if rerr != nil {
				t.Fatalf("response %q: %v", resp, rerr)
			}
			if hr.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (err %v)", hr.StatusCode, tc.status, err)
			}
			switch {
			case tc.status == 101 && err != nil:
				t.Errorf("101 with err %v", err)
			case tc.status != 101 && tc.refuse != nil && err != tc.refuse:
				t.Errorf("err %v, want Accept's %v", err, tc.refuse)
			case tc.status != 101 && tc.refuse == nil:
				var rej *ws.ConnectionRejectedError
				if !errors.As(err, &rej) || rej.StatusCode() != tc.status {
					t.Errorf("err %v, want a %d rejection", err, tc.status)
				}
			}
			if tc.header != "" && !bytes.Contains(resp, []byte("\r\n"+tc.header+"\r\n")) {
				t.Errorf("response %q lacks %q", resp, tc.header)
			}
			if tc.absent != "" && hr.Header.Get(tc.absent) != "" {
				t.Errorf("response %q has %s", resp, tc.absent)
			}
		})
	}
}

func TestUpgradeAppends(t *testing.T) {
	tc := upgradeCases()[0]
	dst := make([]byte, 0, 512)
	dst = append(dst, "before"...)
	resp, _, err, _ := runUpgrade(t, tc, dst)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "before"+tc.resp {
		t.Fatalf("response %q, want it after %q", resp, "before")
	}
	if &resp[0] != &dst[:1][0] {
		t.Fatal("response not appended in dst's array")
	}
}

// TestUpgradeNilAccept checks that the zero Upgrader accepts.
func TestUpgradeNilAccept(t *testing.T) {
	var u Upgrader
	resp, deflate, err := u.Upgrade(nil, strings.NewReader(upgradeHead("/ws", "Sec-WebSocket-Extensions: permessage-deflate")))
	if err != nil || deflate || !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
		t.Fatalf("response %q, deflate %v, err %v", resp, deflate, err)
	}
}

// TestHTTPRequest checks that a head net/http parsed gives the Request an
// Upgrader gives, wherever the two read headers alike.
func TestHTTPRequest(t *testing.T) {
	for _, tc := range upgradeCases() {
		if !tc.viaHTTP {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.head)))
			if err != nil {
				t.Fatal(err)
			}
			got := HTTPRequest(r)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("HTTPRequest: %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRequestToken(t *testing.T) {
	cases := []struct {
		name   string
		req    Request
		cookie string
		want   string
	}{
		{name: "none", req: Request{URI: "/ws"}, cookie: "tok", want: ""},
		{
			name: "bearer first",
			req:  Request{URI: "/ws?token=q", Bearer: "b", ProtocolToken: "p", Cookies: []string{"tok=c"}},
			want: "b", cookie: "tok",
		},
		{
			name: "protocol token second",
			req:  Request{URI: "/ws?token=q", ProtocolToken: "p", Cookies: []string{"tok=c"}},
			want: "p", cookie: "tok",
		},
		{name: "query third", req: Request{URI: "/ws?token=q", Cookies: []string{"tok=c"}}, cookie: "tok", want: "q"},
		{name: "cookie last", req: Request{URI: "/ws", Cookies: []string{"tok=c"}}, cookie: "tok", want: "c"},
		{name: "empty query token", req: Request{URI: "/ws?token=", Cookies: []string{"tok=c"}}, cookie: "tok", want: "c"},
		{name: "cookies disabled", req: Request{URI: "/ws", Cookies: []string{"tok=c"}}, want: ""},
		{name: "first query token", req: Request{URI: "/ws?token=a&token=b"}, want: "a"},
		{name: "query token unescaped", req: Request{URI: "/ws?x=1&token=a%2Bb+c"}, want: "a+b c"},
		{name: "absolute target", req: Request{URI: "http://h/ws?token=q"}, want: "q"},
		{name: "target that does not parse", req: Request{URI: "ws?token=q", Cookies: []string{"tok=c"}}, cookie: "tok", want: "c"},
		{name: "malformed query pair skipped", req: Request{URI: "/ws?%zz&token=q"}, want: "q"},
		{name: "cookie among others", req: Request{URI: "/ws", Cookies: []string{"a=1;  tok=c ; b=2"}}, cookie: "tok", want: "c"},
		{name: "cookie in a later header", req: Request{URI: "/ws", Cookies: []string{"a=1", "tok=c"}}, cookie: "tok", want: "c"},
		{name: "first cookie wins", req: Request{URI: "/ws", Cookies: []string{"tok=c", "tok=d"}}, cookie: "tok", want: "c"},
		{name: "quoted cookie", req: Request{URI: "/ws", Cookies: []string{`tok="c"`}}, cookie: "tok", want: "c"},
		{name: "cookie name is exact", req: Request{URI: "/ws", Cookies: []string{"xtok=1; TOK=2; tok"}}, cookie: "tok", want: ""},
		{name: "cookie value with =", req: Request{URI: "/ws", Cookies: []string{"tok=a=b"}}, cookie: "tok", want: "a=b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.req.Token(tc.cookie); got != tc.want {
				t.Fatalf("Token(%q) = %q, want %q", tc.cookie, got, tc.want)
			}
		})
	}
}

// BenchmarkUpgrade is one handshake of a connect storm: a browser's
// request with a protocol token, an origin and a deflate offer.
func BenchmarkUpgrade(b *testing.B) {
	head := upgradeHead("/ws", "Origin: https://a.example", "Sec-WebSocket-Protocol: wsbridge.v1, wsbridge.bearer.tok",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
	u := Upgrader{Deflate: true, Accept: func(*Request) error { return nil }}
	var r strings.Reader
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(head)
		if _, _, err := u.Upgrade(dst, &r); err != nil {
			b.Fatal(err)
		}
	}
}
