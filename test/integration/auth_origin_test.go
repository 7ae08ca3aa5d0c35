package integration

import (
	"net/http"
	"testing"

	"github.com/coder/websocket"

	"wsbridge/auth"
	"wsbridge/internal/testutil"
)

func TestOriginPolicy(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, auth.Config{}, []string{"https://app.example.com", "https://*.example.org"}, nil)
	ws := "ws://" + b.Addr + "/ws"
	cases := []struct {
		name, origin string
		want         int
	}{
		{"exact match", "https://app.example.com", http.StatusSwitchingProtocols},
		{"exact match default port", "https://app.example.com:443", http.StatusSwitchingProtocols},
		{"subdomain pattern", "https://chat.example.org", http.StatusSwitchingProtocols},
		{"deep subdomain pattern", "https://a.b.example.org", http.StatusSwitchingProtocols},
		{"bare domain of pattern", "https://example.org", http.StatusForbidden},
		{"pattern scheme mismatch", "http://chat.example.org", http.StatusForbidden},
		{"suffix trick", "https://evilexample.org", http.StatusForbidden},
		{"exact scheme mismatch", "http://app.example.com", http.StatusForbidden},
		{"exact port mismatch", "https://app.example.com:8443", http.StatusForbidden},
		{"other origin", "https://evil.example.net", http.StatusForbidden},
		{"same origin", "http://" + b.Addr, http.StatusSwitchingProtocols},
		{"same host over https", "https://" + b.Addr, http.StatusForbidden},
		{"no origin", "", http.StatusSwitchingProtocols},
		{"null", "null", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := &websocket.DialOptions{}
			if tc.origin != "" {
				opts = withHeader("Origin", tc.origin)
			}
			if tc.want == http.StatusSwitchingProtocols {
				mustConnect(t, ws, opts)
				return
			}
			expectRefused(t, ws, opts, tc.want, "")
		})
	}
}
