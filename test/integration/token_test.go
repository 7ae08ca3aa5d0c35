package integration

import (
	"net/url"
	"strings"
	"testing"

	"wsbridge/internal/testutil"
)

// TestTokenSubcommandConnects: `wsbridge token` with the bridge's own
// environment prints a URL that a real bridge accepts, and the token
// carries the permissions asked for.
func TestTokenSubcommandConnects(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	env := []string{"BRIDGE_AUTH_MODE=jwt", "BRIDGE_JWT_SECRET=integration-dev-secret"}
	p := startProcess(t, append(env, "BRIDGE_NATS_URL="+ns.ClientURL())...)

	code, out, took := runBinary(t, append(env, "BRIDGE_LISTEN="+p.addr),
		"token", "-sub", "alice", "-pub-allow", "orders.>", "-sub-allow", "orders.>", "-ttl", "10m")
	if code != 0 {
		t.Fatalf("wsbridge token: exit %d:\n%s", code, out)
	}
	if took > quickExit {
		t.Errorf("wsbridge token took %v", took)
	}
	var link string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ws://") {
			link = line
		}
	}
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("no ws:// URL with a token in the output:\n%s", out)
	}
	if u.Host != p.addr {
		t.Fatalf("URL host %s, want BRIDGE_LISTEN %s", u.Host, p.addr)
	}

	c := mustConnect(t, link, nil)
	c.subscribe("s1", "orders.>", "")
	c.send(`{"op":"sub","id":"s2","subject":"payments.>"}`)
	c.expectErr("s2", "permission_denied")
	c.send(`{"op":"pub","subject":"orders.new","data":1,"id":"p1"}`)
	c.expect("ok", "p1")
	if f := c.expect("msg", ""); f.Subject != "orders.new" {
		t.Fatalf("got %s", f.raw)
	}

	code, out, _ = runBinary(t, []string{"BRIDGE_AUTH_MODE=jwt", "BRIDGE_JWT_SECRET=another-secret", "BRIDGE_LISTEN=" + p.addr}, "token")
	if code != 0 {
		t.Fatalf("wsbridge token: exit %d:\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ws://") {
			if c, resp, _ := handshake(t, line, nil); c != nil || resp.StatusCode != 401 {
				t.Fatalf("a token for another secret: %v, want 401", resp.StatusCode)
			}
		}
	}
}
