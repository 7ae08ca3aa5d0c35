package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// config is every setting of the bridge, read from BRIDGE_* environment
// variables by envconfig. `wsbridge -h` prints this table.
type config struct {
	Listen           string        `envconfig:"LISTEN" default:":8080" desc:"address for WebSocket and HTTP (/ws, /ws/raw, /healthz, /readyz, /)"`
	NodeID           string        `envconfig:"NODE_ID" desc:"name of this node in hello (default: hostname plus a random suffix)"`
	NATSURL          string        `envconfig:"NATS_URL" desc:"comma-separated NATS URLs; unset starts an embedded nats-server"`
	NATSCreds        string        `envconfig:"NATS_CREDS" desc:"NATS credentials file"`
	NATSToken        string        `envconfig:"NATS_TOKEN" desc:"NATS auth token"`
	NATSUser         string        `envconfig:"NATS_USER" desc:"NATS user"`
	NATSPassword     string        `envconfig:"NATS_PASSWORD" desc:"NATS password"`
	DataDir          string        `envconfig:"DATA_DIR" default:"./data" desc:"JetStream storage of the embedded nats-server"`
	EmbeddedListen   string        `envconfig:"EMBEDDED_NATS_LISTEN" default:"127.0.0.1:4222" desc:"client port of the embedded nats-server, or off"`
	HandshakeTimeout time.Duration `envconfig:"HANDSHAKE_TIMEOUT" default:"5s" desc:"time a client has to complete the HTTP upgrade"`
	Workers          int           `envconfig:"WORKERS" default:"0" desc:"netpoll worker goroutines (0: 4 x GOMAXPROCS)"`
	WriteBuffer      byteSize      `envconfig:"WRITE_BUFFER" default:"1MiB" desc:"bytes queued for one client before it is closed as a slow consumer"`
	MaxPayload       byteSize      `envconfig:"MAX_PAYLOAD" default:"1MiB" desc:"largest client message and published payload"`
	PingInterval     time.Duration `envconfig:"PING_INTERVAL" default:"30s" desc:"server ping period; clients silent for two periods are closed"`
	MaxSubscriptions int           `envconfig:"MAX_SUBSCRIPTIONS" default:"256" desc:"subscriptions per connection"`
	RequestTimeout   time.Duration `envconfig:"REQUEST_TIMEOUT" default:"5s" desc:"default timeout of a req"`
	MaxReqTimeout    time.Duration `envconfig:"MAX_REQUEST_TIMEOUT" default:"60s" desc:"cap on a client's timeout_ms"`
	DrainTimeout     time.Duration `envconfig:"DRAIN_TIMEOUT" default:"10s" desc:"time to close clients and drain NATS on SIGINT/SIGTERM"`
	AuthMode         string        `envconfig:"AUTH_MODE" default:"none" desc:"none (anonymous clients with BRIDGE_ANON_PUB/SUB) or jwt"`
	AnonPub          []string      `envconfig:"ANON_PUB" default:">" desc:"subject patterns anonymous clients may publish to (comma-separated)"`
	AnonSub          []string      `envconfig:"ANON_SUB" default:">" desc:"subject patterns anonymous clients may subscribe to (comma-separated)"`
	JWTSecret        string        `envconfig:"JWT_SECRET" desc:"HMAC secret for HS256/384/512 tokens"`
	JWTPublicKey     string        `envconfig:"JWT_PUBLIC_KEY" desc:"PEM file with an RSA, ECDSA or Ed25519 public key (re-read on SIGHUP)"`
	JWTJWKS          string        `envconfig:"JWT_JWKS" desc:"JWKS file; keys chosen by kid (re-read on SIGHUP)"`
	JWTIssuer        string        `envconfig:"JWT_ISSUER" desc:"required iss claim"`
	JWTAudience      string        `envconfig:"JWT_AUDIENCE" desc:"required aud claim"`
	JWTLeeway        time.Duration `envconfig:"JWT_LEEWAY" default:"5s" desc:"clock skew allowed on exp and nbf"`
	JWTCookie        string        `envconfig:"JWT_COOKIE" desc:"name of an HttpOnly cookie that may carry the token"`
	AllowedOrigins   []string      `envconfig:"ALLOWED_ORIGINS" desc:"browser origins allowed besides same-origin (comma-separated; * or https://*.example.com patterns)"`
	TLSCert          string        `envconfig:"TLS_CERT" desc:"certificate file: serve wss:// and https:// (re-read on SIGHUP)"`
	TLSKey           string        `envconfig:"TLS_KEY" desc:"private key file for BRIDGE_TLS_CERT"`
	MaxConns         int           `envconfig:"MAX_CONNECTIONS" default:"0" desc:"open connections allowed (0: unlimited); beyond, 503 at the handshake"`
	MaxConnsPerIP    int           `envconfig:"MAX_CONNECTIONS_PER_IP" default:"0" desc:"connections per remote address (0: unlimited); beyond, 429"`
	RateLimit        float64       `envconfig:"RATE_LIMIT" default:"0" desc:"inbound messages per second per connection (0: off); beyond, rate_limited errors"`
	RateBurst        int           `envconfig:"RATE_BURST" default:"0" desc:"token bucket depth for BRIDGE_RATE_LIMIT (0: one second's worth)"`
	Compression      bool          `envconfig:"COMPRESSION" default:"false" desc:"negotiate permessage-deflate (no context takeover) with clients that offer it"`
	CompressionMin   byteSize      `envconfig:"COMPRESSION_MIN" default:"512" desc:"smallest message sent compressed"`
	DebugListen      string        `envconfig:"DEBUG_LISTEN" desc:"address for Go's pprof endpoints (/debug/pprof/), e.g. 127.0.0.1:6060; unset disables"`
	LogLevel         string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat        string        `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
}

// validate checks what envconfig's types cannot.
func (c *config) validate() error {
	positive := []struct {
		name string
		ok   bool
	}{
		{"BRIDGE_HANDSHAKE_TIMEOUT", c.HandshakeTimeout > 0},
		{"BRIDGE_WORKERS", c.Workers >= 0},
		{"BRIDGE_WRITE_BUFFER", c.WriteBuffer > 0},
		{"BRIDGE_MAX_PAYLOAD", c.MaxPayload > 0},
		{"BRIDGE_PING_INTERVAL", c.PingInterval > 0},
		{"BRIDGE_MAX_SUBSCRIPTIONS", c.MaxSubscriptions > 0},
		{"BRIDGE_REQUEST_TIMEOUT", c.RequestTimeout > 0},
		{"BRIDGE_MAX_REQUEST_TIMEOUT", c.MaxReqTimeout > 0},
		{"BRIDGE_DRAIN_TIMEOUT", c.DrainTimeout > 0},
		{"BRIDGE_JWT_LEEWAY", c.JWTLeeway >= 0},
		{"BRIDGE_MAX_CONNECTIONS", c.MaxConns >= 0},
		{"BRIDGE_MAX_CONNECTIONS_PER_IP", c.MaxConnsPerIP >= 0},
		{"BRIDGE_RATE_LIMIT", c.RateLimit >= 0},
		{"BRIDGE_RATE_BURST", c.RateBurst >= 0},
		{"BRIDGE_COMPRESSION_MIN", c.CompressionMin > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s must not be negative or zero", p.name)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("BRIDGE_TLS_CERT and BRIDGE_TLS_KEY must be set together")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("BRIDGE_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("BRIDGE_LOG_FORMAT: %q is not text or json", c.LogFormat)
	}
	return nil
}

// byteSize is a size in bytes that reads "1048576", "64KiB", "1MiB" or
// "1GiB" (also KB/MB/GB, taken as powers of 1024).
type byteSize int64

// Decode implements envconfig.Decoder.
func (b *byteSize) Decode(v string) error {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return fmt.Errorf("%q is not a size such as 1048576 or 1MiB", v)
	}
	*b = byteSize(n * mult)
	return nil
}
