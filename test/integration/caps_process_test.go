package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/testutil"
)

// Issue 13's settings as the real binary reads them: BRIDGE_PUBLIC_HOSTS
// and the per-connection caps.

// upgradeWithHost sends an opening handshake for path with the given Host
// header and returns the response status and body.
func upgradeWithHost(t *testing.T, addr, path, host string) (int, string) {
	t.Helper()
	r := testutil.Dial(t, addr, 0)
	req := testutil.UpgradeRequest(path)
	req = strings.Replace(req, "Host: 127.0.0.1\r\n", "Host: "+host+"\r\n", 1)
	r.Write([]byte(req))
	resp := r.ReadResponse()
	defer resp.Body.Close()
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	return resp.StatusCode, string(body)
}

// TestPublicHosts: with BRIDGE_PUBLIC_HOSTS set, a handshake whose Host is
// not listed is refused with 403 (DNS rebinding: a page on evil.example
// whose name now resolves to the bridge still sends Host: evil.example);
// unset, every Host is accepted as before.
func TestPublicHosts(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	t.Run("set", func(t *testing.T) {
		// A bare name matches it on any port, a name with a port that port
		// only (auth.NewHostPolicy); names are case-insensitive.
		p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_PUBLIC_HOSTS=bridge.internal, app.internal:8443,localhost")
		for _, tc := range []struct {
			host string
			want int
		}{
			{"bridge.internal", http.StatusSwitchingProtocols},
			{"bridge.internal:9999", http.StatusSwitchingProtocols},
			{"BRIDGE.Internal", http.StatusSwitchingProtocols},
			{"app.internal:8443", http.StatusSwitchingProtocols},
			{"localhost:8080", http.StatusSwitchingProtocols},
			{"app.internal", http.StatusForbidden},
			{"app.internal:9999", http.StatusForbidden},
			{"evil.example", http.StatusForbidden},
			{"evil.example:8443", http.StatusForbidden},
			{"bridge.internal.evil.example", http.StatusForbidden},
			{"", http.StatusForbidden},
			{p.addr, http.StatusForbidden}, // the address it listens on, unlisted
		} {
			for _, path := range []string{"/ws", "/ws/raw?sub=x"} {
				t.Run(tc.host+" "+path, func(t *testing.T) {
					if got, body := upgradeWithHost(t, p.addr, path, tc.host); got != tc.want {
						t.Fatalf("Host %s: %d %q, want %d", tc.host, got, body, tc.want)
					}
				})
			}
		}
	})
	t.Run("unset", func(t *testing.T) {
		p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL())
		for _, host := range []string{"evil.example", "bridge.internal", p.addr} {
			if got, body := upgradeWithHost(t, p.addr, "/ws", host); got != http.StatusSwitchingProtocols {
				t.Fatalf("Host %s without BRIDGE_PUBLIC_HOSTS: %d %q, want 101", host, got, body)
			}
		}
	})
}

// TestCapsFromEnvironment: BRIDGE_MAX_INFLIGHT_REQUESTS and
// BRIDGE_MAX_INFLIGHT_ACKS set the caps of the real binary.
func TestCapsFromEnvironment(t *testing.T) {
	ns := testutil.StartNATS(t, true, nil)
	nc := testutil.NATSClient(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HOLD", Subjects: []string{"held.>"}, NoAck: true}); err != nil {
		t.Fatal(err)
	}
	reqs := holder(t, nc, "hold.svc")
	acks := holder(t, nc, "held.>")
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_REQUEST_TIMEOUT=60s",
		"BRIDGE_MAX_INFLIGHT_REQUESTS=2", "BRIDGE_MAX_INFLIGHT_ACKS=3", "BRIDGE_MAX_CATCHUPS_PER_CONN=1")
	c := dial(t, p.addr)
	for i := range 2 {
		c.send(map[string]any{"op": "req", "id": "r" + itoa(i), "subject": "hold.svc", "data": 1, "timeout_ms": 60000})
		nextHeld(t, reqs)
	}
	// Without the cap the third request goes out and waits for its 60 s
	// timeout: no answer within wait.
	c.send(map[string]any{"op": "req", "id": "r2", "subject": "hold.svc", "data": 1, "timeout_ms": 60000})
	c.expectErr("r2", "too_many_requests")
	for i := range 3 {
		c.send(map[string]any{"op": "pub", "ack": true, "id": "a" + itoa(i), "subject": "held.x", "data": 1})
		nextHeld(t, acks)
	}
	c.send(map[string]any{"op": "pub", "ack": true, "id": "a3", "subject": "held.x", "data": 1})
	c.expectErr("a3", "too_many_requests")
}

// TestCapConfigErrors: a cap or public host the bridge cannot use exits
// 2 naming the variable, like every other setting.
func TestCapConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"BRIDGE_MAX_INFLIGHT_REQUESTS", "-1"},
		{"BRIDGE_MAX_INFLIGHT_ACKS", "-1"},
		{"BRIDGE_MAX_CATCHUPS_PER_CONN", "-1"},
		{"BRIDGE_PUBLIC_HOSTS", "https://bridge.example.com"},
		{"BRIDGE_PUBLIC_HOSTS", "bridge.example.com:99999"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			code, out, _ := runBinary(t, []string{tc.name + "=" + tc.value})
			if code != 2 || !strings.Contains(out, tc.name) {
				t.Fatalf("exit %d, output:\n%s\nwant exit 2 naming %s", code, out, tc.name)
			}
		})
	}
}
