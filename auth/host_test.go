package auth

import (
	"strings"
	"testing"
)

// hostEntryTests are BRIDGE_PUBLIC_HOSTS entries; they also seed
// FuzzHostPolicy.
var hostEntryTests = []struct {
	name    string
	entry   string
	wantErr string // substring; empty means valid
}{
	{"name", "bridge.example.com", ""},
	{"name and port", "bridge.example.com:8443", ""},
	{"upper case", "Bridge.Example.COM", ""},
	{"trailing dot", "example.com.", ""},
	{"single label", "localhost", ""},
	{"ipv4", "10.0.0.1:8080", ""},
	{"ipv6", "[::1]", ""},
	{"ipv6 and port", "[2001:db8::1]:443", ""},
	{"punycode", "xn--bcher-kva.example", ""},
	{"spaces around", "  example.com ", ""},
	{"leading zeros in port", "example.com:0080", ""},
	{"empty", "", `"": empty host`},
	{"only spaces", "   ", "empty host"},
	{"only a dot", ".", "empty host"},
	{"port only", ":8080", "empty host"},
	{"empty port", "example.com:", `"example.com:": invalid port`},
	{"port zero", "example.com:0", "invalid port"},
	{"port too big", "example.com:65536", "invalid port"},
	{"signed port", "example.com:+80", "invalid port"},
	{"port with letters", "example.com:http", "invalid port"},
	{"long port", "example.com:000000000080", "invalid port"},
	{"two trailing dots", "example.com..", "invalid host"},
	{"leading dot", ".example.com", "invalid host"},
	{"empty label", "a..com", "invalid host"},
	{"wildcard", "*.example.com", "invalid host"},
	{"scheme", "https://example.com", "a scheme is not allowed"},
	{"path", "example.com/ws", "invalid host"},
	{"userinfo", "u@example.com", "invalid host"},
	{"space inside", "exa mple.com", "invalid host"},
	{"unicode", "bücher.example", "invalid host"},
	{"bare ipv6", "::1", "IPv6 address without brackets"},
	{"ipv4 in brackets", "[10.0.0.1]", "invalid IPv6 address"},
	{"ipv6 zone", "[fe80::1%eth0]", "invalid IPv6 address"},
	{"bad ipv6", "[::g]", "invalid IPv6 address"},
	{"unclosed bracket", "[::1", "missing ']'"},
	{"text after bracket", "[::1]x", "unexpected text"},
	{"empty ipv6 port", "[::1]:", "invalid port"},
}

func TestNewHostPolicy(t *testing.T) {
	for _, tt := range hostEntryTests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewHostPolicy([]string{"ok.example", tt.entry})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("NewHostPolicy(%q): %v", tt.entry, err)
			case tt.wantErr == "" && !p.Allow(strings.TrimSpace(tt.entry)):
				t.Errorf("listed %q refused", tt.entry)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("NewHostPolicy(%q) succeeded, want error containing %q", tt.entry, tt.wantErr)
			case err != nil && (!strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "auth: invalid public host ")):
				t.Errorf("NewHostPolicy(%q): %v, want error containing %q", tt.entry, err, tt.wantErr)
			}
		})
	}
}

// hostAllowList and hostAllowTests check Allow; the hosts also seed
// FuzzHostPolicy.
var hostAllowList = []string{"bridge.example.com", "ws.example.com:8443", "10.0.0.1", "[2001:db8::1]:443", "[::1]"}

var hostAllowTests = []struct {
	host string
	want bool
}{
	{"bridge.example.com", true},
	{"bridge.example.com:443", true}, // no port listed: any port
	{"bridge.example.com:8080", true},
	{"BRIDGE.Example.Com", true},
	{"bridge.example.com.", true},
	{"bridge.example.com.:443", true},
	{"bridge.example.com:0443", true},
	{"ws.example.com:8443", true},
	{"ws.example.com", false}, // port listed: only that port
	{"ws.example.com:443", false},
	{"WS.EXAMPLE.COM:8443", true},
	{"10.0.0.1:80", true},
	{"10.0.0.2", false},
	{"[2001:db8::1]:443", true},
	{"[2001:DB8:0::1]:443", true},
	{"[2001:db8::1]", false},
	{"[::1]:9000", true},
	{"[0:0::1]", true},
	{"evil.example", false},
	{"bridge.example.com.evil.example", false},
	{"evilbridge.example.com", false},
	{"example.com", false},
	{"", false},
	{"bridge.example.com:", false},
	{"bridge.example.com:99999", false},
	{" bridge.example.com", false},
	{"bridge.example.com..", false},
	{"u@bridge.example.com", false},
	{"::1", false},
	{"[::1%25eth0]", false},
	{"[::ffff:10.0.0.1]", false}, // v4-mapped is not the IPv4 entry
}

func TestHostPolicyAllow(t *testing.T) {
	p, err := NewHostPolicy(hostAllowList)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range hostAllowTests {
		t.Run(tt.host, func(t *testing.T) {
			if got := p.Allow(tt.host); got != tt.want {
				t.Errorf("Allow(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
	t.Run("nil and empty allow all", func(t *testing.T) {
		empty, err := NewHostPolicy(nil)
		if err != nil {
			t.Fatal(err)
		}
		var none *HostPolicy
		for _, h := range []string{"", "evil.example", "not a host"} {
			if !none.Allow(h) || !empty.Allow(h) {
				t.Errorf("Allow(%q) refused without a list", h)
			}
		}
	})
}
