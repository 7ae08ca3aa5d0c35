package integration

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"wsbridge/internal/testutil"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSRotationOnSIGHUP: the real binary re-reads its JWKS file on
// SIGHUP; tokens signed with the removed key stop working, tokens signed
// with the new one start, and a broken file keeps the keys in use.
func TestJWKSRotationOnSIGHUP(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	keyA, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubB, keyB, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwks, jwkOf(t, "A", &keyA.PublicKey))
	p := startProcess(t,
		"BRIDGE_NATS_URL="+ns.ClientURL(),
		"BRIDGE_AUTH_MODE=jwt",
		"BRIDGE_JWT_JWKS="+jwks,
		"BRIDGE_LOG_LEVEL=debug")
	claims := claimsFor("alice", time.Now().Add(time.Hour), allowAll())
	tokA := jwtSign(t, jwt.SigningMethodES256, keyA, "A", claims)
	tokB := jwtSign(t, jwt.SigningMethodEdDSA, keyB, "B", claims)
	ws := "ws://" + p.addr + "/ws"
	status := func(tok string) int {
		t.Helper()
		c, resp, _ := handshake(t, ws, bearer(tok))
		if c != nil {
			c.Close(websocket.StatusNormalClosure, "")
		}
		return resp.StatusCode
	}

	c := connectAs(t, p.addr, tokA)
	if got := status(tokB); got != http.StatusUnauthorized {
		t.Fatalf("kid B before rotation: %d, want 401", got)
	}

	writeJWKS(t, jwks, jwkOf(t, "B", pubB))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "a kid-B token to connect", func() bool { return status(tokB) == http.StatusSwitchingProtocols })
	if got := status(tokA); got != http.StatusUnauthorized {
		t.Fatalf("kid A after rotation: %d, want 401", got)
	}
	// Connections made with the old key stay up until their token expires.
	c.send(`{"op":"ping","id":"p"}`)
	c.expect("pong", "p")

	t.Run("a broken file keeps the keys", func(t *testing.T) {
		if err := os.WriteFile(jwks, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the failed reload to be logged", func() bool {
			return strings.Contains(p.logs.String(), "keeping the old JWT keys")
		})
		if got := status(tokB); got != http.StatusSwitchingProtocols {
			t.Fatalf("kid B after a failed reload: %d, want 101", got)
		}
	})
	t.Run("logs never contain a token", func(t *testing.T) {
		for _, tok := range []string{tokA, tokB} {
			if strings.Contains(p.logs.String(), tok) {
				t.Fatalf("logs contain a token:\n%s", p.logs)
			}
		}
	})
}
