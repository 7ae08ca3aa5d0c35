package auth

import (
	"strings"
	"testing"
)

func TestNewOriginPolicy(t *testing.T) {
	tests := []struct {
		entry   string
		wantErr bool
	}{
		{"*", false},
		{"https://a.com", false},
		{"http://localhost:8080", false},
		{"https://*.example.com", false},
		{"https://*.example.com:8443", false},
		{"http://[::1]:3000", false},
		{"wss://a.com", false},
		{"a.com", true},
		{"https://", true},
		{"https://a.com/", true},
		{"https://a.com/path", true},
		{"https://a.com?q", true},
		{"https://user@a.com", true},
		{"https://a.com:", true},
		{"https://a.com:0", true},
		{"https://a.com:65536", true},
		{"https://a.com:x", true},
		{"https://*", true},
		{"https://*.", true},
		{"https://a.*.com", true},
		{"https://*a.com", true},
		{"https://*.[::1]", true},
		{"ftp://a.com", true},
		{"null", true},
		{"https://a..com", true},
		{"https://.a.com", true},
		{"https://[::1", true},
		{"https://::1", true},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			_, err := NewOriginPolicy([]string{"https://ok.com", tt.entry})
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewOriginPolicy(%q) error = %v, want error %v", tt.entry, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.entry) {
				t.Errorf("error %q does not name the entry", err)
			}
		})
	}
}

func TestOriginAllow(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		host    string
		tls     bool
		want    bool
	}{
		{"no origin", nil, "", "bridge.com", false, true},
		{"listed", []string{"https://app.com"}, "https://app.com", "bridge.com", true, true},
		{"listed default port", []string{"https://app.com"}, "https://app.com:443", "bridge.com", true, true},
		{"listed with default port", []string{"https://app.com:443"}, "https://app.com", "bridge.com", true, true},
		{"listed case", []string{"https://App.com"}, "HTTPS://app.COM", "bridge.com", true, true},
		{"wrong scheme", []string{"https://app.com"}, "http://app.com", "bridge.com", false, false},
		{"wrong port", []string{"https://app.com"}, "https://app.com:8443", "bridge.com", true, false},
		{"http default port", []string{"http://app.com:80"}, "http://app.com", "bridge.com", false, true},
		{"unlisted", []string{"https://app.com"}, "https://evil.com", "bridge.com", true, false},
		{"suffix attack", []string{"https://app.com"}, "https://app.com.evil.com", "bridge.com", true, false},
		{"subdomain", []string{"https://*.example.com"}, "https://a.example.com", "bridge.com", true, true},
		{"deep subdomain", []string{"https://*.example.com"}, "https://a.b.example.com", "bridge.com", true, true},
		{"wildcard excludes apex", []string{"https://*.example.com"}, "https://example.com", "bridge.com", true, false},
		{"wildcard label boundary", []string{"https://*.example.com"}, "https://evilexample.com", "bridge.com", true, false},
		{"wildcard scheme", []string{"https://*.example.com"}, "http://a.example.com", "bridge.com", false, false},
		{"wildcard port", []string{"https://*.example.com"}, "https://a.example.com:8443", "bridge.com", true, false},
		{"wildcard explicit port", []string{"https://*.example.com:8443"}, "https://a.example.com:8443", "bridge.com", true, true},
		{"any", []string{"*"}, "https://evil.com", "bridge.com", true, true},
		{"null refused", []string{"https://app.com"}, "null", "bridge.com", true, false},
		{"null with any", []string{"*"}, "null", "bridge.com", true, true},
		{"same origin http", nil, "http://bridge.com", "bridge.com", false, true},
		{"same origin ws", nil, "ws://bridge.com", "bridge.com", false, true},
		{"same origin https", nil, "https://bridge.com", "bridge.com", true, true},
		{"same origin explicit port", nil, "https://bridge.com", "bridge.com:443", true, true},
		{"same origin custom port", nil, "http://bridge.com:8080", "bridge.com:8080", false, true},
		{"same origin case", nil, "http://Bridge.COM", "bridge.com", false, true},
		{"same origin port differs", nil, "http://bridge.com:8080", "bridge.com", false, false},
		{"same origin scheme differs", nil, "http://bridge.com", "bridge.com", true, false},
		{"same origin https over plain", nil, "https://bridge.com", "bridge.com", false, false},
		{"same origin ipv6", nil, "http://[::1]:8080", "[::1]:8080", false, true},
		{"same origin ipv6 spelled differently", nil, "http://[0:0::1]:8080", "[::1]:8080", false, true},
		{"empty host", nil, "http://bridge.com", "", false, false},
		{"origin with path", []string{"https://app.com"}, "https://app.com/x", "bridge.com", true, false},
		{"origin garbage", []string{"https://app.com"}, "app.com", "bridge.com", true, false},
		{"origin userinfo", []string{"https://app.com"}, "https://x@app.com", "app.com", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewOriginPolicy(tt.allowed)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Allow(tt.origin, tt.host, tt.tls); got != tt.want {
				t.Errorf("Allow(%q, %q, %v) = %v, want %v", tt.origin, tt.host, tt.tls, got, tt.want)
			}
		})
	}
}
