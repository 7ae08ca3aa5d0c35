package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestMain fails the run if a test leaves goroutines behind; the package
// starts none. The fuzzing engine keeps its own goroutines, so fuzz runs are
// not checked.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !fuzzing() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
		}
		if n := runtime.NumGoroutine(); n > before {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before, %d after\n", before, n)
			code = 1
		}
	}
	os.Exit(code)
}

func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// testKeys are generated once per process: RSA generation is slow.
type testKeyPairs struct {
	rsa, rsa2     *rsa.PrivateKey
	ec256, ec384  *ecdsa.PrivateKey
	ec521         *ecdsa.PrivateKey
	ec256b        *ecdsa.PrivateKey
	ec384b        *ecdsa.PrivateKey
	ec521b        *ecdsa.PrivateKey
	ed, ed2       ed25519.PrivateKey
	secret, other []byte
}

var testKeys = sync.OnceValue(func() *testKeyPairs {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeyPairs{secret: []byte("s3cret-s3cret-s3cret-s3cret-s3cret"), other: []byte("another-secret-another-secret-xx")}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec256b, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.ec384b, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.ec521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	k.ec521b, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	_, k.ed2, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// sign returns a compact JWT; kid is omitted when empty.
func sign(tb testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// unsigned crafts an "alg":"none" token by hand, as an attacker would.
func unsigned(tb testing.TB, header string, c jwt.MapClaims) string {
	tb.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc(payload) + "."
}

// writeFile writes data to a fresh file in t.TempDir and returns its path.
func writeFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// pemPublic encodes pub as a PKIX "PUBLIC KEY" block.
func pemPublic(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// pemCert encodes a self-signed certificate for priv.
func pemCert(tb testing.TB, priv crypto.Signer) []byte {
	tb.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// jwkOf returns the JWK for a public key or HMAC secret.
func jwkOf(tb testing.TB, kid string, pub any) map[string]string {
	tb.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	switch p := pub.(type) {
	case []byte:
		return map[string]string{"kty": "oct", "kid": kid, "k": enc(p)}
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "n": enc(p.N.Bytes()), "e": enc(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			tb.Fatal(err)
		}
		size := (len(b) - 1) / 2
		return map[string]string{"kty": "EC", "kid": kid, "crv": p.Curve.Params().Name, "x": enc(b[1 : 1+size]), "y": enc(b[1+size:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": enc(p)}
	}
	tb.Fatalf("jwkOf: unsupported %T", pub)
	return nil
}

// jwks encodes a JWK set.
func jwks(tb testing.TB, keys ...map[string]string) []byte {
	tb.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newVerifier is New that fails the test on error.
func newVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	v, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// clientReasons are every error Verify may return.
var clientReasons = []error{
	ErrExpired, errMissingToken, errMalformed, errSignature, errUnknownKID,
	errMissingExp, errNotYetValid, errIssuer, errAudience, errInvalidSubject,
	errInvalidPermissions, errInvalidToken,
}

// checkReason fails unless err is one of the client reasons and its text
// neither contains the token nor exceeds a short line.
func checkReason(tb testing.TB, err error, token string) {
	tb.Helper()
	known := false
	for _, r := range clientReasons {
		if err == r {
			known = true
		}
	}
	msg := err.Error()
	if !known {
		tb.Fatalf("unexpected error %q", msg)
	}
	if len(msg) > 40 {
		tb.Errorf("reason %q is too long", msg)
	}
	if len(token) >= 16 && strings.Contains(msg, token) {
		tb.Errorf("reason %q leaks the token", msg)
	}
}
