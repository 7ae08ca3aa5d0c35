package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"wsbridge/auth"
	"wsbridge/bridge"
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
	NATSPingInterval time.Duration `envconfig:"BRIDGE_NATS_PING_INTERVAL" default:"5s" desc:"period of the bridge's pings to NATS; after two unanswered ones, or a write to NATS blocked this long, the link counts as dead and the bridge reconnects, to another URL of BRIDGE_NATS_URL when there is one: a frozen or blackholed NATS is noticed within three periods"`
	DataDir          string        `envconfig:"BRIDGE_DATA_DIR" default:"./data" desc:"JetStream storage directory of the embedded nats-server"`
	EmbeddedListen   string        `envconfig:"BRIDGE_EMBEDDED_NATS_LISTEN" default:"127.0.0.1:4222" desc:"client address of the embedded nats-server, or off for in-process connections only"`
	HandshakeTimeout time.Duration `envconfig:"BRIDGE_HANDSHAKE_TIMEOUT" default:"5s" desc:"time a client has to complete the WebSocket upgrade"`
	Workers          int           `envconfig:"BRIDGE_WORKERS" default:"0" desc:"netpoll worker goroutines; 0: 4 x GOMAXPROCS"`
	WriteBuffer      byteSize      `envconfig:"BRIDGE_WRITE_BUFFER" default:"1MiB" desc:"bytes queued for one client before it is closed as a slow consumer (sizes: 65536, 64KiB, 1MiB)"`
	MaxPendingBytes  byteSize      `envconfig:"BRIDGE_MAX_PENDING_BYTES" default:"64MiB" desc:"bytes of messages taken from NATS and not yet queued to clients, node-wide; beyond it messages are dropped and counted (the bridge is a slow consumer)"`
	MaxPartialBytes  byteSize      `envconfig:"BRIDGE_MAX_PARTIAL_BYTES" default:"256MiB" desc:"bytes of client messages still being assembled, node-wide; a message that would pass it closes its connection with 1013"`
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
	TLSPreferChaCha  bool          `envconfig:"BRIDGE_TLS_PREFER_CHACHA20" default:"true" desc:"use ChaCha20-Poly1305 when the client offers it (every browser does): about 2 KiB less memory per idle wss:// connection than AES-GCM, for about 100 ns more CPU per small record; false: crypto/tls's choice, AES-GCM on AES hardware"`
	MaxConns         int           `envconfig:"BRIDGE_MAX_CONNECTIONS" default:"0" desc:"open connections allowed on this node, beyond which the handshake answers 503; 0: unlimited"`
	MaxConnsPerIP    int           `envconfig:"BRIDGE_MAX_CONNECTIONS_PER_IP" default:"0" desc:"open connections allowed from one remote address, beyond which the handshake answers 429; 0: unlimited"`
	MaxHandshakes    int           `envconfig:"BRIDGE_MAX_HANDSHAKES" default:"1024" desc:"sockets accepted but not yet upgraded (TLS and HTTP handshakes in progress, idle keep-alive HTTP connections); sockets beyond it are closed at once"`
	MaxInflightReqs  int           `envconfig:"BRIDGE_MAX_INFLIGHT_REQUESTS" default:"64" desc:"requests one connection may have waiting for a reply; beyond it req answers too_many_requests"`
	MaxInflightAcks  int           `envconfig:"BRIDGE_MAX_INFLIGHT_ACKS" default:"64" desc:"acked publishes one connection may have waiting for their PubAck; beyond it an acked pub answers too_many_requests"`
	MaxCatchups      int           `envconfig:"BRIDGE_MAX_CATCHUPS_PER_CONN" default:"4" desc:"JetStream catch-ups (history replays) one connection runs at once; its further stream subscriptions wait their turn"`
	PublicHosts      []string      `envconfig:"BRIDGE_PUBLIC_HOSTS" desc:"comma-separated host[:port] names clients connect to; a handshake whose Host header is not listed gets 403 (DNS rebinding); set it with BRIDGE_AUTH_MODE=none on an internal network; unset: any Host"`
	RateLimit        float64       `envconfig:"BRIDGE_RATE_LIMIT" default:"0" desc:"inbound messages per second per connection, beyond which messages get rate_limited errors; 0: off"`
	RateBurst        int           `envconfig:"BRIDGE_RATE_BURST" default:"0" desc:"token bucket depth for BRIDGE_RATE_LIMIT, in messages; 0: one second's worth"`
	Compression      bool          `envconfig:"BRIDGE_COMPRESSION" default:"false" desc:"negotiate permessage-deflate (no context takeover) with clients that offer it"`
	CompressionMin   byteSize      `envconfig:"BRIDGE_COMPRESSION_MIN" default:"512" desc:"smallest message sent compressed, in bytes"`
	Rebalance        bool          `envconfig:"BRIDGE_REBALANCE" default:"true" desc:"shed clients with close 1012 rebalance while this node holds more than the mean of the ready nodes x (1 + BRIDGE_REBALANCE_SLACK), down to the mean; false: never shed"`
	RebalanceSlack   float64       `envconfig:"BRIDGE_REBALANCE_SLACK" default:"0.10" desc:"fraction above the cluster mean that starts shedding"`
	RebalanceRate    float64       `envconfig:"BRIDGE_REBALANCE_RATE" default:"50" desc:"clients per second a shedding node closes; 50 moves 1,500 clients in 30 s"`
	RebalanceMin     int           `envconfig:"BRIDGE_REBALANCE_MIN_CONNECTIONS" default:"100" desc:"a node holding this many connections or fewer never sheds"`
	MaxHandshakeRate float64       `envconfig:"BRIDGE_MAX_HANDSHAKE_RATE" default:"1000" desc:"WebSocket upgrades per second on this node (burst: one second's worth), beyond which the handshake answers 503 with Retry-After; 0: unlimited"`
	ResumeWindow     int           `envconfig:"BRIDGE_RESUME_WINDOW" default:"10000" desc:"most recent messages each JetStream feed (stream and subject with subscribers on this node) keeps in memory, so a client resuming with after inside them is served without reading JetStream; 10,000 covers the last 8 minutes of a subject at 20 msg/s, 10 s at 1,000 msg/s; 0: none, every resume reads JetStream"`
	ResumeBytes      byteSize      `envconfig:"BRIDGE_RESUME_WINDOW_BYTES" default:"8MiB" desc:"bytes (bodies and subjects) each feed's resume window may hold, whichever of it and BRIDGE_RESUME_WINDOW is reached first: 10,000 messages of ~800 bytes; bounds the memory of a node to this times its feeds"`
	LogLevel         string        `envconfig:"BRIDGE_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat        string        `envconfig:"BRIDGE_LOG_FORMAT" default:"text" desc:"text or json (one object per line)"`
}

// loadConfig reads the configuration from the environment and checks it.
// Its errors are errUsage and name the variable at fault.
func loadConfig() (config, error) {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return config{}, fmt.Errorf("%w: %v", errUsage, explainEnvError(err))
	}
	for _, l := range []*[]string{&cfg.AnonPub, &cfg.AnonSub, &cfg.AllowedOrigins, &cfg.PublicHosts} {
		for i, s := range *l {
			(*l)[i] = strings.TrimSpace(s) // "orders.>, chat.>"
		}
	}
	if err := cfg.validate(); err != nil {
		return config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}

// explainEnvError rewords envconfig's "envconfig.Process: assigning ...
// converting '30' to type time.Duration" as the variable, its value and
// what would be right.
func explainEnvError(err error) error {
	var pe *envconfig.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	f, _ := reflect.TypeFor[config]().FieldByName(pe.FieldName)
	val := strconv.Quote(pe.Value)
	if f.Tag.Get("secret") == "true" {
		val = "(redacted)"
	}
	var want string
	switch f.Type {
	case reflect.TypeFor[time.Duration]():
		if _, err := strconv.ParseFloat(strings.TrimSpace(pe.Value), 64); err == nil {
			return fmt.Errorf("%s=%s has no unit: write %ss for seconds (durations read like 30s, 1m or 250ms)", pe.KeyName, val, strings.TrimSpace(pe.Value))
		}
		want = "a duration such as 30s, 1m or 250ms"
	case reflect.TypeFor[byteSize]():
		want = "a size such as 65536, 64KiB or 1MiB"
	default:
		switch f.Type.Kind() {
		case reflect.Bool:
			want = "true or false"
		case reflect.Int, reflect.Int64:
			want = "a whole number such as 0 or 256"
		case reflect.Float64:
			want = "a number such as 0, 100 or 2.5"
		default:
			want = "a " + pe.TypeName
		}
	}
	return fmt.Errorf("%s=%s is not %s", pe.KeyName, val, want)
}

// validate checks what envconfig's types cannot. It reads no file and
// starts nothing: newVerifier, newOriginPolicy, loadCerts and
// prepareDataDir check the rest, also before anything starts.
func (c *config) validate() error {
	positive := []struct {
		name string
		val  any
		ok   bool
		want string
	}{
		{"BRIDGE_HANDSHAKE_TIMEOUT", c.HandshakeTimeout, c.HandshakeTimeout > 0, "a positive duration such as 5s"},
		{"BRIDGE_WORKERS", c.Workers, c.Workers >= 0, "0 (4 x GOMAXPROCS) or a positive number"},
		{"BRIDGE_WRITE_BUFFER", int64(c.WriteBuffer), c.WriteBuffer > 0, "a positive size such as 1MiB"},
		{"BRIDGE_MAX_PENDING_BYTES", int64(c.MaxPendingBytes), c.MaxPendingBytes > 0, "a positive size such as 64MiB"},
		{"BRIDGE_MAX_PARTIAL_BYTES", int64(c.MaxPartialBytes), c.MaxPartialBytes > 0, "a positive size such as 256MiB"},
		{"BRIDGE_MAX_PAYLOAD", int64(c.MaxPayload), c.MaxPayload > 0, "a positive size such as 1MiB"},
		{"BRIDGE_PING_INTERVAL", c.PingInterval, c.PingInterval > 0, "a positive duration such as 30s"},
		{"BRIDGE_NATS_PING_INTERVAL", c.NATSPingInterval, c.NATSPingInterval > 0, "a positive duration such as 5s"},
		{"BRIDGE_MAX_SUBSCRIPTIONS", c.MaxSubscriptions, c.MaxSubscriptions > 0, "a positive number such as 256"},
		{"BRIDGE_REQUEST_TIMEOUT", c.RequestTimeout, c.RequestTimeout > 0, "a positive duration such as 5s"},
		{"BRIDGE_MAX_REQUEST_TIMEOUT", c.MaxReqTimeout, c.MaxReqTimeout > 0, "a positive duration such as 60s"},
		{"BRIDGE_DRAIN_TIMEOUT", c.DrainTimeout, c.DrainTimeout > 0, "a positive duration such as 10s"},
		{"BRIDGE_JWT_LEEWAY", c.JWTLeeway, c.JWTLeeway >= 0, "0 or a positive duration such as 5s"},
		{"BRIDGE_MAX_CONNECTIONS", c.MaxConns, c.MaxConns >= 0, "0 (unlimited) or a positive number"},
		{"BRIDGE_MAX_CONNECTIONS_PER_IP", c.MaxConnsPerIP, c.MaxConnsPerIP >= 0, "0 (unlimited) or a positive number"},
		{"BRIDGE_MAX_HANDSHAKES", c.MaxHandshakes, c.MaxHandshakes > 0, "a positive number such as 1024"},
		{"BRIDGE_MAX_INFLIGHT_REQUESTS", c.MaxInflightReqs, c.MaxInflightReqs > 0, "a positive number such as 64"},
		{"BRIDGE_MAX_INFLIGHT_ACKS", c.MaxInflightAcks, c.MaxInflightAcks > 0, "a positive number such as 64"},
		{"BRIDGE_MAX_CATCHUPS_PER_CONN", c.MaxCatchups, c.MaxCatchups > 0, "a positive number such as 4"},
		{"BRIDGE_RATE_LIMIT", c.RateLimit, c.RateLimit >= 0, "0 (off) or a positive rate such as 100"},
		{"BRIDGE_RATE_BURST", c.RateBurst, c.RateBurst >= 0, "0 (one second's worth) or a positive number"},
		{"BRIDGE_COMPRESSION_MIN", int64(c.CompressionMin), c.CompressionMin > 0, "a positive size such as 512"},
		{"BRIDGE_REBALANCE_SLACK", c.RebalanceSlack, c.RebalanceSlack > 0, "a positive fraction such as 0.10"},
		{"BRIDGE_REBALANCE_RATE", c.RebalanceRate, c.RebalanceRate > 0, "a positive rate such as 50"},
		{"BRIDGE_REBALANCE_MIN_CONNECTIONS", c.RebalanceMin, c.RebalanceMin >= 0, "0 or a positive number such as 100"},
		{"BRIDGE_MAX_HANDSHAKE_RATE", c.MaxHandshakeRate, c.MaxHandshakeRate >= 0, "0 (unlimited) or a positive rate such as 1000"},
		{"BRIDGE_RESUME_WINDOW", c.ResumeWindow, c.ResumeWindow >= 0, "0 (none) or a positive number such as 10000"},
		{"BRIDGE_RESUME_WINDOW_BYTES", int64(c.ResumeBytes), c.ResumeBytes > 0, "a positive size such as 8MiB"},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s=%v: want %s", p.name, p.val, p.want)
		}
	}
	addrs := []struct{ name, val string }{{"BRIDGE_LISTEN", c.Listen}, {"BRIDGE_ADMIN_LISTEN", c.AdminListen}}
	if c.NATSURL == "" && !strings.EqualFold(c.EmbeddedListen, "off") {
		addrs = append(addrs, struct{ name, val string }{"BRIDGE_EMBEDDED_NATS_LISTEN", c.EmbeddedListen})
	}
	for i, a := range addrs {
		if a.val == "" && i > 0 {
			continue // optional
		}
		if _, _, err := splitListen(a.val); err != nil {
			return fmt.Errorf("%s=%q: %v; want host:port such as :8080 or 127.0.0.1:9090", a.name, a.val, err)
		}
	}
	if err := checkNATSURLs(c.NATSURL); err != nil {
		return err
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("BRIDGE_TLS_CERT and BRIDGE_TLS_KEY must be set together: the certificate and its private key")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("BRIDGE_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("BRIDGE_LOG_FORMAT=%q: want text or json", c.LogFormat)
	}
	return nil
}

// splitListen parses a listen address; the port may be a number or a
// service name.
func splitListen(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if port, err = net.LookupPort("tcp", p); err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// checkNATSURLs refuses what nats.go would refuse in BRIDGE_NATS_URL,
// parsing each URL the way it does (nats:// when no scheme is given).
func checkNATSURLs(urls string) error {
	if urls == "" {
		return nil
	}
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		shown := redactURLs(u)
		if u == "" {
			return fmt.Errorf("BRIDGE_NATS_URL=%q has an empty entry; want comma-separated URLs such as nats://n1:4222,nats://n2:4222", redactURLs(urls))
		}
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		parsed, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("BRIDGE_NATS_URL: %q is not a URL; want nats://host:4222 (or tls://, ws://, wss://)", shown)
		}
		if parsed.Hostname() == "" {
			return fmt.Errorf("BRIDGE_NATS_URL: %q has no host; want nats://host:4222", shown)
		}
	}
	return nil
}

// patternHelp says what a subject pattern looks like.
const patternHelp = "want dot-separated tokens such as orders.>, orders.*.created or chat.lobby (* matches one token, > the rest and only at the end)"

// newVerifier builds the auth.Verifier of cfg. auth's errors name its
// Config fields; this checks one variable at a time first so that every
// error names the BRIDGE_ variable and says what would be right. Errors
// are errUsage.
func newVerifier(c config) (*auth.Verifier, error) {
	ac := auth.Config{
		Mode:             c.AuthMode,
		AnonPub:          c.AnonPub,
		AnonSub:          c.AnonSub,
		JWTSecret:        c.JWTSecret,
		JWTPublicKeyFile: c.JWTPublicKey,
		JWKSFile:         c.JWTJWKS,
		Issuer:           c.JWTIssuer,
		Audience:         c.JWTAudience,
		Leeway:           c.JWTLeeway,
	}
	keys := setVars(map[string]string{"BRIDGE_JWT_SECRET": c.JWTSecret, "BRIDGE_JWT_PUBLIC_KEY": c.JWTPublicKey, "BRIDGE_JWT_JWKS": c.JWTJWKS})
	const oneKey = "set exactly one of BRIDGE_JWT_SECRET (an HMAC secret), BRIDGE_JWT_PUBLIC_KEY (a PEM public key file) or BRIDGE_JWT_JWKS (a JWKS file)"
	switch c.AuthMode {
	case auth.ModeNone:
		jwtVars := setVars(map[string]string{"BRIDGE_JWT_SECRET": c.JWTSecret, "BRIDGE_JWT_PUBLIC_KEY": c.JWTPublicKey,
			"BRIDGE_JWT_JWKS": c.JWTJWKS, "BRIDGE_JWT_ISSUER": c.JWTIssuer, "BRIDGE_JWT_AUDIENCE": c.JWTAudience})
		if len(jwtVars) > 0 {
			verb := " is"
			if len(jwtVars) > 1 {
				verb = " are"
			}
			list := strings.Join(jwtVars, ", ")
			return nil, fmt.Errorf("%w: BRIDGE_AUTH_MODE=none accepts every client without a token, yet %s%s set: set BRIDGE_AUTH_MODE=jwt to verify tokens, or unset %s",
				errUsage, list, verb, list)
		}
		for _, l := range []struct {
			name string
			list []string
		}{{"BRIDGE_ANON_PUB", c.AnonPub}, {"BRIDGE_ANON_SUB", c.AnonSub}} {
			for _, p := range l.list {
				if _, err := auth.New(auth.Config{Mode: auth.ModeNone, AnonPub: []string{p}, AnonSub: []string{}}); err != nil {
					hint := patternHelp
					if p == "" {
						hint = "an empty entry (a stray comma?); " + patternHelp
					}
					return nil, fmt.Errorf("%w: %s: invalid subject pattern %q: %s", errUsage, l.name, p, hint)
				}
			}
		}
	case auth.ModeJWT:
		switch len(keys) {
		case 0:
			return nil, fmt.Errorf("%w: BRIDGE_AUTH_MODE=jwt needs a key to verify tokens: %s", errUsage, oneKey)
		case 1:
		default:
			return nil, fmt.Errorf("%w: BRIDGE_AUTH_MODE=jwt takes one key, but %s are all set: %s", errUsage, strings.Join(keys, ", "), oneKey)
		}
	default:
		return nil, fmt.Errorf("%w: BRIDGE_AUTH_MODE=%q: want none (anonymous clients) or jwt (clients present a token)", errUsage, c.AuthMode)
	}
	v, err := auth.New(ac)
	if err == nil {
		return v, nil
	}
	reason := strings.TrimPrefix(err.Error(), "auth: ")
	switch {
	case c.AuthMode != auth.ModeJWT:
	case keys[0] == "BRIDGE_JWT_PUBLIC_KEY":
		return nil, fmt.Errorf("%w: BRIDGE_JWT_PUBLIC_KEY=%s: %s; want a readable PEM file holding an RSA, ECDSA or Ed25519 public key or a certificate", errUsage, c.JWTPublicKey, reason)
	case keys[0] == "BRIDGE_JWT_JWKS":
		return nil, fmt.Errorf("%w: BRIDGE_JWT_JWKS=%s: %s; want a readable JSON Web Key Set file ({\"keys\":[...]})", errUsage, c.JWTJWKS, reason)
	default:
		return nil, fmt.Errorf("%w: BRIDGE_JWT_SECRET: %s", errUsage, reason)
	}
	return nil, fmt.Errorf("%w: authentication settings (BRIDGE_AUTH_MODE, BRIDGE_ANON_*, BRIDGE_JWT_*): %s", errUsage, reason)
}

// setVars lists, sorted, the names in vars whose value is not empty.
func setVars(vars map[string]string) []string {
	var set []string
	for name, v := range vars {
		if v != "" {
			set = append(set, name)
		}
	}
	slices.Sort(set)
	return set
}

// newOriginPolicy is BRIDGE_ALLOWED_ORIGINS; its errors are errUsage and
// name the entry at fault.
func newOriginPolicy(allowed []string) (*auth.OriginPolicy, error) {
	p, err := auth.NewOriginPolicy(allowed)
	if err == nil {
		return p, nil
	}
	for _, o := range allowed {
		if _, err := auth.NewOriginPolicy([]string{o}); err != nil {
			return nil, fmt.Errorf("%w: BRIDGE_ALLOWED_ORIGINS: invalid origin %q; want scheme://host[:port] without a path (https://app.example.com), a wildcard subdomain (https://*.example.com) or *", errUsage, o)
		}
	}
	return nil, fmt.Errorf("%w: BRIDGE_ALLOWED_ORIGINS: %s", errUsage, strings.TrimPrefix(err.Error(), "auth: "))
}

// newHostPolicy is BRIDGE_PUBLIC_HOSTS; its errors are errUsage and name
// the variable.
func newHostPolicy(hosts []string) (*auth.HostPolicy, error) {
	p, err := auth.NewHostPolicy(hosts)
	if err != nil {
		return nil, fmt.Errorf("%w: BRIDGE_PUBLIC_HOSTS: %s; want host or host:port entries such as ws.example.com or 10.0.0.5:8080", errUsage, strings.TrimPrefix(err.Error(), "auth: "))
	}
	return p, nil
}

// loadCerts is BRIDGE_TLS_CERT and BRIDGE_TLS_KEY, or nil without them;
// its errors are errUsage and name the variable at fault.
func loadCerts(c config) (*bridge.CertReloader, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	for _, f := range []struct{ name, path string }{{"BRIDGE_TLS_CERT", c.TLSCert}, {"BRIDGE_TLS_KEY", c.TLSKey}} {
		if _, err := os.ReadFile(f.path); err != nil {
			return nil, fmt.Errorf("%w: %s: %v; want a readable PEM file", errUsage, f.name, err)
		}
	}
	certs, err := bridge.NewCertReloader(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("%w: BRIDGE_TLS_CERT=%s with BRIDGE_TLS_KEY=%s: %v; want a PEM certificate (chain) and the PEM private key that matches it", errUsage, c.TLSCert, c.TLSKey, err)
	}
	return certs, nil
}

// prepareDataDir checks BRIDGE_DATA_DIR before the embedded nats-server
// would fail on it later and with less to say: it must be a directory,
// created when missing, that this process can write to. It returns the
// absolute path; its errors are errUsage.
func prepareDataDir(path string) (string, error) {
	const want = "point BRIDGE_DATA_DIR at a writable directory (created when missing) for the embedded nats-server's JetStream storage"
	dir, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%w: BRIDGE_DATA_DIR=%s: %v; %s", errUsage, path, err, want)
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return "", fmt.Errorf("%w: BRIDGE_DATA_DIR=%s is a file, not a directory; %s", errUsage, path, want)
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("%w: BRIDGE_DATA_DIR=%s cannot be created: %v; %s", errUsage, path, err, want)
		}
	case err != nil:
		return "", fmt.Errorf("%w: BRIDGE_DATA_DIR=%s: %v; %s", errUsage, path, err, want)
	}
	f, err := os.CreateTemp(dir, ".wsbridge-write-check-*")
	if err != nil {
		return "", fmt.Errorf("%w: BRIDGE_DATA_DIR=%s is not writable: %v; %s", errUsage, path, err, want)
	}
	f.Close()
	_ = os.Remove(f.Name())
	return dir, nil
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
