package auth

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Modes accepted in [Config.Mode].
const (
	ModeNone = "none" // every client is anonymous
	ModeJWT  = "jwt"  // every client presents a signed JWT
)

// maxTokenLen bounds the work an unauthenticated peer can make us do
// (base64 and JSON decoding happen before the signature check).
const maxTokenLen = 16 << 10

// Config configures a [Verifier].
type Config struct {
	// Mode is ModeNone or ModeJWT; empty means ModeNone.
	Mode string
	// AnonPub and AnonSub are the NATS subject patterns anonymous clients
	// may publish and subscribe to in ModeNone. Nil means [">"]; an empty
	// non-nil slice allows nothing. AnonSub entries may name a queue group
	// as NATS does, "SUBJECT QUEUE" with one space: such an entry allows
	// that queue only on that subject (see [Identity.CanSubscribeQueue]).
	// "{sub}" is refused: anonymous clients have no sub claim.
	AnonPub []string
	AnonSub []string

	// Exactly one of JWTSecret, JWTPublicKeyFile and JWKSFile is required
	// in ModeJWT, and none may be set in ModeNone.
	//
	// JWTSecret is the HMAC secret; tokens must use HS256, HS384 or HS512.
	JWTSecret string
	// JWTPublicKeyFile is a PEM file holding an RSA, ECDSA (P-256, P-384,
	// P-521) or Ed25519 public key, or a certificate for one. RSA keys accept
	// RS256/384/512 and PS256/384/512, ECDSA keys the ES algorithm of their
	// curve, Ed25519 keys EdDSA. Re-read by Reload.
	JWTPublicKeyFile string
	// JWKSFile is a JSON Web Key Set file (RFC 7517); tokens choose a key
	// with their "kid" header, which may be omitted only when the set holds
	// a single key. Keys of type RSA, EC, OKP (Ed25519) and oct (HMAC) are
	// supported; a key's "alg" member, when present, narrows it to that
	// algorithm, and keys with "use":"enc" are ignored. Re-read by Reload.
	JWKSFile string

	// Issuer, when non-empty, must equal the token's "iss" claim.
	Issuer string
	// Audience, when non-empty, must be in the token's "aud" claim.
	Audience string
	// Leeway is the clock skew tolerated on "exp" and "nbf"; zero means
	// none. It must not be negative.
	Leeway time.Duration
}

// ErrExpired is returned by [Verifier.Verify] for a token whose "exp" has
// passed, so callers can tell clients to refresh rather than give up.
var ErrExpired = errors.New("auth: token expired")

// Reasons returned by Verify. Their text is sent to clients: it is short,
// lowercase and never contains the token.
var (
	errMissingToken       = errors.New("auth: missing token")
	errMalformed          = errors.New("auth: malformed token")
	errSignature          = errors.New("auth: invalid signature")
	errUnknownKID         = errors.New("auth: unknown key id")
	errMissingExp         = errors.New("auth: missing exp")
	errNotYetValid        = errors.New("auth: token not valid yet")
	errIssuer             = errors.New("auth: invalid issuer")
	errAudience           = errors.New("auth: invalid audience")
	errInvalidSubject     = errors.New("auth: invalid sub for {sub}")
	errInvalidPermissions = errors.New("auth: invalid permissions")
	errInvalidToken       = errors.New("auth: invalid token")
)

// Verifier turns handshake tokens into identities. It is safe for
// concurrent use.
type Verifier struct {
	cfg  Config
	anon *Identity // ModeNone only

	reloadMu sync.Mutex // serialises Reload; Verify never takes it
	keys     atomic.Pointer[keySet]
}

// New validates cfg and, in ModeJWT, loads the key. Errors name the field or
// pattern at fault.
func New(cfg Config) (*Verifier, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeNone
	}
	v := &Verifier{cfg: cfg}
	sources := 0
	for _, s := range []string{cfg.JWTSecret, cfg.JWTPublicKeyFile, cfg.JWKSFile} {
		if s != "" {
			sources++
		}
	}
	switch cfg.Mode {
	case ModeNone:
		if sources > 0 || cfg.Issuer != "" || cfg.Audience != "" {
			return nil, errors.New("auth: jwt settings given but mode is none")
		}
		id := &Identity{}
		var err error
		if id.pubAllow, err = parseEntries(orAll(cfg.AnonPub), "", false); err != nil {
			return nil, fmt.Errorf("auth: AnonPub: %w", err)
		}
		if id.subAllow, err = parseEntries(orAll(cfg.AnonSub), "", true); err != nil {
			return nil, fmt.Errorf("auth: AnonSub: %w", err)
		}
		v.anon = id
	case ModeJWT:
		if sources != 1 {
			return nil, errors.New("auth: jwt mode needs exactly one of JWTSecret, JWTPublicKeyFile, JWKSFile")
		}
		if cfg.Leeway < 0 {
			return nil, fmt.Errorf("auth: negative Leeway %v", cfg.Leeway)
		}
		ks, err := v.loadKeys()
		if err != nil {
			return nil, err
		}
		v.keys.Store(ks)
	default:
		return nil, fmt.Errorf("auth: unknown mode %q", cfg.Mode)
	}
	return v, nil
}

// orAll applies the anonymous default: nil means everything.
func orAll(list []string) []string {
	if list == nil {
		return []string{">"}
	}
	return list
}

// Mode returns ModeNone or ModeJWT.
func (v *Verifier) Mode() string { return v.cfg.Mode }

// Reload re-reads JWKSFile or JWTPublicKeyFile and swaps the keys in
// atomically. On error the previous keys stay in use. It is a no-op in
// ModeNone and with JWTSecret.
func (v *Verifier) Reload() error {
	if v.cfg.Mode != ModeJWT || v.cfg.JWTSecret != "" {
		return nil
	}
	v.reloadMu.Lock()
	defer v.reloadMu.Unlock()
	ks, err := v.loadKeys()
	if err != nil {
		return err
	}
	v.keys.Store(ks)
	return nil
}

// loadKeys builds the key set and its parser from the configured source.
func (v *Verifier) loadKeys() (*keySet, error) {
	var ks *keySet
	var err error
	switch {
	case v.cfg.JWTSecret != "":
		ks, err = singleKey(newKey([]byte(v.cfg.JWTSecret), ""))
	case v.cfg.JWTPublicKeyFile != "":
		ks, err = singleKey(loadPEMFile(v.cfg.JWTPublicKeyFile))
	default:
		ks, err = loadJWKSFile(v.cfg.JWKSFile)
	}
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(ks.methods()),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.cfg.Leeway),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	ks.parser = jwt.NewParser(opts...)
	return ks, nil
}

// claims is the token payload we read.
type claims struct {
	jwt.RegisteredClaims
	NATS *permissions `json:"nats"`
}

// Verify authenticates token. In ModeNone the token is ignored and every
// client gets the anonymous identity. In ModeJWT the token must be a JWT
// signed with the configured key using an algorithm that fits it, with an
// "exp" claim, and "iss"/"aud" matching when configured; its "nats" claim
// carries the permissions. The error text is a short client-safe reason;
// [ErrExpired] can be matched with errors.Is.
func (v *Verifier) Verify(token string) (*Identity, error) {
	if v.cfg.Mode == ModeNone {
		return v.anon, nil
	}
	if token == "" {
		return nil, errMissingToken
	}
	if len(token) > maxTokenLen {
		return nil, errMalformed
	}
	ks := v.keys.Load()
	var c claims
	if _, err := ks.parser.ParseWithClaims(token, &c, ks.keyFunc); err != nil {
		return nil, v.reason(err, &c)
	}
	// The leeway that admitted the token also bounds the connection.
	return newIdentity(c.Subject, c.ExpiresAt.Time.Add(v.cfg.Leeway), c.NATS)
}

// reason maps a jwt error to the one client-visible reason, most
// fundamental first. c holds whatever claims were decoded.
func (v *Verifier) reason(err error, c *claims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case errors.Is(err, errUnknownKID):
		return errUnknownKID
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errMalformed // e.g. unknown "alg"
	case c.ExpiresAt == nil:
		return errMissingExp
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer),
		v.cfg.Issuer != "" && c.Issuer == "":
		return errIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience),
		v.cfg.Audience != "" && len(c.Audience) == 0:
		return errAudience
	}
	return errInvalidToken
}
