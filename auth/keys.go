package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// key is one verification key and the algorithms that fit it.
type key struct {
	pub     any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	methods []string
}

// keySet is an immutable set of keys and the parser configured for them;
// Reload replaces it whole.
type keySet struct {
	only   *key            // used when the token names no key (or the source has no kids)
	byKID  map[string]*key // JWKS only
	parser *jwt.Parser
}

// methods returns every algorithm some key of the set accepts.
func (ks *keySet) methods() []string {
	var ms []string
	add := func(k *key) {
		for _, m := range k.methods {
			if !slices.Contains(ms, m) {
				ms = append(ms, m)
			}
		}
	}
	if ks.only != nil {
		add(ks.only)
	}
	for _, k := range ks.byKID {
		add(k)
	}
	return ms
}

// keyFunc picks the key for t: by "kid" for a JWKS, the single key
// otherwise. It refuses an algorithm that does not fit the chosen key, so a
// JWKS mixing key types cannot be used for key confusion.
func (ks *keySet) keyFunc(t *jwt.Token) (any, error) {
	k := ks.only
	if ks.byKID != nil {
		if raw, ok := t.Header["kid"]; ok {
			kid, _ := raw.(string)
			k = ks.byKID[kid]
		}
	}
	if k == nil {
		return nil, errUnknownKID
	}
	if !slices.Contains(k.methods, t.Method.Alg()) {
		return nil, jwt.ErrTokenSignatureInvalid
	}
	return k.pub, nil
}

// singleKey wraps a key loaded from JWTSecret or JWTPublicKeyFile.
func singleKey(k *key, err error) (*keySet, error) {
	if err != nil {
		return nil, err
	}
	return &keySet{only: k}, nil
}

var (
	hmacMethods = []string{"HS256", "HS384", "HS512"}
	rsaMethods  = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)

// newKey wraps a public key or HMAC secret with the algorithms that fit it;
// alg, when non-empty, narrows them to one.
func newKey(pub any, alg string) (*key, error) {
	k := &key{pub: pub}
	switch p := pub.(type) {
	case []byte:
		if len(p) == 0 {
			return nil, errors.New("empty HMAC secret")
		}
		k.methods = hmacMethods
	case *rsa.PublicKey:
		if p.N.BitLen() < 1024 {
			return nil, errors.New("RSA key smaller than 1024 bits") // crypto/rsa refuses these
		}
		k.methods = rsaMethods
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			k.methods = []string{"ES256"}
		case elliptic.P384():
			k.methods = []string{"ES384"}
		case elliptic.P521():
			k.methods = []string{"ES512"}
		default:
			return nil, fmt.Errorf("unsupported ECDSA curve %s", p.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		k.methods = []string{"EdDSA"}
	default:
		return nil, fmt.Errorf("unsupported key type %T", pub)
	}
	if alg != "" {
		if !slices.Contains(k.methods, alg) {
			return nil, fmt.Errorf("alg %q does not fit the key", alg)
		}
		k.methods = []string{alg}
	}
	return k, nil
}

// loadPEMFile reads the first public key or certificate in a PEM file.
func loadPEMFile(path string) (*key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: public key: %w", err)
	}
	k, err := parsePEM(data)
	if err != nil {
		return nil, fmt.Errorf("auth: public key %s: %w", path, err)
	}
	return k, nil
}

// parsePEM returns the first public key or certificate in data, skipping
// other blocks.
func parsePEM(data []byte) (*key, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block")
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			continue // private keys are never accepted; parameters are skipped
		}
		if err != nil {
			return nil, err
		}
		return newKey(pub, "")
	}
}

// jwk is the subset of RFC 7517/7518/8037 members we read.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// loadJWKSFile reads a JWK set file.
func loadJWKSFile(path string) (*keySet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: jwks: %w", err)
	}
	ks, err := parseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("auth: jwks %s: %w", path, err)
	}
	return ks, nil
}

// parseJWKS builds a key set indexed by kid from a JWK set document.
func parseJWKS(data []byte) (*keySet, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, err
	}
	ks := &keySet{byKID: make(map[string]*key)}
	for i, j := range set.Keys {
		if j.Use == "enc" {
			continue
		}
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err)
		}
		if _, dup := ks.byKID[j.Kid]; dup {
			return nil, fmt.Errorf("key %d: duplicate kid %q", i, j.Kid)
		}
		ks.byKID[j.Kid] = k
	}
	switch len(ks.byKID) {
	case 0:
		return nil, errors.New("no signing keys")
	case 1:
		for _, k := range ks.byKID {
			ks.only = k
		}
	default:
		if _, ok := ks.byKID[""]; ok {
			return nil, errors.New("a key without kid in a set of several")
		}
	}
	return ks, nil
}

// key converts one JWK to a verification key (RFC 7518 section 6,
// RFC 8037 for OKP).
func (j *jwk) key() (*key, error) {
	switch j.Kty {
	case "oct":
		k, err := b64(j.K)
		if err != nil {
			return nil, fmt.Errorf("k: %w", err)
		}
		return newKey(k, j.Alg)
	case "RSA":
		n, err := b64(j.N)
		if err != nil {
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := b64(j.E)
		if err != nil {
			return nil, fmt.Errorf("e: %w", err)
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad exponent")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil, errors.New("bad exponent")
		}
		return newKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, j.Alg)
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported crv %q", j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64(j.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := b64(j.Y)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		if len(x) != size || len(y) != size {
			return nil, errors.New("bad coordinate length")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, err
		}
		return newKey(pub, j.Alg)
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("unsupported crv %q", j.Crv)
		}
		x, err := b64(j.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key length")
		}
		return newKey(ed25519.PublicKey(x), j.Alg)
	}
	return nil, fmt.Errorf("unsupported kty %q", j.Kty)
}

// b64 decodes unpadded base64url, as JWK requires (RFC 7515 section 2).
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
