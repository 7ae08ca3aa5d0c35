package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"wsbridge/auth"
	"wsbridge/bridge"
)

// authorizer adapts auth.Verifier to the bridge's interface, exactly as
// main.go wires it.
type authorizer struct{ v *auth.Verifier }

func (a authorizer) Authenticate(token string) (bridge.Identity, error) {
	id, err := a.v.Verify(token)
	if err != nil {
		return nil, err
	}
	return id, nil
}

var _ bridge.Authorizer = authorizer{}

const testSecret = "integration-secret-0123456789abcdef"

// hsConfig is jwt mode with the HMAC test secret.
func hsConfig() auth.Config {
	return auth.Config{Mode: auth.ModeJWT, JWTSecret: testSecret}
}

// authBridge starts a bridge whose Authorizer is auth.New(acfg) and whose
// origin policy allows origins (plus same-origin and Origin-less clients).
func authBridge(t *testing.T, ns *natsserver.Server, acfg auth.Config, origins []string, mutate func(*bridge.Config)) *testBridge {
	t.Helper()
	v, err := auth.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := auth.NewOriginPolicy(origins)
	if err != nil {
		t.Fatal(err)
	}
	return startBridge(t, ns, func(c *bridge.Config) {
		c.Auth = authorizer{v}
		c.CheckOrigin = policy.Allow
		if mutate != nil {
			mutate(c)
		}
	})
}

// logBuffer collects a bridge's logs so tests can check what they say.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// perms is the "nats" claim.
type perms struct {
	Pub permDir `json:"pub"`
	Sub permDir `json:"sub"`
}

type permDir struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

func allowAll() *perms {
	return &perms{Pub: permDir{Allow: []string{">"}}, Sub: permDir{Allow: []string{">"}}}
}

// claimsFor builds a token payload; p nil leaves out the "nats" claim.
func claimsFor(sub string, exp time.Time, p *perms) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "iat": time.Now().Unix()}
	if p != nil {
		c["nats"] = p
	}
	return c
}

func jwtSign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hsToken signs c with the test secret.
func hsToken(t *testing.T, c jwt.Claims) string {
	t.Helper()
	return jwtSign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)
}

// userToken is an HS256 token for sub valid for an hour with p.
func userToken(t *testing.T, sub string, p *perms) string {
	t.Helper()
	return hsToken(t, claimsFor(sub, time.Now().Add(time.Hour), p))
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// writePublicPEM writes pub as a PKIX PUBLIC KEY block and returns the file.
func writePublicPEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwkOf encodes a public key as a JWK (RFC 7517/7518/8037).
func jwkOf(t *testing.T, kid string, pub any) map[string]string {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "n": b64url(k.N.Bytes()), "e": b64url(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(b) - 1) / 2
		return map[string]string{"kty": "EC", "kid": kid, "crv": k.Curve.Params().Name, "x": b64url(b[1 : 1+size]), "y": b64url(b[1+size:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64url(k)}
	}
	t.Fatalf("unsupported key %T", pub)
	return nil
}

// writeJWKS writes a JWK set of keys to path.
func writeJWKS(t *testing.T, path string, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// handshake tries a WebSocket handshake on u. On success it returns the
// connection (closed at cleanup) and the response; on refusal a nil
// connection, the response and its body.
func handshake(t *testing.T, u string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, string) {
	t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err == nil {
		c.SetReadLimit(8 << 20)
		t.Cleanup(func() { c.CloseNow() })
		return c, resp, ""
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", redactToken(u), err)
	}
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(resp.Body)
	}
	return nil, resp, string(body)
}

func redactToken(u string) string {
	if i := strings.Index(u, "token="); i >= 0 {
		return u[:i] + "token=[REDACTED]"
	}
	return u
}

// withHeader returns dial options sending the given header pairs.
func withHeader(kv ...string) *websocket.DialOptions {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &websocket.DialOptions{HTTPHeader: h}
}

func bearer(token string) *websocket.DialOptions {
	return withHeader("Authorization", "Bearer "+token)
}

// mustConnect dials u, requires a 101 and the hello, and returns the client.
func mustConnect(t *testing.T, u string, opts *websocket.DialOptions) *wsClient {
	t.Helper()
	c, resp, body := handshake(t, u, opts)
	if c == nil {
		t.Fatalf("handshake refused: %d %q", resp.StatusCode, body)
	}
	wc := &wsClient{t: t, c: c}
	wc.expect("hello", "")
	return wc
}

// tryConnect reports whether u accepts a handshake; an accepted client
// is held until it has its hello, so the bridge is done setting it up.
func tryConnect(t *testing.T, u string, opts *websocket.DialOptions) bool {
	t.Helper()
	c, _, _ := handshake(t, u, opts)
	if c == nil {
		return false
	}
	(&wsClient{t: t, c: c}).expect("hello", "")
	return true
}

// connectAs opens /ws with token as a bearer token.
func connectAs(t *testing.T, addr, token string) *wsClient {
	t.Helper()
	return mustConnect(t, "ws://"+addr+"/ws", bearer(token))
}

// expectRefused dials u and requires the HTTP status, a short reason in the
// body and no trace of secret in it.
func expectRefused(t *testing.T, u string, opts *websocket.DialOptions, status int, secret string) string {
	t.Helper()
	c, resp, body := handshake(t, u, opts)
	if c != nil {
		t.Fatalf("got 101, want %d", status)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, status)
	}
	reason := strings.TrimSpace(body)
	if reason == "" || len(reason) > 200 {
		t.Fatalf("want a short reason in the body, got %q", body)
	}
	if secret != "" && strings.Contains(body, secret) {
		t.Fatalf("the body contains the token: %q", body)
	}
	return reason
}

// --- Identity ---------------------------------------------------------

func TestAuthValidTokensAllAlgorithms(t *testing.T) {
	ns := startNATS(t, false)
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
	ns := startNATS(t, false)
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

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuthLeewayHonoured(t *testing.T) {
	ns := startNATS(t, false)
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

// --- Token transports -------------------------------------------------

func TestTokenTransports(t *testing.T) {
	ns := startNATS(t, false)
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

// --- Refresh and expiry -----------------------------------------------

func TestRefreshSameSubjectOK(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.send(map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", allowAll())})
	c.expect("ok", "a1")
	c.send(`{"op":"pub","id":"p","subject":"still.works","data":1}`)
	c.expect("ok", "p")
}

func TestRefreshDifferentSubjectDenied(t *testing.T) {
	ns := startNATS(t, false)
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
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	svc := natsClient(t, ns)
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
	eventually(t, "NATS interest in orders.> to go", func() bool {
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
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	r := rawDial(t, b.Addr, "/ws?token="+userToken(t, "alice", allowAll()))
	r.expectText(`{"op":"hello"`)
	narrow := &perms{Pub: permDir{Allow: []string{">"}}, Sub: permDir{Allow: []string{"late.>"}}}
	// One write: both commands are handled in one turn, before the flush
	// that would acknowledge the sub.
	auth := mustJSON(t, map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", narrow)})
	r.write(append(maskedFrame(true, 0x1, []byte(`{"op":"sub","id":"s1","subject":"pending.x"}`)), maskedFrame(true, 0x1, auth)...))
	r.sendText(`{"op":"sub","id":"s2","subject":"late.fresh"}`)
	var seen []string
	for {
		f := r.recvFrame()
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
	ns := startNATS(t, false)
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
	ns := startNATS(t, false)
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
		tok := hsToken(t, claimsFor("alice", time.Now().Add(time.Second), allowAll()))
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
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	oldExp := time.Now().Add(2 * time.Second)
	r := rawDial(t, b.Addr, "/ws?token="+hsToken(t, claimsFor("alice", oldExp, allowAll())))
	r.expectText(`{"op":"hello"`)
	r.sendText(string(mustJSON(t, map[string]any{"op": "auth", "id": "a1", "token": userToken(t, "alice", allowAll())})))
	r.expectText(`{"op":"ok","ref":"a1"}`)
	// Waiting for the old exp to pass is the point of the test.
	if !r.quietUntil(time.Unix(oldExp.Unix(), 0).Add(1500 * time.Millisecond)) {
		t.Fatalf("got a frame before the deadline: %s", r.recvFrame().raw)
	}
	r.sendText(`{"op":"ping","id":"after"}`)
	r.expectText(`{"op":"pong","ref":"after"}`)
}

// recvFrame reads one text frame and decodes it.
func (r *rawConn) recvFrame() frame {
	r.t.Helper()
	op, p := r.readFrame()
	if op != 0x1 {
		r.t.Fatalf("got opcode %d %q, want a text frame", op, p)
	}
	var f frame
	if err := json.Unmarshal(p, &f); err != nil {
		r.t.Fatalf("invalid JSON %q: %v", p, err)
	}
	f.raw = p
	return f
}

// quietUntil reports whether nothing arrives before deadline.
func (r *rawConn) quietUntil(deadline time.Time) bool {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(deadline)
	_, err := r.br.Peek(1)
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// --- Permissions ------------------------------------------------------

// echoService answers requests on subject with their data.
func echoService(t *testing.T, ns *natsserver.Server, subject string) {
	t.Helper()
	svc := natsClient(t, ns)
	if _, err := svc.Subscribe(subject, func(m *natsMsg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// opCase is one command and the answer it must get: "ok", "reply" or an
// err code.
type opCase struct {
	name, cmd, want string
}

func runOps(t *testing.T, c *wsClient, cases []opCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "c" + itoa(i)
			cmd := strings.Replace(tc.cmd, `"id":"?"`, `"id":"`+id+`"`, 1)
			c.send(cmd)
			f := c.recv()
			switch {
			case f.Ref != id:
				t.Fatalf("got %s, want ref %s", f.raw, id)
			case tc.want == "ok" || tc.want == "reply":
				if f.Op != tc.want {
					t.Fatalf("%s: got %s, want %s", cmd, f.raw, tc.want)
				}
			case f.Op != "err" || f.Code != tc.want:
				t.Fatalf("%s: got %s, want err %s", cmd, f.raw, tc.want)
			}
		})
	}
}

func TestPermissionMatrix(t *testing.T) {
	ns := startNATS(t, false)
	echoService(t, ns, "svc.echo")
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{"orders.eu.>", "svc.>", "public.*"}, Deny: []string{"orders.eu.secret"}},
		Sub: permDir{Allow: []string{"orders.eu.>", "news.*", "jobs.>"}, Deny: []string{"orders.eu.secret.>"}},
	}))
	runOps(t, c, []opCase{
		{"pub allowed", `{"op":"pub","id":"?","subject":"orders.eu.new","data":1}`, "ok"},
		{"pub deeper allowed", `{"op":"pub","id":"?","subject":"orders.eu.new.x","data":1}`, "ok"},
		{"pub other region", `{"op":"pub","id":"?","subject":"orders.us.new","data":1}`, "permission_denied"},
		{"pub prefix only", `{"op":"pub","id":"?","subject":"orders.eu","data":1}`, "permission_denied"},
		{"pub denied", `{"op":"pub","id":"?","subject":"orders.eu.secret","data":1}`, "permission_denied"},
		{"pub star", `{"op":"pub","id":"?","subject":"public.x","data":1}`, "ok"},
		{"pub star too deep", `{"op":"pub","id":"?","subject":"public.x.y","data":1}`, "permission_denied"},
		{"req allowed", `{"op":"req","id":"?","subject":"svc.echo","data":1}`, "reply"},
		{"req allowed no responders", `{"op":"req","id":"?","subject":"public.nobody","data":1}`, "no_responders"},
		{"req refused", `{"op":"req","id":"?","subject":"orders.us.x","data":1}`, "permission_denied"},
		{"req denied", `{"op":"req","id":"?","subject":"orders.eu.secret","data":1}`, "permission_denied"},
		{"sub allowed", `{"op":"sub","id":"?","subject":"orders.eu.new.>"}`, "ok"},
		{"sub overlapping deny gt", `{"op":"sub","id":"?","subject":"orders.eu.>"}`, "permission_denied"},
		{"sub allowed star", `{"op":"sub","id":"?","subject":"orders.eu.*"}`, "ok"},
		{"sub wider", `{"op":"sub","id":"?","subject":"orders.>"}`, "permission_denied"},
		{"sub denied", `{"op":"sub","id":"?","subject":"orders.eu.secret.x"}`, "permission_denied"},
		{"sub overlapping deny", `{"op":"sub","id":"?","subject":"orders.eu.secret.*"}`, "permission_denied"},
		{"sub news star", `{"op":"sub","id":"?","subject":"news.*"}`, "ok"},
		{"sub news gt", `{"op":"sub","id":"?","subject":"news.>"}`, "permission_denied"},
		{"sub not subscribable pub subject", `{"op":"sub","id":"?","subject":"svc.echo"}`, "permission_denied"},
		{"queue sub allowed", `{"op":"sub","id":"?","subject":"jobs.work","queue":"workers"}`, "ok"},
		{"queue sub refused", `{"op":"sub","id":"?","subject":"orders.us.x","queue":"workers"}`, "permission_denied"},
		{"sub all", `{"op":"sub","id":"?","subject":">"}`, "permission_denied"},
	})
}

func TestPermissionRawHandshake(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	tok := userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{"in.>"}, Deny: []string{"in.secret"}},
		Sub: permDir{Allow: []string{"out.>"}},
	})
	svc := natsClient(t, ns)
	cases := []struct {
		name, query string
		want        int
	}{
		{"sub and pub allowed", "sub=out.x&pub=in.x", http.StatusSwitchingProtocols},
		{"sub wildcard allowed", "sub=out.>", http.StatusSwitchingProtocols},
		{"queue allowed", "sub=out.x&queue=q", http.StatusSwitchingProtocols},
		{"sub refused", "sub=in.x", http.StatusForbidden},
		{"sub wider refused", "sub=>", http.StatusForbidden},
		{"pub refused", "pub=out.x", http.StatusForbidden},
		{"pub denied", "sub=out.x&pub=in.secret", http.StatusForbidden},
		{"reserved sub", "sub=$SYS.>", http.StatusForbidden},
		{"reserved pub", "pub=_INBOX.x", http.StatusForbidden},
		{"invalid sub", "sub=out..x", http.StatusBadRequest},
		{"wildcard pub", "pub=in.*", http.StatusBadRequest},
		{"neither", "", http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			for _, kv := range strings.Split(tc.query, "&") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					q.Set(k, v)
				}
			}
			q.Set("token", tok)
			u := "ws://" + b.Addr + "/ws/raw?" + q.Encode()
			if tc.want == http.StatusSwitchingProtocols {
				c, resp, body := handshake(t, u, nil)
				if c == nil {
					t.Fatalf("refused %d %q", resp.StatusCode, body)
				}
				// Every accepted case subscribes: prove it is live.
				sub := q.Get("sub")
				eventually(t, "the raw subscription", func() bool { return natsSubsOf(t, ns, sub) > 0 })
				if err := svc.Publish("out.x", []byte("raw")); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := ctxWait()
				defer cancel()
				if _, p, err := c.Read(ctx); err != nil || string(p) != "raw" {
					t.Fatalf("raw delivery: %q %v", p, err)
				}
				return
			}
			expectRefused(t, u, nil, tc.want, tok)
		})
	}
	t.Run("allowed raw connection carries messages", func(t *testing.T) {
		in := make(chan *natsMsg, 1)
		if _, err := svc.ChanSubscribe("in.x", in); err != nil {
			t.Fatal(err)
		}
		if err := svc.Flush(); err != nil {
			t.Fatal(err)
		}
		c, _, _ := handshake(t, "ws://"+b.Addr+"/ws/raw?pub=in.x&token="+tok, nil)
		if c == nil {
			t.Fatal("refused")
		}
		ctx, cancel := ctxWait()
		defer cancel()
		if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-in:
			if string(m.Data) != "hi" {
				t.Fatalf("got %q", m.Data)
			}
		case <-ctx.Done():
			t.Fatal("nothing published")
		}
	})
}

func TestPermissionDenyWins(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{">"}, Deny: []string{"secret.>"}},
		Sub: permDir{Allow: []string{">"}, Deny: []string{"secret.>"}},
	}))
	runOps(t, c, []opCase{
		{"pub open", `{"op":"pub","id":"?","subject":"open.x","data":1}`, "ok"},
		{"pub denied", `{"op":"pub","id":"?","subject":"secret.x","data":1}`, "permission_denied"},
		{"req denied", `{"op":"req","id":"?","subject":"secret.x","data":1}`, "permission_denied"},
		{"sub open", `{"op":"sub","id":"?","subject":"open.>"}`, "ok"},
		{"sub denied", `{"op":"sub","id":"?","subject":"secret.x"}`, "permission_denied"},
		{"sub gt overlaps deny", `{"op":"sub","id":"?","subject":">"}`, "permission_denied"},
		{"sub star overlaps deny", `{"op":"sub","id":"?","subject":"*.x"}`, "permission_denied"},
		{"queue sub denied", `{"op":"sub","id":"?","subject":"secret.q","queue":"g"}`, "permission_denied"},
	})
}

func TestPermissionMissingAllowListAllowsNothing(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	ops := []opCase{
		{"pub", `{"op":"pub","id":"?","subject":"a.b","data":1}`, "permission_denied"},
		{"req", `{"op":"req","id":"?","subject":"a.b","data":1}`, "permission_denied"},
		{"sub", `{"op":"sub","id":"?","subject":"a.b"}`, "permission_denied"},
		{"queue sub", `{"op":"sub","id":"?","subject":"a.b","queue":"q"}`, "permission_denied"},
	}
	for _, tc := range []struct {
		name string
		p    *perms
	}{
		{"no nats claim", nil},
		{"deny only", &perms{Pub: permDir{Deny: []string{"x"}}, Sub: permDir{Deny: []string{"x"}}}},
		{"empty directions", &perms{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runOps(t, connectAs(t, b.Addr, userToken(t, "alice", tc.p)), ops)
		})
	}
}

func TestPermissionNarrowerAllowRefusesWider(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", &perms{
		Pub: permDir{Allow: []string{"orders.eu.>"}},
		Sub: permDir{Allow: []string{"orders.eu.>"}},
	}))
	runOps(t, c, []opCase{
		{"sub orders.>", `{"op":"sub","id":"?","subject":"orders.>"}`, "permission_denied"},
		{"sub orders.*", `{"op":"sub","id":"?","subject":"orders.*"}`, "permission_denied"},
		{"sub orders.*.x", `{"op":"sub","id":"?","subject":"orders.*.x"}`, "permission_denied"},
		{"sub orders.eu", `{"op":"sub","id":"?","subject":"orders.eu"}`, "permission_denied"},
		{"pub orders.x", `{"op":"pub","id":"?","subject":"orders.x","data":1}`, "permission_denied"},
		{"sub orders.eu.>", `{"op":"sub","id":"?","subject":"orders.eu.>"}`, "ok"},
		{"pub orders.eu.x", `{"op":"pub","id":"?","subject":"orders.eu.x","data":1}`, "ok"},
	})
}

func TestPermissionSubSubstitution(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	p := &perms{Pub: permDir{Allow: []string{"users.{sub}.>"}}, Sub: permDir{Allow: []string{"users.{sub}.>"}}}
	c := connectAs(t, b.Addr, userToken(t, "alice", p))
	runOps(t, c, []opCase{
		{"pub own", `{"op":"pub","id":"?","subject":"users.alice.x","data":1}`, "ok"},
		{"pub other", `{"op":"pub","id":"?","subject":"users.bob.x","data":1}`, "permission_denied"},
		{"pub literal placeholder", `{"op":"pub","id":"?","subject":"users.{sub}.x","data":1}`, "permission_denied"},
		{"sub own", `{"op":"sub","id":"?","subject":"users.alice.>"}`, "ok"},
		{"sub other", `{"op":"sub","id":"?","subject":"users.bob.x"}`, "permission_denied"},
		{"sub everyone", `{"op":"sub","id":"?","subject":"users.*.x"}`, "permission_denied"},
		{"sub all users", `{"op":"sub","id":"?","subject":"users.>"}`, "permission_denied"},
	})
}

func TestPermissionSubInjectionRefused(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	p := &perms{Pub: permDir{Allow: []string{"users.{sub}.>"}}, Sub: permDir{Allow: []string{"users.{sub}.>"}}}
	for _, sub := range []string{"a.b", "*", ">", "a b", "", "a\tb", "x.>"} {
		t.Run(strings.NewReplacer(" ", "_space_", "\t", "_tab_").Replace(sub)+"_", func(t *testing.T) {
			tok := userToken(t, sub, p)
			expectRefused(t, "ws://"+b.Addr+"/ws", bearer(tok), http.StatusUnauthorized, tok)
		})
	}
}

func TestPermissionReservedSubjects(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, nil)
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	runOps(t, c, []opCase{
		{"pub $SYS", `{"op":"pub","id":"?","subject":"$SYS.REQ.SERVER.PING","data":1}`, "permission_denied"},
		{"pub $JS", `{"op":"pub","id":"?","subject":"$JS.API.INFO","data":1}`, "permission_denied"},
		{"pub _INBOX", `{"op":"pub","id":"?","subject":"_INBOX.abc.def","data":1}`, "permission_denied"},
		{"req $JS", `{"op":"req","id":"?","subject":"$JS.API.INFO","data":1}`, "permission_denied"},
		{"req _INBOX", `{"op":"req","id":"?","subject":"_INBOX.abc","data":1}`, "permission_denied"},
		{"sub $SYS", `{"op":"sub","id":"?","subject":"$SYS.>"}`, "permission_denied"},
		{"sub $KV", `{"op":"sub","id":"?","subject":"$KV.bucket.*"}`, "permission_denied"},
		{"sub _INBOX", `{"op":"sub","id":"?","subject":"_INBOX.>"}`, "permission_denied"},
		{"queue sub _INBOX", `{"op":"sub","id":"?","subject":"_INBOX.x","queue":"q"}`, "permission_denied"},
		{"pub ordinary", `{"op":"pub","id":"?","subject":"ordinary","data":1}`, "ok"},
	})
}

func TestPermissionWildcardSnoopersSeeNoRepliesOrSystemTraffic(t *testing.T) {
	ns := startNATS(t, false)
	echoService(t, ns, "svc.echo")
	b := authBridge(t, ns, hsConfig(), nil, nil)
	svc := natsClient(t, ns)
	snoop := connectAs(t, b.Addr, userToken(t, "mallory", allowAll()))
	snoop.subscribe("all", ">", "")
	snoop2 := connectAs(t, b.Addr, userToken(t, "mallory", allowAll()))
	snoop2.subscribe("all", "*.>", "")

	victim := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	victim.send(`{"op":"req","id":"r","subject":"svc.echo","data":"secret-reply"}`)
	if f := victim.expect("reply", "r"); string(f.Data) != `"secret-reply"` {
		t.Fatalf("got %s", f.raw)
	}
	for _, s := range []string{"$SYS.ACCOUNT.x", "$JS.API.INFO", "$KV.bucket.key", "_INBOX.abc.def"} {
		if err := svc.Publish(s, []byte(`"hidden"`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Publish("visible.end", []byte(`"end"`)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*wsClient{">": snoop, "*.>": snoop2} {
		for {
			f := s.expect("msg", "")
			if strings.HasPrefix(f.Subject, "_INBOX") || strings.HasPrefix(f.Subject, "$") {
				t.Fatalf("%s snooper got reserved traffic: %s", name, f.raw)
			}
			if f.Subject == "svc.echo" {
				continue // the request itself is ordinary traffic
			}
			if f.Subject != "visible.end" {
				t.Fatalf("%s snooper got %s", name, f.raw)
			}
			break
		}
	}
}

// --- Origin -----------------------------------------------------------

func TestOriginPolicy(t *testing.T) {
	ns := startNATS(t, false)
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

// --- Limits -----------------------------------------------------------

// dialFrom dials u from the local address ip.
func dialFrom(ip string) *websocket.DialOptions {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: wait}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
}

func TestLimitMaxConnections(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.MaxConnections = 3 })
	ws := "ws://" + b.Addr + "/ws"
	var open []*wsClient
	for range 3 {
		open = append(open, mustConnect(t, ws, nil))
	}
	expectRefused(t, ws, nil, http.StatusServiceUnavailable, "")
	if got := b.Stats().Refusals[http.StatusServiceUnavailable]; got != 1 {
		t.Fatalf("Refusals[503] = %d, want 1", got)
	}
	open[0].c.Close(websocket.StatusNormalClosure, "bye")
	eventually(t, "a slot to free", func() bool { return tryConnect(t, ws, nil) })
}

func TestLimitMaxConnectionsPerIP(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.MaxConnectionsPerIP = 2 })
	ws := "ws://" + b.Addr + "/ws"
	first := mustConnect(t, ws, dialFrom("127.0.0.1"))
	mustConnect(t, ws, dialFrom("127.0.0.1"))
	expectRefused(t, ws, dialFrom("127.0.0.1"), http.StatusTooManyRequests, "")
	other := mustConnect(t, ws, dialFrom("127.0.0.2"))
	other.send(`{"op":"ping","id":"p"}`)
	other.expect("pong", "p")
	if got := b.Stats().Refusals[http.StatusTooManyRequests]; got != 1 {
		t.Fatalf("Refusals[429] = %d, want 1", got)
	}
	first.c.Close(websocket.StatusNormalClosure, "bye")
	eventually(t, "the address's slot to free", func() bool { return tryConnect(t, ws, dialFrom("127.0.0.1")) })
}

func TestLimitMaxSubscriptions(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.MaxSubscriptions = 2 })
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.subscribe("s1", "a", "")
	c.subscribe("s2", "b", "q")
	c.send(`{"op":"sub","id":"s3","subject":"c"}`)
	c.expectErr("s3", "too_many_subscriptions")
	c.send(`{"op":"unsub","id":"s1"}`)
	c.expect("ok", "s1")
	c.subscribe("s3", "c", "")
}

func TestRateLimitBurstGetsErrors(t *testing.T) {
	ns := startNATS(t, false)
	svc := natsClient(t, ns)
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.RateLimit, c.RateBurst = 5, 5 })
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	c.subscribe("s", "rl.x", "") // takes one token
	for i := range 20 {
		c.send(map[string]any{"op": "ping", "id": "p" + itoa(i)})
	}
	pongs, limited := 0, 0
	for range 20 {
		f := c.recv()
		switch {
		case f.Op == "pong":
			pongs++
		case f.Op == "err" && f.Code == "rate_limited" && f.Ref == "" && f.Message != "":
			limited++
		default:
			t.Fatalf("got %s", f.raw)
		}
	}
	if pongs != 4 || limited != 16 {
		t.Fatalf("%d pongs and %d rate_limited, want 4 and 16", pongs, limited)
	}
	// Outbound traffic is not limited and the connection is still open.
	if err := svc.Publish("rl.x", []byte(`"after"`)); err != nil {
		t.Fatal(err)
	}
	f, err := c.tryRecv(wait)
	if err != nil {
		t.Fatalf("connection closed after a burst of 20: %v", err)
	}
	if f.Op != "msg" || f.Subject != "rl.x" {
		t.Fatalf("got %s", f.raw)
	}
}

func TestRateLimitFloodCloses1008(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), nil, func(c *bridge.Config) { c.RateLimit, c.RateBurst = 5, 5 })
	c := connectAs(t, b.Addr, userToken(t, "alice", allowAll()))
	ctx, cancel := ctxWait()
	defer cancel()
	for i := range 200 {
		if err := c.c.Write(ctx, websocket.MessageText, []byte(`{"op":"ping","id":"p`+itoa(i)+`"}`)); err != nil {
			break // the bridge already closed us
		}
	}
	if code, reason := c.closeStatus(); code != websocket.StatusPolicyViolation || !strings.Contains(reason, "rate") {
		t.Fatalf("close %d %q, want 1008 rate limit", code, reason)
	}
	eventually(t, "the close to be counted", func() bool { return b.Stats().Closes[1008] >= 1 })
}

func TestLimitStatsCountRefusals(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, hsConfig(), []string{"https://app.example.com"}, func(c *bridge.Config) { c.MaxConnectionsPerIP = 1 })
	ws := "ws://" + b.Addr + "/ws"
	tok := userToken(t, "alice", &perms{Pub: permDir{Allow: []string{"a"}}, Sub: permDir{Allow: []string{"a"}}})
	expectRefused(t, ws, nil, http.StatusUnauthorized, "")
	expectRefused(t, ws, bearer("garbage"), http.StatusUnauthorized, "")
	expectRefused(t, ws, withHeader("Origin", "https://evil.test", "Authorization", "Bearer "+tok), http.StatusForbidden, tok)
	expectRefused(t, "ws://"+b.Addr+"/ws/raw?sub=b&token="+tok, nil, http.StatusForbidden, tok)
	expectRefused(t, "ws://"+b.Addr+"/ws/raw?sub=a..b&token="+tok, nil, http.StatusBadRequest, tok)
	connectAs(t, b.Addr, tok)
	expectRefused(t, ws, bearer(tok), http.StatusTooManyRequests, tok)
	want := map[int]uint64{400: 1, 401: 2, 403: 2, 429: 1}
	got := b.Stats().Refusals
	if len(got) != len(want) {
		t.Fatalf("Refusals = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Refusals = %v, want %v", got, want)
		}
	}
	if s := b.Stats(); s.Connections != 1 {
		t.Fatalf("Connections = %d, want 1", s.Connections)
	}
}

// --- TLS --------------------------------------------------------------

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// its key to certFile and keyFile and returns the certificate.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "wsbridge test " + serial.String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// tlsBridge serves wss:// with a self-signed certificate; it returns the
// bridge, the reloader and the certificate's files.
func tlsBridge(t *testing.T, ns *natsserver.Server) (*testBridge, *bridge.CertReloader, *x509.Certificate, [2]string) {
	t.Helper()
	dir := t.TempDir()
	files := [2]string{filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	cert := writeSelfSigned(t, files[0], files[1])
	r, err := bridge.NewCertReloader(files[0], files[1])
	if err != nil {
		t.Fatal(err)
	}
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.TLS = r.TLSConfig() })
	return b, r, cert, files
}

// trusting is an HTTP client that trusts only certs.
func trusting(certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestTLSRoundTrip(t *testing.T) {
	ns := startNATS(t, false)
	b, _, cert, _ := tlsBridge(t, ns)
	svc := natsClient(t, ns)
	c := mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(cert)})
	c.subscribe("s", "tls.out", "")
	in := make(chan *natsMsg, 4096)
	if _, err := svc.ChanSubscribe("tls.in", in); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	recvIn := func(t *testing.T) *natsMsg {
		t.Helper()
		select {
		case m := <-in:
			return m
		case <-time.After(wait):
			t.Fatal("the service got nothing")
			return nil
		}
	}

	big := make([]byte, 100<<10) // several TLS records
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	t.Run("100 KB to the client", func(t *testing.T) {
		if err := svc.Publish("tls.out", big); err != nil {
			t.Fatal(err)
		}
		f := c.expect("msg", "")
		if f.B64 == nil {
			t.Fatalf("want b64 payload, got %.200s", f.raw)
		}
		if got, err := base64.StdEncoding.DecodeString(*f.B64); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("payload differs (%d bytes, %v)", len(got), err)
		}
	})
	t.Run("100 KB from the client", func(t *testing.T) {
		c.send(map[string]any{"op": "pub", "id": "big", "subject": "tls.in", "b64": base64.StdEncoding.EncodeToString(big)})
		c.expect("ok", "big")
		if m := recvIn(t); !bytes.Equal(m.Data, big) {
			t.Fatalf("service got %d bytes, want %d", len(m.Data), len(big))
		}
	})
	const n = 2000
	t.Run("many small to the client", func(t *testing.T) {
		for i := range n {
			if err := svc.Publish("tls.out", []byte(itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			if f := c.expect("msg", ""); string(f.Data) != itoa(i) {
				t.Fatalf("message %d: got %s", i, f.raw)
			}
		}
	})
	t.Run("many small from the client", func(t *testing.T) {
		for i := range n {
			c.send(`{"op":"pub","subject":"tls.in","data":` + itoa(i) + `}`)
		}
		for i := range n {
			if m := recvIn(t); string(m.Data) != itoa(i) {
				t.Fatalf("message %d: got %q", i, m.Data)
			}
		}
		c.send(`{"op":"ping","id":"end"}`)
		c.expect("pong", "end")
	})
	t.Run("both directions at once", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			for i := range n {
				if err := svc.Publish("tls.out", []byte(itoa(i))); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		for i := range n {
			c.send(`{"op":"pub","subject":"tls.in","data":` + itoa(i) + `}`)
		}
		for i := range n {
			if f := c.expect("msg", ""); string(f.Data) != itoa(i) {
				t.Fatalf("message %d: got %s", i, f.raw)
			}
		}
		for i := range n {
			if m := recvIn(t); string(m.Data) != itoa(i) {
				t.Fatalf("message %d: got %q", i, m.Data)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("clean close", func(t *testing.T) {
		if err := c.c.Close(websocket.StatusNormalClosure, "done"); err != nil {
			t.Fatalf("close handshake over TLS: %v", err)
		}
	})
}

func TestTLSHealthz(t *testing.T) {
	ns := startNATS(t, false)
	b, _, cert, _ := tlsBridge(t, ns)
	resp, err := trusting(cert).Get("https://" + b.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over TLS = %d", resp.StatusCode)
	}
	t.Run("plain HTTP is not served", func(t *testing.T) {
		_, err := (&http.Client{Timeout: wait}).Get("http://" + b.Addr + "/healthz")
		if err == nil {
			t.Fatal("plain http:// worked on a TLS listener")
		}
	})
}

func TestTLSCertReload(t *testing.T) {
	ns := startNATS(t, false)
	b, r, oldCert, files := tlsBridge(t, ns)
	served := func() *x509.Certificate {
		t.Helper()
		tc, err := tls.Dial("tcp", b.Addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		return tc.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(oldCert) {
		t.Fatal("not serving the initial certificate")
	}
	open := mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(oldCert)})

	newCert := writeSelfSigned(t, files[0], files[1])
	if !served().Equal(oldCert) {
		t.Fatal("the new certificate was served before Reload")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if !served().Equal(newCert) {
		t.Fatal("Reload did not switch certificates")
	}
	mustConnect(t, "wss://"+b.Addr+"/ws", &websocket.DialOptions{HTTPClient: trusting(newCert)})
	open.send(`{"op":"ping","id":"old"}`)
	open.expect("pong", "old") // established connections are unaffected

	t.Run("a broken pair keeps the old certificate", func(t *testing.T) {
		if err := os.WriteFile(files[1], []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.Reload(); err == nil {
			t.Fatal("Reload accepted a broken key")
		}
		if !served().Equal(newCert) {
			t.Fatal("a failed Reload changed the certificate")
		}
	})
}

// A Shutdown right after the 101 (what happens at the end of any test
// whose last step is a handshake) must find every registered connection
// fully prepared: no race between registration and the poller.
func TestAuthShutdownRightAfterHandshake(t *testing.T) {
	ns := startNATS(t, false)
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

// A client that sends a message and closes the socket at once must give
// its slot back promptly: epoll is edge-triggered, so the data and the FIN
// can come as one event.
func TestLimitSlotFreedWhenClientSendsAndQuits(t *testing.T) {
	ns := startNATS(t, false)
	b := authBridge(t, ns, auth.Config{}, nil, func(c *bridge.Config) { c.MaxConnectionsPerIP = 1 })
	r := rawDial(t, b.Addr, "/ws")
	r.expectText(`{"op":"hello"`)
	r.write(maskedFrame(true, 0x1, []byte(`{"op":"pub","subject":"bye","data":1}`)))
	_ = r.nc.Close()
	deadline := time.Now().Add(2 * time.Second)
	for b.Stats().Connections != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that sent its last message and hung up still holds its connection and slot")
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, as eventually does
	}
	mustConnect(t, "ws://"+b.Addr+"/ws", nil)
}
