package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "wsbridge"
)

// claimsAt returns valid claims for alice, with edits applied; a nil value
// in edit deletes the claim.
func claimsAt(edit jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub": "alice",
		"iss": testIssuer,
		"aud": testAudience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"nats": map[string]any{
			"pub": map[string]any{"allow": []string{"orders.>"}},
			"sub": map[string]any{"allow": []string{"orders.>"}, "deny": []string{"orders.secret"}},
		},
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// keyKind is one way of configuring a Verifier, with a signer that fits
// it and one that does not.
type keyKind struct {
	name   string
	cfg    func(t *testing.T) Config
	method jwt.SigningMethod
	priv   any
	wrong  any // same algorithm, different key
}

func keyKinds() []keyKind {
	k := testKeys()
	pemFile := func(pub any) func(t *testing.T) Config {
		return func(t *testing.T) Config {
			return Config{JWTPublicKeyFile: writeFile(t, "key.pem", pemPublic(t, pub))}
		}
	}
	return []keyKind{
		{"HS256", func(*testing.T) Config { return Config{JWTSecret: string(k.secret)} }, jwt.SigningMethodHS256, k.secret, k.other},
		{"HS512", func(*testing.T) Config { return Config{JWTSecret: string(k.secret)} }, jwt.SigningMethodHS512, k.secret, k.other},
		{"RS256", pemFile(&k.rsa.PublicKey), jwt.SigningMethodRS256, k.rsa, k.rsa2},
		{"RS256/pkcs1", func(t *testing.T) Config {
			b := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
			return Config{JWTPublicKeyFile: writeFile(t, "key.pem", b)}
		}, jwt.SigningMethodRS256, k.rsa, k.rsa2},
		{"PS256", pemFile(&k.rsa.PublicKey), jwt.SigningMethodPS256, k.rsa, k.rsa2},
		{"ES256", pemFile(&k.ec256.PublicKey), jwt.SigningMethodES256, k.ec256, k.ec256b},
		{"ES256/cert", func(t *testing.T) Config {
			return Config{JWTPublicKeyFile: writeFile(t, "cert.pem", pemCert(t, k.ec256))}
		}, jwt.SigningMethodES256, k.ec256, k.ec256b},
		{"ES384", pemFile(&k.ec384.PublicKey), jwt.SigningMethodES384, k.ec384, k.ec384b},
		{"ES512", pemFile(&k.ec521.PublicKey), jwt.SigningMethodES512, k.ec521, k.ec521b},
		{"EdDSA", pemFile(k.ed.Public()), jwt.SigningMethodEdDSA, k.ed, k.ed2},
		{"EdDSA/cert", func(t *testing.T) Config {
			return Config{JWTPublicKeyFile: writeFile(t, "cert.pem", pemCert(t, k.ed))}
		}, jwt.SigningMethodEdDSA, k.ed, k.ed2},
		{"JWKS/RS256", func(t *testing.T) Config {
			return Config{JWKSFile: writeFile(t, "jwks.json", jwks(t, jwkOf(t, "only", &k.rsa.PublicKey)))}
		}, jwt.SigningMethodRS256, k.rsa, k.rsa2},
		{"JWKS/oct", func(t *testing.T) Config {
			return Config{JWKSFile: writeFile(t, "jwks.json", jwks(t, jwkOf(t, "only", k.secret)))}
		}, jwt.SigningMethodHS384, k.secret, k.other},
	}
}

// TestVerifyRules runs every token rule against every kind of key.
func TestVerifyRules(t *testing.T) {
	now := time.Now()
	for _, kk := range keyKinds() {
		t.Run(kk.name, func(t *testing.T) {
			cfg := kk.cfg(t)
			cfg.Mode = ModeJWT
			cfg.Issuer = testIssuer
			cfg.Audience = testAudience
			cfg.Leeway = 30 * time.Second
			v := newVerifier(t, cfg)
			good := func(edit jwt.MapClaims) string { return sign(t, kk.method, kk.priv, "", claimsAt(edit)) }
			tests := []struct {
				name  string
				token string
				want  error
			}{
				{"valid", good(nil), nil},
				{"expired", good(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()}), ErrExpired},
				{"expired within leeway", good(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()}), nil},
				{"not valid yet", good(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()}), errNotYetValid},
				{"nbf within leeway", good(jwt.MapClaims{"nbf": now.Add(10 * time.Second).Unix()}), nil},
				{"nbf passed", good(jwt.MapClaims{"nbf": now.Add(-time.Minute).Unix()}), nil},
				{"missing exp", good(jwt.MapClaims{"exp": nil}), errMissingExp},
				{"exp not a number", good(jwt.MapClaims{"exp": "tomorrow"}), errMalformed},
				{"wrong issuer", good(jwt.MapClaims{"iss": "https://evil.test"}), errIssuer},
				{"missing issuer", good(jwt.MapClaims{"iss": nil}), errIssuer},
				{"wrong audience", good(jwt.MapClaims{"aud": "other"}), errAudience},
				{"missing audience", good(jwt.MapClaims{"aud": nil}), errAudience},
				{"audience in list", good(jwt.MapClaims{"aud": []string{"other", testAudience}}), nil},
				{"expired beats wrong issuer", good(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix(), "iss": "x"}), ErrExpired},
				{"wrong key", sign(t, kk.method, kk.wrong, "", claimsAt(nil)), errSignature},
				{"tampered payload", tamper(t, good(nil)), errSignature},
				{"alg none", unsigned(t, `{"alg":"none","typ":"JWT"}`, claimsAt(nil)), errSignature},
				{"alg None", unsigned(t, `{"alg":"None","typ":"JWT"}`, claimsAt(nil)), errMalformed},
				{"alg none with signature", unsigned(t, `{"alg":"none"}`, claimsAt(nil)) + "c2ln", errSignature},
				{"missing token", "", errMissingToken},
				{"garbage", "not a token", errMalformed},
				{"three garbage segments", "a.b.c", errMalformed},
				{"too long", strings.Repeat("a", maxTokenLen+1), errMalformed},
				{"invalid permissions", good(jwt.MapClaims{"nats": map[string]any{"pub": map[string]any{"allow": []string{"a..b"}}}}), errInvalidPermissions},
				{"permissions wrong type", good(jwt.MapClaims{"nats": "all"}), errMalformed},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					id, err := v.Verify(tt.token)
					if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
						t.Fatalf("Verify = %v, want %v", err, tt.want)
					}
					if err != nil {
						checkReason(t, err, tt.token)
						return
					}
					if id.Subject() != "alice" {
						t.Errorf("Subject = %q, want alice", id.Subject())
					}
					if id.Expires().IsZero() {
						t.Error("Expires is zero")
					}
					if !id.CanPublish("orders.eu") || id.CanPublish("users.x") {
						t.Error("pub permissions not applied")
					}
					if !id.CanSubscribe("orders.eu.>") || id.CanSubscribe("orders.>") {
						t.Error("sub permissions not applied")
					}
				})
			}
		})
	}
}

// tamper swaps alice for mallory in the payload, keeping the signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	c := claimsAt(jwt.MapClaims{"sub": "mallory"})
	forged := unsigned(t, `{"alg":"HS256"}`, c)
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

// TestKeyConfusion checks that a token whose algorithm does not fit the
// configured key is refused, in particular HMAC signed with public key
// bytes.
func TestKeyConfusion(t *testing.T) {
	k := testKeys()
	rsaPEM := pemPublic(t, &k.rsa.PublicKey)
	ecPEM := pemPublic(t, &k.ec256.PublicKey)
	edPEM := pemPublic(t, k.ed.Public())
	both := jwks(t, jwkOf(t, "rsa", &k.rsa.PublicKey), jwkOf(t, "hmac", k.secret))
	claims := claimsAt(nil)
	tests := []struct {
		name  string
		cfg   Config
		token string
	}{
		{"HS256 with RSA PEM as secret", Config{JWTPublicKeyFile: writeFile(t, "rsa.pem", rsaPEM)}, sign(t, jwt.SigningMethodHS256, rsaPEM, "", claims)},
		{"HS512 with ECDSA PEM as secret", Config{JWTPublicKeyFile: writeFile(t, "ec.pem", ecPEM)}, sign(t, jwt.SigningMethodHS512, ecPEM, "", claims)},
		{"HS256 with Ed25519 PEM as secret", Config{JWTPublicKeyFile: writeFile(t, "ed.pem", edPEM)}, sign(t, jwt.SigningMethodHS256, edPEM, "", claims)},
		{"RS256 to HMAC secret", Config{JWTSecret: string(k.secret)}, sign(t, jwt.SigningMethodRS256, k.rsa, "", claims)},
		{"ES384 to P-256 key", Config{JWTPublicKeyFile: writeFile(t, "ec.pem", ecPEM)}, sign(t, jwt.SigningMethodES384, k.ec384, "", claims)},
		{"EdDSA to RSA key", Config{JWTPublicKeyFile: writeFile(t, "rsa.pem", rsaPEM)}, sign(t, jwt.SigningMethodEdDSA, k.ed, "", claims)},
		{"JWKS HS256 naming the RSA kid", Config{JWKSFile: writeFile(t, "jwks.json", both)}, sign(t, jwt.SigningMethodHS256, k.rsa.PublicKey.N.Bytes(), "rsa", claims)},
		{"JWKS RS256 naming the HMAC kid", Config{JWKSFile: writeFile(t, "jwks.json", both)}, sign(t, jwt.SigningMethodRS256, k.rsa, "hmac", claims)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Mode = ModeJWT
			_, err := newVerifier(t, tt.cfg).Verify(tt.token)
			if !errors.Is(err, errSignature) {
				t.Fatalf("Verify = %v, want %v", err, errSignature)
			}
		})
	}
}

// TestJWKSRotation rotates keys in a JWKS file and reloads it.
func TestJWKSRotation(t *testing.T) {
	k := testKeys()
	path := writeFile(t, "jwks.json", jwks(t, jwkOf(t, "r1", &k.rsa.PublicKey), jwkOf(t, "e1", &k.ec256.PublicKey)))
	v := newVerifier(t, Config{Mode: ModeJWT, JWKSFile: path})
	c := claimsAt(nil)
	r1 := sign(t, jwt.SigningMethodRS256, k.rsa, "r1", c)
	e1 := sign(t, jwt.SigningMethodES256, k.ec256, "e1", c)
	k2 := sign(t, jwt.SigningMethodEdDSA, k.ed, "k2", c)

	check := func(t *testing.T, cases map[string]error, tokens map[string]string) {
		t.Helper()
		for name, want := range cases {
			if _, err := v.Verify(tokens[name]); !errors.Is(err, want) || (err == nil) != (want == nil) {
				t.Errorf("%s: Verify = %v, want %v", name, err, want)
			}
		}
	}
	tokens := map[string]string{
		"r1":           r1,
		"r2":           sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", c),
		"e1":           e1,
		"k2":           k2,
		"no kid":       sign(t, jwt.SigningMethodRS256, k.rsa, "", c),
		"unknown kid":  sign(t, jwt.SigningMethodRS256, k.rsa, "zz", c),
		"other key e1": sign(t, jwt.SigningMethodES256, k.ec256b, "e1", c),
	}
	t.Run("before", func(t *testing.T) {
		check(t, map[string]error{
			"r1": nil, "e1": nil, "r2": errUnknownKID,
			"no kid": errUnknownKID, "unknown kid": errUnknownKID, "other key e1": errSignature,
			"k2": errSignature, // no key in the set accepts EdDSA
		}, tokens)
	})
	writeOver(t, path, jwks(t, jwkOf(t, "e1", &k.ec256.PublicKey), jwkOf(t, "r2", &k.rsa2.PublicKey)))
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	after := map[string]error{"r1": errUnknownKID, "r2": nil, "e1": nil}
	t.Run("after", func(t *testing.T) { check(t, after, tokens) })
	writeOver(t, path, []byte(`{"keys":[`))
	if err := v.Reload(); err == nil {
		t.Fatal("Reload of a broken file succeeded")
	}
	t.Run("broken reload keeps keys", func(t *testing.T) { check(t, after, tokens) })
	writeOver(t, path, jwks(t, jwkOf(t, "k2", k.ed.Public())))
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	t.Run("single key", func(t *testing.T) {
		tokens["k2 no kid"] = sign(t, jwt.SigningMethodEdDSA, k.ed, "", c)
		tokens["k2 other kid"] = sign(t, jwt.SigningMethodEdDSA, k.ed, "k3", c)
		check(t, map[string]error{"k2": nil, "k2 no kid": nil, "k2 other kid": errUnknownKID, "r2": errSignature}, tokens)
	})
}

// TestReloadPEM replaces the public key file.
func TestReloadPEM(t *testing.T) {
	k := testKeys()
	path := writeFile(t, "key.pem", pemPublic(t, &k.ec256.PublicKey))
	v := newVerifier(t, Config{Mode: ModeJWT, JWTPublicKeyFile: path})
	old := sign(t, jwt.SigningMethodES256, k.ec256, "", claimsAt(nil))
	next := sign(t, jwt.SigningMethodEdDSA, k.ed, "", claimsAt(nil))
	if _, err := v.Verify(old); err != nil {
		t.Fatalf("old key before reload: %v", err)
	}
	writeOver(t, path, pemPublic(t, k.ed.Public()))
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := v.Verify(old); !errors.Is(err, errSignature) {
		t.Errorf("old key after reload: %v, want %v", err, errSignature)
	}
	if _, err := v.Verify(next); err != nil {
		t.Errorf("new key after reload: %v", err)
	}
}

func writeOver(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSubInjection checks that "{sub}" only ever expands to one literal
// token.
func TestSubInjection(t *testing.T) {
	k := testKeys()
	v := newVerifier(t, Config{Mode: ModeJWT, JWTSecret: string(k.secret)})
	perms := map[string]any{
		"pub": map[string]any{"allow": []string{"users.{sub}.>"}},
		"sub": map[string]any{"allow": []string{"users.{sub}.>", "public.>", "rpc.> w.{sub}"}},
	}
	tests := []struct {
		name string
		sub  any
		want error
	}{
		{"plain", "alice", nil},
		{"dot", "a.b", errInvalidSubject},
		{"star", "*", errInvalidSubject},
		{"gt", ">", errInvalidSubject},
		{"space", "a b", errInvalidSubject},
		{"tab", "a\tb", errInvalidSubject},
		{"control", "a\x00b", errInvalidSubject},
		{"empty", "", errInvalidSubject},
		{"missing", nil, errInvalidSubject},
		{"embedded star", "a*", errInvalidSubject},
		{"brace", "{sub}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := sign(t, jwt.SigningMethodHS256, k.secret, "", claimsAt(jwt.MapClaims{"sub": tt.sub, "nats": perms}))
			id, err := v.Verify(token)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil {
				checkReason(t, err, token)
				return
			}
			own := "users." + id.Subject() + ".inbox"
			if !id.CanPublish(own) || id.CanPublish("users.bob.inbox") || id.CanSubscribe("users.>") {
				t.Errorf("permissions of %q wrong", id.Subject())
			}
			if !id.CanSubscribeQueue("rpc.x", "w."+id.Subject()) || id.CanSubscribeQueue("rpc.x", "w.bob") || id.CanSubscribeQueue("rpc.x", "w.*") {
				t.Errorf("queue permissions of %q wrong", id.Subject())
			}
		})
	}
	t.Run("sub unused", func(t *testing.T) {
		token := sign(t, jwt.SigningMethodHS256, k.secret, "", claimsAt(jwt.MapClaims{"sub": "a.b"}))
		if _, err := v.Verify(token); err != nil {
			t.Fatalf("Verify = %v; sub is only checked where {sub} is used", err)
		}
	})
}

// TestQueuePermissions checks queue entries in the "nats" claim and in
// AnonSub end to end, and that a queue in a publish list refuses the token.
func TestQueuePermissions(t *testing.T) {
	k := testKeys()
	v := newVerifier(t, Config{Mode: ModeJWT, JWTSecret: string(k.secret)})
	verify := func(t *testing.T, nats map[string]any) (*Identity, error) {
		t.Helper()
		token := sign(t, jwt.SigningMethodHS256, k.secret, "", claimsAt(jwt.MapClaims{"nats": nats}))
		id, err := v.Verify(token)
		if err != nil {
			checkReason(t, err, token)
		}
		return id, err
	}
	t.Run("claim", func(t *testing.T) {
		id, err := verify(t, map[string]any{
			"pub": map[string]any{"allow": []string{"svc.>"}},
			"sub": map[string]any{
				"allow": []string{"svc.> web.{sub}", "public.>"},
				"deny":  []string{"public.> workers", "public.secret"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			pattern, queue string
			want           bool
		}{
			{"svc.a", "web.alice", true},
			{"svc.a", "web.bob", false},
			{"svc.a", "workers", false},
			{"svc.a", "", false},
			{"public.a", "", true},
			{"public.a", "web.alice", true},
			{"public.a", "workers", false},
			{"public.secret", "", false},
			{"public.secret", "web.alice", false},
		} {
			if got := id.CanSubscribeQueue(c.pattern, c.queue); got != c.want {
				t.Errorf("CanSubscribeQueue(%q, %q) = %v, want %v", c.pattern, c.queue, got, c.want)
			}
		}
	})
	for _, tt := range []struct {
		name string
		nats map[string]any
		want error
	}{
		{"queue in pub allow", map[string]any{"pub": map[string]any{"allow": []string{"svc.> web"}}}, errInvalidPermissions},
		{"queue in pub deny", map[string]any{"pub": map[string]any{"allow": []string{">"}, "deny": []string{"svc.> web"}}}, errInvalidPermissions},
		{"two spaces", map[string]any{"sub": map[string]any{"allow": []string{"svc.>  web"}}}, errInvalidPermissions},
		{"empty queue", map[string]any{"sub": map[string]any{"deny": []string{"svc.> "}}}, errInvalidPermissions},
		{"bad queue", map[string]any{"sub": map[string]any{"allow": []string{"svc.> w>"}}}, errInvalidPermissions},
		{"partial wildcard subject", map[string]any{"sub": map[string]any{"allow": []string{"svc.a*"}}}, errInvalidPermissions},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := verify(t, tt.nats); err != tt.want {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("anonymous", func(t *testing.T) {
		id, err := newVerifier(t, Config{AnonSub: []string{"svc.> web", "public.>"}}).Verify("")
		if err != nil {
			t.Fatal(err)
		}
		if !id.CanSubscribeQueue("svc.a", "web") || id.CanSubscribeQueue("svc.a", "workers") || id.CanSubscribe("svc.a") || !id.CanSubscribeQueue("public.a", "workers") {
			t.Error("AnonSub queue entries not applied")
		}
	})
}

// TestMissingPermissions checks that absent allow lists allow nothing.
func TestMissingPermissions(t *testing.T) {
	k := testKeys()
	v := newVerifier(t, Config{Mode: ModeJWT, JWTSecret: string(k.secret)})
	tests := []struct {
		name string
		nats any
	}{
		{"no nats claim", nil},
		{"empty nats claim", map[string]any{}},
		{"deny only", map[string]any{"pub": map[string]any{"deny": []string{"x"}}, "sub": map[string]any{"deny": []string{"x"}}}},
		{"empty allow", map[string]any{"pub": map[string]any{"allow": []string{}}, "sub": map[string]any{"allow": []string{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsAt(jwt.MapClaims{"nats": tt.nats})))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"a", "orders.eu", ">"} {
				if id.CanPublish(s) || id.CanSubscribe(s) {
					t.Errorf("%q allowed", s)
				}
			}
		})
	}
}

// TestModeNone checks that tokens are ignored and anonymous permissions
// apply.
func TestModeNone(t *testing.T) {
	tests := []struct {
		name             string
		cfg              Config
		pub, sub         string
		wantPub, wantSub bool
	}{
		{"defaults allow all", Config{}, "a.b", ">", true, true},
		{"defaults keep reserved", Config{Mode: ModeNone}, "$SYS.x", "_INBOX.>", false, false},
		{"narrowed", Config{AnonPub: []string{"public.>"}, AnonSub: []string{"public.*"}}, "public.a.b", "public.>", true, false},
		{"empty lists allow nothing", Config{AnonPub: []string{}, AnonSub: []string{}}, "a", "a", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, tt.cfg)
			if v.Mode() != ModeNone {
				t.Errorf("Mode = %q", v.Mode())
			}
			for _, token := range []string{"", "garbage", unsigned(t, `{"alg":"none"}`, claimsAt(nil))} {
				id, err := v.Verify(token)
				if err != nil {
					t.Fatalf("Verify(%q) = %v", token, err)
				}
				if id.Subject() != "" || !id.Expires().IsZero() {
					t.Errorf("not anonymous: %q %v", id.Subject(), id.Expires())
				}
				if got := id.CanPublish(tt.pub); got != tt.wantPub {
					t.Errorf("CanPublish(%q) = %v", tt.pub, got)
				}
				if got := id.CanSubscribe(tt.sub); got != tt.wantSub {
					t.Errorf("CanSubscribe(%q) = %v", tt.sub, got)
				}
			}
		})
	}
}

// TestNewConfig checks configuration validation.
func TestNewConfig(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	rsaPEM := writeFile(t, "rsa.pem", pemPublic(t, &k.rsa.PublicKey))
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec256)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := writeFile(t, "priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	okJWKS := writeFile(t, "ok.json", jwks(t, jwkOf(t, "a", &k.rsa.PublicKey)))
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty means success
	}{
		{"zero", Config{}, ""},
		{"unknown mode", Config{Mode: "oauth"}, `unknown mode "oauth"`},
		{"bad anon pub", Config{AnonPub: []string{"ok", "a..b"}}, `AnonPub: invalid pattern "a..b"`},
		{"bad anon sub", Config{AnonSub: []string{"a.>.b"}}, `AnonSub: invalid pattern "a.>.b"`},
		{"anon {sub}", Config{AnonSub: []string{"users.{sub}"}}, `invalid pattern "users.{sub}"`},
		{"anon sub queue", Config{AnonSub: []string{"public.>", "svc.> web"}}, ""},
		{"anon pub queue", Config{AnonPub: []string{"svc.> web"}}, `AnonPub: invalid pattern "svc.> web": a queue is not allowed`},
		{"anon sub two spaces", Config{AnonSub: []string{"svc.>  web"}}, `AnonSub: invalid pattern "svc.>  web": more than one space`},
		{"anon sub empty queue", Config{AnonSub: []string{"svc.> "}}, `AnonSub: invalid pattern "svc.> ": empty queue`},
		{"anon sub bad queue", Config{AnonSub: []string{"svc.> w*"}}, `AnonSub: invalid pattern "svc.> w*": invalid queue`},
		{"anon partial wildcard", Config{AnonSub: []string{"a*"}}, `AnonSub: invalid pattern "a*"`},
		{"anon partial gt", Config{AnonPub: []string{"b>"}}, `AnonPub: invalid pattern "b>"`},
		{"secret in mode none", Config{JWTSecret: "x"}, "mode is none"},
		{"jwt without key", Config{Mode: ModeJWT}, "exactly one"},
		{"jwt with two keys", Config{Mode: ModeJWT, JWTSecret: "x", JWTPublicKeyFile: rsaPEM}, "exactly one"},
		{"negative leeway", Config{Mode: ModeJWT, JWTSecret: "x", Leeway: -time.Second}, "negative Leeway"},
		{"secret", Config{Mode: ModeJWT, JWTSecret: "x"}, ""},
		{"pem", Config{Mode: ModeJWT, JWTPublicKeyFile: rsaPEM}, ""},
		{"pem missing", Config{Mode: ModeJWT, JWTPublicKeyFile: dir + "/nope.pem"}, "no such file"},
		{"pem private key", Config{Mode: ModeJWT, JWTPublicKeyFile: privPEM}, "no PUBLIC KEY"},
		{"pem P-224", Config{Mode: ModeJWT, JWTPublicKeyFile: writeFile(t, "p224.pem", pemPublic(t, &p224.PublicKey))}, "unsupported ECDSA curve"},
		{"jwks", Config{Mode: ModeJWT, JWKSFile: okJWKS}, ""},
		{"jwks empty", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "e.json", []byte(`{"keys":[]}`))}, "no signing keys"},
		{"jwks enc only", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "enc.json", []byte(`{"keys":[{"kty":"RSA","use":"enc","kid":"x"}]}`))}, "no signing keys"},
		{"jwks bad kty", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "k.json", []byte(`{"keys":[{"kty":"XYZ","kid":"x"}]}`))}, `unsupported kty "XYZ"`},
		{"jwks duplicate kid", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "d.json", jwks(t, jwkOf(t, "a", k.secret), jwkOf(t, "a", k.other)))}, `duplicate kid "a"`},
		{"jwks missing kid among several", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "m.json", jwks(t, jwkOf(t, "", k.secret), jwkOf(t, "a", k.other)))}, "without kid"},
		{"jwks alg mismatch", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "a.json", []byte(`{"keys":[{"kty":"oct","kid":"a","alg":"RS256","k":"c2VjcmV0"}]}`))}, `alg "RS256" does not fit`},
		{"jwks bad EC point", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "p.json", []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`))}, "kid \"a\""},
		{"jwks small RSA", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "s.json", []byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))}, "smaller than 1024"},
		{"jwks not json", Config{Mode: ModeJWT, JWKSFile: writeFile(t, "n.json", []byte(`nope`))}, "jwks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("New succeeded, want error containing %q", tt.wantErr)
			case err != nil && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("New: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestJWKSAlgNarrows checks that a JWK "alg" member restricts the key.
func TestJWKSAlgNarrows(t *testing.T) {
	k := testKeys()
	j := jwkOf(t, "r", &k.rsa.PublicKey)
	j["alg"] = "PS256"
	v := newVerifier(t, Config{Mode: ModeJWT, JWKSFile: writeFile(t, "jwks.json", jwks(t, j))})
	tests := []struct {
		name   string
		method jwt.SigningMethod
		want   error
	}{
		{"declared alg", jwt.SigningMethodPS256, nil},
		{"other RSA alg", jwt.SigningMethodRS256, errSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(sign(t, tt.method, k.rsa, "r", claimsAt(nil)))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestVerifyConcurrentReload races Verify against Reload under -race.
func TestVerifyConcurrentReload(t *testing.T) {
	k := testKeys()
	path := writeFile(t, "jwks.json", jwks(t, jwkOf(t, "a", k.secret)))
	v := newVerifier(t, Config{Mode: ModeJWT, JWKSFile: path})
	token := sign(t, jwt.SigningMethodHS256, k.secret, "a", claimsAt(nil))
	done := make(chan error)
	go func() {
		for range 50 {
			if err := v.Reload(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 200 {
		if _, err := v.Verify(token); err != nil {
			t.Errorf("Verify during reload: %v", err)
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
