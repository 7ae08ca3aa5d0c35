package auth

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// HostPolicy decides which Host headers a WebSocket handshake may carry. A
// page on an attacker's domain whose name is rebound to the bridge's address
// (DNS rebinding) reaches the bridge with the attacker's name in Host, and
// no Origin check stops it because the page is same-origin with that name;
// listing the bridge's public names closes that door. It is immutable and
// safe for concurrent use. A nil *HostPolicy, like one built from an empty
// list, allows every host.
type HostPolicy struct {
	anyPort map[string]bool   // hosts listed without a port
	exact   map[hostPort]bool // hosts listed with a port
}

// hostPort is a normalised host (lowercase name without a trailing dot, or
// a bracketed IPv6 address in its canonical form) and a port without
// leading zeros, "" when absent.
type hostPort struct{ host, port string }

// NewHostPolicy parses the public hosts of the bridge (BRIDGE_PUBLIC_HOSTS).
// An entry is "host" or "host:port", surrounding spaces ignored. A host is a
// DNS name or IPv4 address (ASCII letters, digits, '-', '_' and '.', one
// trailing dot ignored; internationalised names in their "xn--" form) or an
// IPv6 address in brackets ("[::1]", no zone). Names are case-insensitive
// and IPv6 addresses are compared in canonical form. An entry without a port
// matches that host on any port; an entry with a port (1-65535) matches only
// a Host header carrying that port, so list "example.com" rather than
// "example.com:443" for browsers, which omit default ports. Wildcards are not
// supported. An empty list allows every host. The error names the first
// invalid entry.
func NewHostPolicy(list []string) (*HostPolicy, error) {
	p := &HostPolicy{anyPort: make(map[string]bool), exact: make(map[hostPort]bool)}
	for _, s := range list {
		hp, detail := parseHostPort(strings.TrimSpace(s))
		if detail != "" {
			return nil, fmt.Errorf("auth: invalid public host %q: %s", s, detail)
		}
		if hp.port == "" {
			p.anyPort[hp.host] = true
		} else {
			p.exact[hp] = true
		}
	}
	return p, nil
}

// Allow reports whether a handshake whose Host header is host may proceed:
// true if the policy is nil or empty, or host ("host[:port]" as received,
// without surrounding whitespace) is well formed and listed. A malformed
// host, an empty one included, is refused by a non-empty policy.
func (p *HostPolicy) Allow(host string) bool {
	if p == nil || len(p.anyPort) == 0 && len(p.exact) == 0 {
		return true
	}
	hp, detail := parseHostPort(host)
	if detail != "" {
		return false
	}
	return p.anyPort[hp.host] || hp.port != "" && p.exact[hp]
}

// parseHostPort normalises "host[:port]"; detail is empty on success and
// otherwise says what is wrong.
func parseHostPort(s string) (hp hostPort, detail string) {
	host, port, hasPort := s, "", false
	if strings.Contains(s, "://") {
		return hp, "a scheme is not allowed (want host or host:port)"
	}
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return hp, "missing ']'"
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return hp, "invalid IPv6 address"
		}
		host = "[" + a.String() + "]"
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return hp, "unexpected text after ']'"
		}
	} else {
		if strings.Count(s, ":") > 1 {
			return hp, "IPv6 address without brackets"
		}
		host, port, hasPort = strings.Cut(s, ":")
		host = strings.TrimSuffix(host, ".")
		if host == "" {
			return hp, "empty host"
		}
		if !validHost(host) || strings.HasSuffix(host, ".") {
			return hp, "invalid host"
		}
		host = strings.ToLower(host)
	}
	if hasPort {
		n, ok := parsePort(port)
		if !ok {
			return hp, "invalid port"
		}
		port = strconv.Itoa(n)
	}
	return hostPort{host, port}, ""
}

// parsePort accepts 1-65535 in decimal digits only (no sign), leading zeros
// allowed.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 8 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1 && n <= 65535
}
