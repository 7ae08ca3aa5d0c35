package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
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

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
