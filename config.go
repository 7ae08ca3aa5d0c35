package main

import (
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// config is every setting of the bridge, read from BRIDGE_* environment
// variables by envconfig. `wsbridge -h` prints this table and README.md's
// configuration table is generated from it (config_doc_test.go). Fields
// tagged secret:"true" never reach a log line.
//
// Each envconfig tag is the variable's full name, and envconfig runs with
// no prefix: with prefix "BRIDGE" and tag "LISTEN", envconfig would fall
// back to a stray LISTEN when BRIDGE_LISTEN is unset.
type config struct {
	Listen           string        `envconfig:"BRIDGE_LISTEN" default:":8080" desc:"public address: WebSocket (/ws, /ws/raw), /healthz, /readyz, the demo page, and /metrics unless BRIDGE_ADMIN_LISTEN is set"`
	AdminListen      string        `envconfig:"BRIDGE_ADMIN_LISTEN" desc:"internal address serving /metrics, /debug/pprof/ and /healthz, e.g. 127.0.0.1:9090; when set, /metrics moves here from BRIDGE_LISTEN; unset: no admin listener"`
	NodeID           string        `envconfig:"BRIDGE_NODE_ID" desc:"name of this node, sent to clients in hello; unset: the hostname plus a random suffix"`
	NATSURL          string        `envconfig:"BRIDGE_NATS_URL" desc:"comma-separated NATS server URLs; unset: start an embedded nats-server"`
	NATSCreds        string        `envconfig:"BRIDGE_NATS_CREDS" desc:"NATS credentials file (user JWT and NKey seed)"`
	NATSToken        string        `envconfig:"BRIDGE_NATS_TOKEN" secret:"true" desc:"NATS auth token (never logged)"`
	NATSUser         string        `envconfig:"BRIDGE_NATS_USER" desc:"NATS user name, with BRIDGE_NATS_PASSWORD"`
	NATSPassword     string        `envconfig:"BRIDGE_NATS_PASSWORD" secret:"true" desc:"NATS password (never logged)"`
	DataDir          string        `envconfig:"BRIDGE_DATA_DIR" default:"./data" desc:"JetStream storage directory of the embedded nats-server"`
	EmbeddedListen   string        `envconfig:"BRIDGE_EMBEDDED_NATS_LISTEN" default:"127.0.0.1:4222" desc:"client address of the embedded nats-server, or off for in-process connections only"`
	HandshakeTimeout time.Duration `envconfig:"BRIDGE_HANDSHAKE_TIMEOUT" default:"5s" desc:"time a client has to complete the WebSocket upgrade"`
	Workers          int           `envconfig:"BRIDGE_WORKERS" default:"0" desc:"netpoll worker goroutines; 0: 4 x GOMAXPROCS"`
	WriteBuffer      byteSize      `envconfig:"BRIDGE_WRITE_BUFFER" default:"1MiB" desc:"bytes queued for one client before it is closed as a slow consumer (sizes: 65536, 64KiB, 1MiB)"`
	MaxPayload       byteSize      `envconfig:"BRIDGE_MAX_PAYLOAD" default:"1MiB" desc:"largest client message and published payload, in bytes; a larger client message closes the connection with 1009"`
	PingInterval     time.Duration `envconfig:"BRIDGE_PING_INTERVAL" default:"30s" desc:"period of server pings; a client silent for two periods is closed"`
	MaxSubscriptions int           `envconfig:"BRIDGE_MAX_SUBSCRIPTIONS" default:"256" desc:"subscriptions one connection may hold"`
	RequestTimeout   time.Duration `envconfig:"BRIDGE_REQUEST_TIMEOUT" default:"5s" desc:"timeout of a req that sets no timeout_ms"`
	MaxReqTimeout    time.Duration `envconfig:"BRIDGE_MAX_REQUEST_TIMEOUT" default:"60s" desc:"cap on a req's timeout_ms"`
	DrainTimeout     time.Duration `envconfig:"BRIDGE_DRAIN_TIMEOUT" default:"10s" desc:"time to close clients and drain NATS after SIGINT/SIGTERM; a second signal exits at once"`
	AuthMode         string        `envconfig:"BRIDGE_AUTH_MODE" default:"none" desc:"none (every client is anonymous, limited by BRIDGE_ANON_PUB and BRIDGE_ANON_SUB) or jwt (clients present a token)"`
	AnonPub          []string      `envconfig:"BRIDGE_ANON_PUB" default:">" desc:"comma-separated subject patterns anonymous clients may publish to"`
	AnonSub          []string      `envconfig:"BRIDGE_ANON_SUB" default:">" desc:"comma-separated subject patterns anonymous clients may subscribe to"`
	JWTSecret        string        `envconfig:"BRIDGE_JWT_SECRET" secret:"true" desc:"HMAC secret for HS256/384/512 tokens (never logged); jwt mode takes exactly one of this, BRIDGE_JWT_PUBLIC_KEY and BRIDGE_JWT_JWKS"`
	JWTPublicKey     string        `envconfig:"BRIDGE_JWT_PUBLIC_KEY" desc:"PEM file with an RSA, ECDSA or Ed25519 public key; re-read on SIGHUP"`
	JWTJWKS          string        `envconfig:"BRIDGE_JWT_JWKS" desc:"JWKS file, keys chosen by kid; re-read on SIGHUP"`
	JWTIssuer        string        `envconfig:"BRIDGE_JWT_ISSUER" desc:"required iss claim; unset: not checked"`
	JWTAudience      string        `envconfig:"BRIDGE_JWT_AUDIENCE" desc:"required aud claim; unset: not checked"`
	JWTLeeway        time.Duration `envconfig:"BRIDGE_JWT_LEEWAY" default:"5s" desc:"clock skew allowed on exp and nbf"`
	JWTCookie        string        `envconfig:"BRIDGE_JWT_COOKIE" desc:"name of an HttpOnly cookie that may carry the token; unset: none"`
	AllowedOrigins   []string      `envconfig:"BRIDGE_ALLOWED_ORIGINS" desc:"comma-separated browser origins allowed besides same-origin: https://app.example.com, https://*.example.com or *; unset: same-origin only"`
	TLSCert          string        `envconfig:"BRIDGE_TLS_CERT" desc:"PEM certificate file: serve wss:// and https://; re-read on SIGHUP; unset: plain ws:// and http://"`
	TLSKey           string        `envconfig:"BRIDGE_TLS_KEY" desc:"PEM private key file for BRIDGE_TLS_CERT"`
	MaxConns         int           `envconfig:"BRIDGE_MAX_CONNECTIONS" default:"0" desc:"open connections allowed on this node, beyond which the handshake answers 503; 0: unlimited"`
	MaxConnsPerIP    int           `envconfig:"BRIDGE_MAX_CONNECTIONS_PER_IP" default:"0" desc:"open connections allowed from one remote address, beyond which the handshake answers 429; 0: unlimited"`
	RateLimit        float64       `envconfig:"BRIDGE_RATE_LIMIT" default:"0" desc:"inbound messages per second per connection, beyond which messages get rate_limited errors; 0: off"`
	RateBurst        int           `envconfig:"BRIDGE_RATE_BURST" default:"0" desc:"token bucket depth for BRIDGE_RATE_LIMIT, in messages; 0: one second's worth"`
	Compression      bool          `envconfig:"BRIDGE_COMPRESSION" default:"false" desc:"negotiate permessage-deflate (no context takeover) with clients that offer it"`
	CompressionMin   byteSize      `envconfig:"BRIDGE_COMPRESSION_MIN" default:"512" desc:"smallest message sent compressed, in bytes"`
	Rebalance        bool          `envconfig:"BRIDGE_REBALANCE" default:"true" desc:"shed clients with close 1012 rebalance while this node holds more than the mean of the ready nodes x (1 + BRIDGE_REBALANCE_SLACK), down to the mean; false: never shed"`
	RebalanceSlack   float64       `envconfig:"BRIDGE_REBALANCE_SLACK" default:"0.10" desc:"fraction above the cluster mean that starts shedding"`
	RebalanceRate    float64       `envconfig:"BRIDGE_REBALANCE_RATE" default:"50" desc:"clients per second a shedding node closes; 50 moves 1,500 clients in 30 s"`
	RebalanceMin     int           `envconfig:"BRIDGE_REBALANCE_MIN_CONNECTIONS" default:"100" desc:"a node holding this many connections or fewer never sheds"`
	MaxHandshakeRate float64       `envconfig:"BRIDGE_MAX_HANDSHAKE_RATE" default:"1000" desc:"WebSocket upgrades per second on this node (burst: one second's worth), beyond which the handshake answers 503 with Retry-After; 0: unlimited"`
	LogLevel         string        `envconfig:"BRIDGE_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat        string        `envconfig:"BRIDGE_LOG_FORMAT" default:"text" desc:"text or json (one object per line)"`
}

// loadConfig reads the configuration from the environment and checks it.
// Its errors are errUsage.
func loadConfig() (config, error) {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := cfg.validate(); err != nil {
		return config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
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
		{"BRIDGE_REBALANCE_SLACK", c.RebalanceSlack > 0},
		{"BRIDGE_REBALANCE_RATE", c.RebalanceRate > 0},
		{"BRIDGE_REBALANCE_MIN_CONNECTIONS", c.RebalanceMin >= 0},
		{"BRIDGE_MAX_HANDSHAKE_RATE", c.MaxHandshakeRate >= 0},
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

// logAttr is the effective configuration as a "config" log group keyed
// by variable name. Secret fields show only whether they are set, and
// passwords in BRIDGE_NATS_URL are redacted.
func (c config) logAttr() slog.Attr {
	v := reflect.ValueOf(c)
	t := v.Type()
	attrs := make([]any, 0, t.NumField())
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		var val any
		switch x := fv.Interface().(type) {
		case time.Duration:
			val = x.String()
		case []string:
			val = strings.Join(x, ",")
		case byteSize:
			val = int64(x)
		default:
			val = x
		}
		switch {
		case f.Tag.Get("secret") == "true" && !fv.IsZero():
			val = "[REDACTED]"
		case f.Name == "NATSURL":
			val = redactURLs(c.NATSURL)
		}
		attrs = append(attrs, slog.Any(f.Tag.Get("envconfig"), val))
	}
	return slog.Group("config", attrs...)
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
