package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsbridge/auth"
)

// clearBridgeEnv unsets every BRIDGE_ variable for the test.
func clearBridgeEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "BRIDGE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// writePEM writes a PEM block to a file in a temporary directory.
func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), strings.ReplaceAll(strings.ToLower(typ), " ", "-")+".pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runToken is wsbridge token args: the token, the URL and the error.
func runToken(t *testing.T, args ...string) (token, link string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"token"}, args...), &out, &errOut, nil)
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q, want the token and the URL", out.String())
	}
	if !strings.Contains(errOut.String(), "expires") {
		t.Errorf("stderr %q, want a summary", errOut.String())
	}
	return lines[0], lines[1], nil
}

// TestTokenSecret: a token minted for BRIDGE_JWT_SECRET verifies with
// auth under the same settings and carries the permissions asked for.
func TestTokenSecret(t *testing.T) {
	clearBridgeEnv(t)
	t.Setenv("BRIDGE_AUTH_MODE", "jwt")
	t.Setenv("BRIDGE_JWT_SECRET", "dev-secret")
	t.Setenv("BRIDGE_JWT_ISSUER", "wsbridge-dev")
	t.Setenv("BRIDGE_JWT_AUDIENCE", "browsers")
	t.Setenv("BRIDGE_LISTEN", ":9123")
	tok, link, err := runToken(t, "-sub", "alice", "-pub-allow", "orders.>", "-pub-allow", "chat.{sub}",
		"-sub-allow", "orders.>,chat.*", "-sub-deny", "chat.secret", "-ttl", "2h")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(auth.Config{Mode: auth.ModeJWT, JWTSecret: "dev-secret", Issuer: "wsbridge-dev", Audience: "browsers"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("auth refuses the minted token: %v", err)
	}
	if id.Subject() != "alice" {
		t.Errorf("sub %q, want alice", id.Subject())
	}
	if left := time.Until(id.Expires()); left < 2*time.Hour-time.Minute || left > 2*time.Hour+time.Minute {
		t.Errorf("expires in %v, want about 2h", left)
	}
	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"pub orders.new", id.CanPublish("orders.new"), true},
		{"pub chat.alice", id.CanPublish("chat.alice"), true},
		{"pub chat.bob", id.CanPublish("chat.bob"), false},
		{"sub orders.>", id.CanSubscribe("orders.>"), true},
		{"sub chat.room", id.CanSubscribe("chat.room"), true},
		{"sub chat.secret", id.CanSubscribe("chat.secret"), false},
		{"sub other", id.CanSubscribe("other"), false},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "ws" || u.Host != "localhost:9123" || u.Path != "/ws" || u.Query().Get("token") != tok {
		t.Errorf("URL %q, want ws://localhost:9123/ws?token=<the token>", link)
	}
	other, _ := auth.New(auth.Config{Mode: auth.ModeJWT, JWTSecret: "another-secret"})
	if _, err := other.Verify(tok); err == nil {
		t.Error("another secret accepts the token")
	}
}

// TestTokenPrivateKey: with a public key configured, -key signs with its
// private half; a key that does not match, or none, is refused with a
// message saying what to pass.
func TestTokenPrivateKey(t *testing.T) {
	clearBridgeEnv(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	edPubDER, _ := x509.MarshalPKIXPublicKey(edPub)
	ecPrivFile, ecPubFile := writePEM(t, "EC PRIVATE KEY", ecDER), writePEM(t, "PUBLIC KEY", ecPub)
	edPrivFile, edPubFile := writePEM(t, "PRIVATE KEY", edDER), writePEM(t, "PUBLIC KEY", edPubDER)
	t.Setenv("BRIDGE_AUTH_MODE", "jwt")
	t.Setenv("BRIDGE_TLS_CERT", "") // wss only with TLS

	cases := []struct {
		name, pub, priv string
		ok              bool
		mention         string
	}{
		{"ECDSA", ecPubFile, ecPrivFile, true, ""},
		{"Ed25519 PKCS#8", edPubFile, edPrivFile, true, ""},
		{"no -key", ecPubFile, "", false, "-key"},
		{"wrong key", ecPubFile, edPrivFile, false, "private half"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("BRIDGE_JWT_PUBLIC_KEY", tc.pub)
			var args []string
			if tc.priv != "" {
				args = []string{"-key", tc.priv}
			}
			tok, _, err := runToken(t, args...)
			if !tc.ok {
				if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.mention) {
					t.Fatalf("err %v, want a usage error mentioning %s", err, tc.mention)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.New(auth.Config{Mode: auth.ModeJWT, JWTPublicKeyFile: tc.pub})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(tok); err != nil {
				t.Fatalf("auth refuses the minted token: %v", err)
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		mention string
	}{
		{"mode none", map[string]string{}, nil, "BRIDGE_AUTH_MODE"},
		{"bad pattern", map[string]string{"BRIDGE_AUTH_MODE": "jwt", "BRIDGE_JWT_SECRET": "s"}, []string{"-pub-allow", "a..b"}, "-pub-allow"},
		{"zero ttl", map[string]string{"BRIDGE_AUTH_MODE": "jwt", "BRIDGE_JWT_SECRET": "s"}, []string{"-ttl", "0s"}, "-ttl"},
		{"unknown flag", map[string]string{"BRIDGE_AUTH_MODE": "jwt", "BRIDGE_JWT_SECRET": "s"}, []string{"-user", "x"}, "-user"},
		{"stray argument", map[string]string{"BRIDGE_AUTH_MODE": "jwt", "BRIDGE_JWT_SECRET": "s"}, []string{"alice"}, "alice"},
		{"RSA alg for a secret", map[string]string{"BRIDGE_AUTH_MODE": "jwt", "BRIDGE_JWT_SECRET": "s"}, []string{"-alg", "RS256"}, "-alg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearBridgeEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, _, err := runToken(t, tc.args...)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err %v, want a usage error mentioning %s", err, tc.mention)
			}
		})
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-h"}, &out, &out, nil); err != nil || !strings.Contains(out.String(), "-sub-allow") {
		t.Fatalf("token -h: %v\n%s", err, out.String())
	}
}
