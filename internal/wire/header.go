package wire

import "slices"

// Headers a client may not set on pub or req: Nats-* headers change how
// JetStream treats the message (Nats-Rollup purges a stream,
// Nats-Expected-* and Nats-TTL, Nats-Msg-Id), and Wsbridge-* headers are
// the identity the bridge vouches for to services.
var reservedHeaderPrefixes = []string{"nats-", "wsbridge-"}

// Identity headers the bridge sets on every message a client publishes or
// requests. Clients cannot set them, so a service can trust them.
const (
	HeaderSub  = "Wsbridge-Sub"  // the token's sub claim; absent for anonymous clients
	HeaderNode = "Wsbridge-Node" // the node the client is connected to
)

// ReservedHeader returns the name, as the client wrote it, of a header in
// h that clients may not set (Nats-* or Wsbridge-*, case-insensitive), or
// "" when there is none. With several, it names the first in sort order,
// so the answer does not depend on map order.
func ReservedHeader(h map[string][]string) string {
	var found []string
	for k := range h {
		for _, p := range reservedHeaderPrefixes {
			if hasPrefixFold(k, p) {
				found = append(found, k)
				break
			}
		}
	}
	if len(found) == 0 {
		return ""
	}
	return slices.Min(found)
}

// hasPrefixFold reports whether s starts with the lower-case ASCII prefix,
// ignoring ASCII case only: header names are ASCII tokens, and Unicode
// folding would let "İ" stand for "i".
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}
