package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"wsbridge/auth"
)

const tokenUsage = `Usage: wsbridge token [flags]

Mints a development JWT that a bridge with this environment accepts, and
prints it, then a ws:// URL carrying it as ?token=. It needs
BRIDGE_AUTH_MODE=jwt and the bridge's key variables:

  BRIDGE_JWT_SECRET       the token is signed with the secret (HS256)
  BRIDGE_JWT_PUBLIC_KEY   a public key cannot sign: pass its private half
  BRIDGE_JWT_JWKS         with -key (and -kid for a set of several keys)

BRIDGE_JWT_ISSUER and BRIDGE_JWT_AUDIENCE, when set, become iss and aud.
The token is checked against the configuration before it is printed.

  BRIDGE_AUTH_MODE=jwt BRIDGE_JWT_SECRET=dev wsbridge token -sub alice -pub-allow 'orders.>' -ttl 8h

Flags:
`

// patternList is a repeatable flag of comma-separated subject patterns.
type patternList []string

func (l *patternList) String() string { return strings.Join(*l, ",") }

func (l *patternList) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		*l = append(*l, strings.TrimSpace(p))
	}
	return nil
}

// tokenFlags are wsbridge token's flags.
type tokenFlags struct {
	sub                                  string
	pubAllow, pubDeny, subAllow, subDeny patternList
	ttl                                  time.Duration
	key, kid, alg, url                   string
}

// defaults allows everything on a side with no allow list: a token for
// development, where a missing list (which allows nothing) would confuse.
func (f *tokenFlags) defaults() {
	if f.pubAllow == nil {
		f.pubAllow = patternList{">"}
	}
	if f.subAllow == nil {
		f.subAllow = patternList{">"}
	}
}

// summary describes the claims for a person, on one line.
func (f *tokenFlags) summary(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wsbridge token: sub %q, expires %s (in %v); pub %s", f.sub, now.Add(f.ttl).UTC().Format(time.RFC3339), f.ttl, f.pubAllow.String())
	if len(f.pubDeny) > 0 {
		fmt.Fprintf(&b, " except %s", f.pubDeny.String())
	}
	fmt.Fprintf(&b, "; sub %s", f.subAllow.String())
	if len(f.subDeny) > 0 {
		fmt.Fprintf(&b, " except %s", f.subDeny.String())
	}
	return b.String()
}

// tokenCommand is wsbridge token: see tokenUsage. The token and the URL go
// to stdout, one per line; a summary of the claims goes to stderr.
func tokenCommand(args []string, stdout, stderr io.Writer) error {
	var f tokenFlags
	fs := flag.NewFlagSet("wsbridge token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.sub, "sub", "dev", "the token's sub claim: who the client is (replaces {sub} in patterns)")
	fs.Var(&f.pubAllow, "pub-allow", "subject patterns the client may publish and send requests to, comma-separated or repeated (default >, everything)")
	fs.Var(&f.pubDeny, "pub-deny", "subject patterns the client may not publish to, even when allowed")
	fs.Var(&f.subAllow, "sub-allow", "subject patterns the client may subscribe to, comma-separated or repeated (default >, everything)")
	fs.Var(&f.subDeny, "sub-deny", "subject patterns the client may not subscribe to, even when allowed")
	fs.DurationVar(&f.ttl, "ttl", time.Hour, "time until the token expires (its exp claim)")
	fs.StringVar(&f.key, "key", "", "PEM private key file (PKCS#8, PKCS#1 RSA or SEC1 EC) matching BRIDGE_JWT_PUBLIC_KEY or a key of BRIDGE_JWT_JWKS")
	fs.StringVar(&f.kid, "kid", "", "key id for the token header, with BRIDGE_JWT_JWKS (default: the set's only kid)")
	fs.StringVar(&f.alg, "alg", "", "signing algorithm (default HS256 with a secret; RS256, ES256/384/512 or EdDSA by the -key type)")
	fs.StringVar(&f.url, "url", "", "WebSocket URL the printed link starts with (default ws://localhost:<port of BRIDGE_LISTEN>/ws, wss:// with BRIDGE_TLS_CERT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, tokenUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%w: token: %v (see wsbridge token -h)", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: token: unexpected argument %q (flags only; see wsbridge token -h)", errUsage, fs.Arg(0))
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	f.defaults()
	now := time.Now()
	tok, link, err := mintToken(cfg, f, now)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintln(stdout, link)
	fmt.Fprintln(stderr, f.summary(now))
	return nil
}

// mintToken signs a token for f with cfg's key, checks that cfg's own
// verifier accepts it and returns it with the URL that carries it. Its
// errors are errUsage.
func mintToken(cfg config, f tokenFlags, now time.Time) (token, link string, err error) {
	if cfg.AuthMode != auth.ModeJWT {
		return "", "", fmt.Errorf("%w: token: BRIDGE_AUTH_MODE=%s takes no tokens (every client is anonymous); set BRIDGE_AUTH_MODE=jwt and BRIDGE_JWT_SECRET, for the bridge and for this command", errUsage, cfg.AuthMode)
	}
	verifier, err := newVerifier(cfg)
	if err != nil {
		return "", "", err
	}
	if f.ttl <= 0 {
		return "", "", fmt.Errorf("%w: token: -ttl %v: want a positive duration such as 1h", errUsage, f.ttl)
	}
	f.defaults()
	for _, l := range []struct {
		flag string
		list patternList
	}{{"-pub-allow", f.pubAllow}, {"-pub-deny", f.pubDeny}, {"-sub-allow", f.subAllow}, {"-sub-deny", f.subDeny}} {
		for _, p := range l.list {
			if err := checkPattern(strings.ReplaceAll(p, "{sub}", f.sub)); err != nil {
				return "", "", fmt.Errorf("%w: token: %s: %v", errUsage, l.flag, err)
			}
		}
	}

	method, key, kid, err := signingKey(cfg, f)
	if err != nil {
		return "", "", fmt.Errorf("%w: token: %v", errUsage, err)
	}
	claims := jwt.MapClaims{
		"sub": f.sub,
		"iat": now.Unix(),
		"exp": now.Add(f.ttl).Unix(),
		"nats": map[string]any{
			"pub": direction(f.pubAllow, f.pubDeny),
			"sub": direction(f.subAllow, f.subDeny),
		},
	}
	if cfg.JWTIssuer != "" {
		claims["iss"] = cfg.JWTIssuer
	}
	if cfg.JWTAudience != "" {
		claims["aud"] = cfg.JWTAudience
	}
	t := jwt.NewWithClaims(method, claims)
	if kid != "" {
		t.Header["kid"] = kid
	}
	if token, err = t.SignedString(key); err != nil {
		return "", "", fmt.Errorf("%w: token: signing with %s: %v", errUsage, method.Alg(), err)
	}
	if _, err := verifier.Verify(token); err != nil {
		hint := "does -key hold the private half of BRIDGE_JWT_PUBLIC_KEY?"
		if cfg.JWTJWKS != "" {
			hint = "does -key hold the private half of the BRIDGE_JWT_JWKS key named by -kid?"
		}
		if cfg.JWTSecret != "" {
			hint = "does -alg fit an HMAC secret?"
		}
		return "", "", fmt.Errorf("%w: token: the bridge would refuse this token (%v): %s", errUsage, err, hint)
	}
	if link, err = tokenURL(cfg, f.url, token); err != nil {
		return "", "", fmt.Errorf("%w: token: %v", errUsage, err)
	}
	return token, link, nil
}

// direction is one side of the "nats" claim (see auth).
func direction(allow, deny patternList) map[string]any {
	d := map[string]any{"allow": []string(allow)}
	if len(deny) > 0 {
		d["deny"] = []string(deny)
	}
	return d
}

// checkPattern reports whether auth would take p as a subject pattern.
func checkPattern(p string) error {
	if _, err := auth.New(auth.Config{Mode: auth.ModeNone, AnonPub: []string{p}, AnonSub: []string{}}); err != nil {
		return fmt.Errorf("invalid subject pattern %q: %s", p, patternHelp)
	}
	return nil
}

// signingKey is the method, key and kid that sign a token cfg verifies:
// the HMAC secret, or the private key in f.key.
func signingKey(cfg config, f tokenFlags) (jwt.SigningMethod, any, string, error) {
	if cfg.JWTSecret != "" {
		if f.key != "" {
			return nil, nil, "", errors.New("-key is for BRIDGE_JWT_PUBLIC_KEY or BRIDGE_JWT_JWKS; with BRIDGE_JWT_SECRET the token is signed with the secret")
		}
		alg := f.alg
		if alg == "" {
			alg = "HS256"
		}
		m, ok := jwt.GetSigningMethod(alg).(*jwt.SigningMethodHMAC)
		if !ok {
			return nil, nil, "", fmt.Errorf("-alg %s: BRIDGE_JWT_SECRET signs HS256, HS384 or HS512", alg)
		}
		return m, []byte(cfg.JWTSecret), f.kid, nil
	}
	source := "BRIDGE_JWT_PUBLIC_KEY"
	if cfg.JWTJWKS != "" {
		source = "BRIDGE_JWT_JWKS"
	}
	if f.key == "" {
		return nil, nil, "", fmt.Errorf("%s holds public keys, which verify tokens but cannot sign them: pass the matching private key with -key FILE (PEM), or run a development bridge with BRIDGE_JWT_SECRET", source)
	}
	key, alg, err := loadPrivateKey(f.key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("-key %s: %v", f.key, err)
	}
	if f.alg != "" {
		alg = f.alg
	}
	m := jwt.GetSigningMethod(alg)
	if m == nil || strings.HasPrefix(alg, "HS") || alg == "none" {
		return nil, nil, "", fmt.Errorf("-alg %s: want an algorithm for the -key type, such as RS256, PS256, ES256 or EdDSA", alg)
	}
	kid := f.kid
	if kid == "" && cfg.JWTJWKS != "" {
		if kid, err = onlyKID(cfg.JWTJWKS); err != nil {
			return nil, nil, "", err
		}
	}
	return m, key, kid, nil
}

// loadPrivateKey reads a PEM private key and names its default algorithm.
func loadPrivateKey(path string) (any, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("no PEM block")
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("a %s block, want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, "RS256", nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return k, "ES256", nil
		case 384:
			return k, "ES384", nil
		case 521:
			return k, "ES512", nil
		}
		return nil, "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return k, "EdDSA", nil
	}
	return nil, "", fmt.Errorf("unsupported key type %T", key)
}

// onlyKID is the kid of the one signing key in a JWKS file; with several
// the token must name one (-kid).
func onlyKID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("BRIDGE_JWT_JWKS: %v", err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return "", fmt.Errorf("BRIDGE_JWT_JWKS: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		if k.Use != "enc" {
			kids = append(kids, k.Kid)
		}
	}
	if len(kids) > 1 {
		return "", fmt.Errorf("BRIDGE_JWT_JWKS holds %d keys (kids %q): name the one -key signs for with -kid", len(kids), kids)
	}
	if len(kids) == 1 {
		return kids[0], nil
	}
	return "", nil
}

// tokenURL is base (default: /ws on BRIDGE_LISTEN, by localhost when it
// binds every interface) with ?token= set.
func tokenURL(cfg config, base, token string) (string, error) {
	if base == "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return "", fmt.Errorf("BRIDGE_LISTEN: %w", err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "localhost"
		}
		scheme := "ws"
		if cfg.TLSCert != "" {
			scheme = "wss"
		}
		base = scheme + "://" + net.JoinHostPort(host, port) + "/ws"
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("-url %q: want a WebSocket URL such as wss://bridge.example.com/ws", base)
	}
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
