package auth

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// OriginPolicy decides which browser origins may open a WebSocket (RFC 6455
// section 10.2: the server must check Origin to stop cross-site use of a
// browser's ambient credentials). It is immutable and safe for concurrent
// use.
type OriginPolicy struct {
	any   bool
	exact map[origin]bool
	wild  []origin // host holds the suffix, dot included: ".example.com"
}

// origin is a normalised scheme ("http" or "https"), lowercase host
// (IPv6 without brackets) and numeric port.
type origin struct {
	scheme, host, port string
}

// NewOriginPolicy parses allowed origins. An entry is "*" (any origin,
// including "null"), an origin such as "https://app.example.com" or
// "http://localhost:8080" (default ports may be omitted; ws and wss count
// as http and https), or "https://*.example.com", which matches subdomains
// of example.com at any depth, but not example.com itself, with the same
// scheme and port. Paths, queries and user info are refused. The error
// names the first invalid entry.
func NewOriginPolicy(allowed []string) (*OriginPolicy, error) {
	p := &OriginPolicy{exact: make(map[origin]bool)}
	for _, s := range allowed {
		if s == "*" {
			p.any = true
			continue
		}
		scheme, hostport, ok := strings.Cut(s, "://")
		wild := false
		if ok && strings.HasPrefix(hostport, "*.") {
			wild, hostport = true, hostport[2:]
		}
		o, ok := parseOrigin(scheme, hostport)
		if !ok || (wild && strings.HasPrefix(o.host, "[")) {
			return nil, fmt.Errorf("auth: invalid allowed origin %q", s)
		}
		if wild {
			o.host = "." + o.host
			p.wild = append(p.wild, o)
		} else {
			p.exact[o] = true
		}
	}
	return p, nil
}

// Allow reports whether a WebSocket handshake with the given Origin header
// may proceed. host is the request's Host header and tls whether the request
// arrived over TLS. An empty origin (non-browser client) is allowed, as is an
// origin in the list or the request's own origin; "null" is allowed only by
// "*".
func (p *OriginPolicy) Allow(origin, host string, tls bool) bool {
	if origin == "" || p.any {
		return true
	}
	scheme, hostport, ok := strings.Cut(origin, "://")
	if !ok {
		return false // includes "null"
	}
	o, ok := parseOrigin(scheme, hostport)
	if !ok {
		return false
	}
	if p.exact[o] {
		return true
	}
	for _, w := range p.wild {
		if o.scheme == w.scheme && o.port == w.port && strings.HasSuffix(o.host, w.host) && len(o.host) > len(w.host) {
			return true
		}
	}
	self := "http"
	if tls {
		self = "https"
	}
	h, ok := parseOrigin(self, host)
	return ok && h == o
}

// parseOrigin normalises scheme and "host[:port]". A host is ASCII letters,
// digits, '-', '_' and '.', or a bracketed IPv6 address.
func parseOrigin(scheme, hostport string) (origin, bool) {
	var o origin
	switch strings.ToLower(scheme) {
	case "http", "ws":
		o.scheme, o.port = "http", "80"
	case "https", "wss":
		o.scheme, o.port = "https", "443"
	default:
		return o, false
	}
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return o, false
		}
		ip := net.ParseIP(hostport[1:end])
		if ip == nil || ip.To4() != nil && !strings.Contains(hostport[1:end], ":") {
			return o, false
		}
		host = "[" + ip.String() + "]"
		rest := hostport[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return o, false
			}
			port = rest[1:]
			if port == "" {
				return o, false
			}
		}
	} else {
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			host, port = hostport[:i], hostport[i+1:]
			if port == "" {
				return o, false
			}
		}
		if !validHost(host) {
			return o, false
		}
		host = strings.ToLower(host)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return o, false
		}
		o.port = strconv.Itoa(n)
	}
	o.host = host
	return o, true
}

// validHost accepts DNS names and IPv4 literals, not wildcards or IPv6.
func validHost(h string) bool {
	if h == "" || h[0] == '.' {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return !strings.Contains(h, "..")
}
