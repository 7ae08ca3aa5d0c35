package integration

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

func TestAuthValidTokensAllAlgorithms(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwks, jwkOf(t, "rsa-1", &rsaKey.PublicKey), jwkOf(t, "ec-1", &ecKey.PublicKey))
	claims := claimsFor("alice", time.Now().Add(time.Hour), allowAll())
	pemCfg := func(pub any) auth.Config {
		return auth.Config{Mode: auth.ModeJWT, JWTPublicKeyFile: writePublicPEM(t, pub)}
	}
	jwksCfg := auth.Config{Mode: auth.ModeJWT, JWKSFile: jwks}
	cases := []struct {
		name  string
		cfg   auth.Config
		token string
	}{
		{"HS256 secret", hsConfig(), hsToken(t, claims)},
		{"RS256 PEM", pemCfg(&rsaKey.PublicKey), jwtSign(t, jwt.SigningMethodRS256, rsaKey, "", claims)},
		{"PS256 PEM", pemCfg(&rsaKey.PublicKey), jwtSign(t, jwt.SigningMethodPS256, rsaKey, "", claims)},
		{"ES256 PEM", pemCfg(&ecKey.PublicKey), jwtSign(t, jwt.SigningMethodES256, ecKey, "", claims)},
		{"EdDSA PEM", pemCfg(edPub), jwtSign(t, jwt.SigningMethodEdDSA, edKey, "", claims)},
		{"JWKS kid rsa-1", jwksCfg, jwtSign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims)},
		{"JWKS kid ec-1", jwksCfg, jwtSign(t, jwt.SigningMethodES256, ecKey, "ec-1", claims)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := authBridge(t, ns, tc.cfg, nil, nil)
			c := connectAs(t, b.Addr, tc.token)
			c.send(`{"op":"pub","id":"p","subject":"any.thing","data":1}`)
			c.expect("ok", "p")
		})
	}
	t.Run("JWKS refuses a kid naming the other key", func(t *testing.T) {
		b := authBridge(t, ns, jwksCfg, nil, nil)
		for _, tok := range []string{
			jwtSign(t, jwt.SigningMethodRS256, rsaKey, "ec-1", claims),
			jwtSign(t, jwt.SigningMethodES256, ecKey, "rsa-1", claims),
			jwtSign(t, jwt.SigningMethodES256, ecKey, "nope", claims),
			jwtSign(t, jwt.SigningMethodES256, ecKey, "", claims), // several keys: kid required
		} {
			expectRefused(t, "ws://"+b.Addr+"/ws", bearer(tok), http.StatusUnauthorized, tok)
		}
	})
}

func TestAuthInvalidTokensGet401(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	var logs logBuffer
	cfg := hsConfig()
	cfg.Issuer, cfg.Audience = "https://issuer.test", "wsbridge"
	hs := authBridge(t, ns, cfg, nil, func(c *bridge.Config) { c.Logger = logs.logger() })
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := writePublicPEM(t, &rsaKey.PublicKey)
	pemBytes, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	rs := authBridge(t, ns, auth.Config{Mode: auth.ModeJWT, JWTPublicKeyFile: pemFile}, nil, func(c *bridge.Config) { c.Logger = logs.logger() })

	now := time.Now()
	good := func() jwt.MapClaims {
		c := claimsFor("alice", now.Add(time.Hour), allowAll())
		c["iss"], c["aud"] = "https://issuer.test", "wsbridge"
		return c
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	// alg "none", hand-crafted: jwt-go refuses to sign it without a flag.
	none := b64url([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64url(mustJSON(t, good())) + "."

	t.Run("valid token", func(t *testing.T) {
		connectAs(t, hs.Addr, hsToken(t, good()))
	})
	cases := []struct {
		name   string
		addr   string
		token  string
		reason string // substring of the body; empty: any
	}{
		{"expired", hs.Addr, hsToken(t, with("exp", now.Add(-time.Hour).Unix())), "expired"},
		{"not yet valid", hs.Addr, hsToken(t, with("nbf", now.Add(time.Hour).Unix())), "not valid yet"},
		{"wrong signature", hs.Addr, jwtSign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), "", good()), "signature"},
		{"alg none", hs.Addr, none, ""},
		{"HMAC with RSA public key", rs.Addr, jwtSign(t, jwt.SigningMethodHS256, pemBytes, "", good()), ""},
		{"wrong issuer", hs.Addr, hsToken(t, with("iss", "https://evil.test")), "issuer"},
		{"missing issuer", hs.Addr, hsToken(t, with("iss", nil)), "issuer"},
		{"wrong audience", hs.Addr, hsToken(t, with("aud", "other")), "audience"},
		{"missing exp", hs.Addr, hsToken(t, with("exp", nil)), "exp"},
		{"garbage", hs.Addr, "not-a-jwt", "malformed"},
		{"three garbage parts", hs.Addr, "a.b.c", "malformed"},
		{"missing token", hs.Addr, "", "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := &websocket.DialOptions{}
			if tc.token != "" {
				opts = bearer(tc.token)
			}
			reason := expectRefused(t, "ws://"+tc.addr+"/ws", opts, http.StatusUnauthorized, tc.token)
			if !strings.Contains(reason, tc.reason) {
				t.Fatalf("reason %q does not mention %q", reason, tc.reason)
			}
		})
	}
	t.Run("logs never contain a token", func(t *testing.T) {
		out := logs.String()
		if !strings.Contains(out, "handshake refused") {
			t.Fatalf("refusals were not logged:\n%s", out)
		}
		for _, tc := range cases {
			if len(tc.token) > 12 && strings.Contains(out, tc.token) {
				t.Fatalf("log contains the %s token:\n%s", tc.name, out)
			}
		}
	})
}

func TestAuthLeewayHonoured(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	cfg := hsConfig()
	cfg.Leeway = 5 * time.Second
	b := authBridge(t, ns, cfg, nil, nil)
	t.Run("expired 2s ago is accepted", func(t *testing.T) {
		c := connectAs(t, b.Addr, hsToken(t, claimsFor("alice", time.Now().Add(-2*time.Second), allowAll())))
		c.send(`{"op":"ping","id":"p"}`)
		if f := c.recv(); f.Op != "pong" {
			t.Fatalf("a token inside the leeway was admitted, then answered %s", f.raw)
		}
	})
	t.Run("expired 10s ago is refused", func(t *testing.T) {
		tok := hsToken(t, claimsFor("alice", time.Now().Add(-10*time.Second), allowAll()))
		expectRefused(t, "ws://"+b.Addr+"/ws", bearer(tok), http.StatusUnauthorized, tok)
	})
	t.Run("not valid for 2s more is accepted", func(t *testing.T) {
		c := hsToken(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Add(2 * time.Second).Unix()})
		connectAs(t, b.Addr, c)
	})
}

func TestTokenTransports(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	var logs logBuffer
	b := authBridge(t, ns, hsConfig(), []string{"https://app.example.com"}, func(c *bridge.Config) {
		c.TokenCookie = "wsb_token"
		c.Logger = logs.logger()
	})
	tok := userToken(t, "alice", allowAll())
	ws := "ws://" + b.Addr + "/ws"

	t.Run("Authorization Bearer", func(t *testing.T) {
		mustConnect(t, ws, bearer(tok))
	})
	t.Run("Authorization bearer is case-insensitive", func(t *testing.T) {
		mustConnect(t, ws, withHeader("Authorization", "bearer "+tok))
	})
	t.Run("subprotocol", func(t *testing.T) {
		c, resp, body := handshake(t, ws, &websocket.DialOptions{Subprotocols: []string{"wsbridge.v1", "wsbridge.bearer." + tok}})
		if c == nil {
			t.Fatalf("refused: %d %q", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "wsbridge.v1" {
			t.Fatalf("Sec-WebSocket-Protocol %q, want wsbridge.v1", got)
		}
		if c.Subprotocol() != "wsbridge.v1" {
			t.Fatalf("Subprotocol() = %q", c.Subprotocol())
		}
		(&wsClient{t: t, c: c}).expect("hello", "")
	})
	t.Run("query", func(t *testing.T) {
		mustConnect(t, ws+"?token="+url.QueryEscape(tok), nil)
	})
	t.Run("cookie without Origin", func(t *testing.T) {
		mustConnect(t, ws, withHeader("Cookie", "other=1; wsb_token="+tok))
	})
	t.Run("cookie from allowed origin", func(t *testing.T) {
		mustConnect(t, ws, withHeader("Cookie", "wsb_token="+tok, "Origin", "https://app.example.com"))
	})
	t.Run("cookie from same origin", func(t *testing.T) {
		mustConnect(t, ws, withHeader("Cookie", "wsb_token="+tok, "Origin", "http://"+b.Addr))
	})
	t.Run("cookie from cross-site origin 403", func(t *testing.T) {
		expectRefused(t, ws, withHeader("Cookie", "wsb_token="+tok, "Origin", "https://evil.example.net"), http.StatusForbidden, tok)
	})
	t.Run("cookie with another name 401", func(t *testing.T) {
		expectRefused(t, ws, withHeader("Cookie", "session="+tok), http.StatusUnauthorized, tok)
	})
	t.Run("bad token in each transport 401", func(t *testing.T) {
		bad := tok[:len(tok)-4] + "AAAA"
		for _, opts := range []*websocket.DialOptions{
			bearer(bad),
			{Subprotocols: []string{"wsbridge.v1", "wsbridge.bearer." + bad}},
			withHeader("Cookie", "wsb_token="+bad),
		} {
			expectRefused(t, ws, opts, http.StatusUnauthorized, bad)
		}
		expectRefused(t, ws+"?token="+bad, nil, http.StatusUnauthorized, bad)
		if strings.Contains(logs.String(), bad) {
			t.Fatalf("logs contain the token:\n%s", logs.String())
		}
	})
}

func TestRefreshSameSubjectOK(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.send(map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", allowAll())})
	c.expect("ok", "a1")
	c.send(`{"op":"pub","id":"p","subject":"still.works","data":1}`)
	c.expect("ok", "p")
}

func TestRefreshDifferentSubjectDenied(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{Pub: permDir{Allow: []string{"alice.>"}}, Sub: permDir{Allow: []string{"alice.>"}}}))
	c.send(map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "bob", allowAll())})
	c.expectErr("a1", "permission_denied")
	// Old permissions kept: alice.> still allowed, bob's wider ones not.
	c.send(`{"op":"pub","id":"p1","subject":"alice.x","data":1}`)
	c.expect("ok", "p1")
	c.send(`{"op":"pub","id":"p2","subject":"bob.x","data":1}`)
	c.expectErr("p2", "permission_denied")
}

func TestRefreshNarrowingDropsSubscriptions(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	svc := testutil.NATSClient(t, ns)
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.subscribe("keep", "news.>", "")
	c.subscribe("drop", "orders.>", "")
	c.subscribe("drop2", "orders.eu.*", "")

	narrow := &perms{Pub: permDir{Allow: []string{">"}}, Sub: permDir{Allow: []string{"news.>"}}}
	c.send(map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", narrow)})
	got := map[string]frame{}
	for len(got) < 3 {
		f := c.recv()
		got[f.Op+":"+f.Ref] = f
	}
	for _, id := range []string{"drop", "drop2"} {
		f, ok := got["err:"+id]
		if !ok || f.Code != "permission_denied" || f.Message == "" {
			t.Fatalf("want err permission_denied ref %s, got %v", id, got)
		}
	}
	if _, ok := got["ok:a1"]; !ok {
		t.Fatalf("want ok a1, got %v", got)
	}
	testutil.Eventually(t, "NATS interest in orders.> to go", func() bool {
		return natsSubsOf(t, ns, "orders.>") == 0 && natsSubsOf(t, ns, "orders.eu.*") == 0
	})

	// Deliveries stop on the dropped subs and continue on the kept one.
	for _, s := range []string{"orders.eu.x", "news.a", "orders.us.y", "news.b"} {
		if err := svc.Publish(s, []byte(`"`+s+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"news.a", "news.b"} {
		f := c.expect("msg", "")
		if f.Subject != want || f.Sid != "keep" {
			t.Fatalf("got %s, want %s on keep", f.raw, want)
		}
	}
	c.send(`{"op":"ping","id":"end"}`)
	c.expect("pong", "end")
	// The removed ids are free again but the new permissions refuse them.
	c.send(`{"op":"sub","id":"drop","subject":"orders.>"}`)
	c.expectErr("drop", "permission_denied")
	c.send(`{"op":"unsub","id":"drop"}`)
	c.expectErr("drop", "not_found")
}

// A sub whose ok is still waiting for the NATS flush when a refresh removes
// it must not get that ok after its err.
func TestRefreshDropsPendingSubscription(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	r := testutil.DialWS(t, b.Addr, "/ws?token="+userToken(t, "alice", allowAll()))
	r.ExpectText(`{"op":"hello"`)
	narrow := &perms{Pub: permDir{Allow: []string{">"}}, Sub: permDir{Allow: []string{"late.>"}}}
	// One write: both commands are handled in one turn, before the flush
	// that would acknowledge the sub.
	auth := mustJSON(t, map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", narrow)})
	r.Write(append(testutil.MaskedFrame(true, ws.OpText, []byte(`{"op":"sub","id":"s1","subject":"pending.x"}`)), testutil.MaskedFrame(true, ws.OpText, auth)...))
	r.SendText(`{"op":"sub","id":"s2","subject":"late.fresh"}`)
	var seen []string
	for {
		f := rawRecv(t, r)
		seen = append(seen, f.Op+":"+f.Ref)
		if f.Op == "ok" && f.Ref == "s2" {
			break
		}
	}
	if got, want := strings.Join(seen, " "), "err:s1 ok:a1 ok:s2"; got != want {
		t.Fatalf("frames %q, want %q (no ok for the removed sub)", got, want)
	}
}

func TestRefreshInvalidTokenErr(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	for _, tc := range []struct{ name, token string }{
		{"garbage", "garbage"},
		{"empty", ""},
		{"wrong signature", jwtSign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), "", claimsFor("alice", time.Now().Add(time.Hour), allowAll()))},
		{"expired", hsToken(t, claimsFor("alice", time.Now().Add(-time.Hour), allowAll()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.send(map[string]any{"op": "auth", "id": "a1", "token": tc.token})
			f := c.expectErr("a1", "unauthorized")
			if tc.token != "" && strings.Contains(string(f.raw), tc.token) {
				t.Fatalf("err echoes the token: %s", f.raw)
			}
		})
	}
	c.send(`{"op":"pub","id":"p","subject":"still.open","data":1}`)
	c.expect("ok", "p")
}

func TestTokenExpiryCloses1008(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	exp := time.Now().Add(2 * time.Second)
	c := connectAs(t, b.Addr, hsToken(t, claimsFor("alice", exp, allowAll())))
	f := c.expectErr("", "token_expired")
	if now := time.Now(); now.Unix() < exp.Unix() {
		t.Fatalf("token_expired at %v, before exp %v", now, exp.Unix())
	}
	if code, reason := c.closeStatus(); code != websocket.StatusPolicyViolation || reason == "" {
		t.Fatalf("close %d %q after %s, want 1008", code, reason, f.raw)
	}
	t.Run("raw mode closes 1008 without an envelope", func(t *testing.T) {
		// exp is in whole seconds: now+2s truncated leaves at least one
		// for the handshake (now+1s could leave a few milliseconds).
		tok := hsToken(t, claimsFor("alice", time.Now().Add(2*time.Second), allowAll()))
		c, resp, body := handshake(t, "ws://"+b.Addr+"/ws/raw?sub=raw.x&token="+tok, nil)
		if c == nil {
			t.Fatalf("refused %d %q", resp.StatusCode, body)
		}
		ctx, cancel := ctxWait()
		defer cancel()
		_, p, err := c.Read(ctx)
		if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
			t.Fatalf("read %q %v, want close 1008", p, err)
		}
	})
}

func TestRefreshExtendsPastOldExpiry(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	oldExp := time.Now().Add(2 * time.Second)
	r := testutil.DialWS(t, b.Addr, "/ws?token="+hsToken(t, claimsFor("alice", oldExp, allowAll())))
	r.ExpectText(`{"op":"hello"`)
	r.SendText(string(mustJSON(t, map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", allowAll())})))
	r.ExpectText(`{"op":"ok","ref":"a1"}`)
	// Waiting for the old exp to pass is the point of the test.
	if !r.QuietUntil(time.Unix(oldExp.Unix(), 0).Add(1500 * time.Millisecond)) {
		t.Fatalf("got a frame before the deadline: %s", rawRecv(t, r).raw)
	}
	r.SendText(`{"op":"ping","id":"after"}`)
	r.ExpectText(`{"op":"pong","ref":"after"}`)
}

// rawRecv reads one text frame from r and decodes it.
func rawRecv(t *testing.T, r *testutil.RawConn) frame {
	t.Helper()
	f := r.ReadFrame()
	if f.Op != ws.OpText {
		t.Fatalf("got frame %v, want a text frame", f)
	}
	var fr frame
	if err := json.Unmarshal(f.Payload, &fr); err != nil {
		t.Fatalf("invalid JSON %q: %v", f.Payload, err)
	}
	fr.raw = f.Payload
	return fr
}

// A Shutdown right after the 101 (what happens at the end of any test
// whose last step is a handshake) must find every registered connection
// fully prepared: no race between registration and the poller.
func TestAuthShutdownRightAfterHandshake(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	for i := range 20 {
		t.Run(itoa(i), func(t *testing.T) {
			b := startBridge(t, ns, nil)
			c, resp, body := handshake(t, "ws://"+b.Addr+"/ws", nil)
			if c == nil {
				t.Fatalf("refused: %d %q", resp.StatusCode, body)
			}
			ctx, cancel := ctxWait()
			defer cancel()
			// The client answers the 1001 close, as a browser would.
			go func() {
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
				}
			}()
			if err := b.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
