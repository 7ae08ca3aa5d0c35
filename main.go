// Command wsbridge is a WebSocket edge for NATS: browsers and other
// WebSocket clients subscribe and publish on NATS subjects through it.
// Configuration is by BRIDGE_* environment variables; `wsbridge -h` lists
// them.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served on BRIDGE_DEBUG_LISTEN only
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/client"
)

// errUsage marks configuration errors: exit status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "wsbridge:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run starts the bridge and serves until ctx ends, then shuts down within
// BRIDGE_DRAIN_TIMEOUT. When ready is not nil it receives the listening
// address once the bridge accepts connections (tests use it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- net.Addr) error {
	var cfg config
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprintln(stdout, "wsbridge: a WebSocket edge for NATS. Configure it with these environment variables:")
			fmt.Fprintln(stdout)
			return envconfig.Usagef("BRIDGE", &cfg, stdout, usageFormat)
		default:
			return fmt.Errorf("%w: unknown argument %q (wsbridge takes no arguments; see wsbridge -h)", errUsage, a)
		}
	}
	if err := envconfig.Process("BRIDGE", &cfg); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log := newLogger(cfg, stderr)
	if os.Getenv("GOGC") == "" {
		// Most of a bridge's heap is long-lived connection state and its
		// hot paths allocate little, so a tighter heap goal costs little
		// CPU and keeps RSS per connection down. GOGC still overrides.
		debug.SetGCPercent(50)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}

	urls := cfg.NATSURL
	shown := "" // how the log names the NATS connection
	var embedded *natsserver.Server
	if urls == "" {
		ns, err := startEmbedded(cfg, log)
		if err != nil {
			return err
		}
		embedded = ns
		defer func() {
			embedded.Shutdown()
			embedded.WaitForShutdown()
		}()
		urls = ns.ClientURL()
		if strings.EqualFold(cfg.EmbeddedListen, "off") {
			shown = "embedded (in-process only)"
		}
	}
	nc, err := connectNATS(cfg, urls, embedded, log)
	if err != nil {
		return err
	}

	verifier, err := auth.New(auth.Config{
		Mode:             cfg.AuthMode,
		AnonPub:          cfg.AnonPub,
		AnonSub:          cfg.AnonSub,
		JWTSecret:        cfg.JWTSecret,
		JWTPublicKeyFile: cfg.JWTPublicKey,
		JWKSFile:         cfg.JWTJWKS,
		Issuer:           cfg.JWTIssuer,
		Audience:         cfg.JWTAudience,
		Leeway:           cfg.JWTLeeway,
	})
	if err != nil {
		nc.Close()
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if verifier.Mode() == auth.ModeNone {
		log.Warn("BRIDGE_AUTH_MODE=none: every client is anonymous", "pub", cfg.AnonPub, "sub", cfg.AnonSub)
	}
	origins, err := auth.NewOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		nc.Close()
		return fmt.Errorf("%w: BRIDGE_ALLOWED_ORIGINS: %v", errUsage, err)
	}
	var certs *bridge.CertReloader
	if cfg.TLSCert != "" {
		if certs, err = bridge.NewCertReloader(cfg.TLSCert, cfg.TLSKey); err != nil {
			nc.Close()
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}

	// SIGHUP reloads keys; trap it before anything can send it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		nc.Close()
		return fmt.Errorf("listening on BRIDGE_LISTEN %s: %w", cfg.Listen, err)
	}
	srv, err := bridge.New(bridge.Config{
		NodeID:              cfg.NodeID,
		MaxPayload:          int64(cfg.MaxPayload),
		WriteBuffer:         int(cfg.WriteBuffer),
		HandshakeTimeout:    cfg.HandshakeTimeout,
		PingInterval:        cfg.PingInterval,
		MaxSubscriptions:    cfg.MaxSubscriptions,
		RequestTimeout:      cfg.RequestTimeout,
		MaxRequestTimeout:   cfg.MaxReqTimeout,
		Workers:             cfg.Workers,
		Auth:                authorizer{verifier},
		CheckOrigin:         origins.Allow,
		TokenCookie:         cfg.JWTCookie,
		MaxConnections:      cfg.MaxConns,
		MaxConnectionsPerIP: cfg.MaxConnsPerIP,
		RateLimit:           cfg.RateLimit,
		RateBurst:           cfg.RateBurst,
		TLS:                 tlsConfig(certs),
		Compression:         cfg.Compression,
		CompressionMin:      int(cfg.CompressionMin),
		Logger:              log,
		Handler:             client.Handler(),
	}, nc)
	if err != nil {
		ln.Close()
		nc.Close()
		return err
	}
	if cfg.DebugListen != "" {
		dln, err := net.Listen("tcp", cfg.DebugListen)
		if err != nil {
			ln.Close()
			nc.Close()
			return fmt.Errorf("listening on BRIDGE_DEBUG_LISTEN %s: %w", cfg.DebugListen, err)
		}
		defer dln.Close()
		// net/http/pprof registers on the default mux, served only here.
		go func() { _ = http.Serve(dln, http.DefaultServeMux) }()
		log.Info("pprof listening", "addr", dln.Addr().String())
	}
	log.Info("wsbridge listening", "addr", ln.Addr().String(), "node", cfg.NodeID, "nats", cmp.Or(shown, redactURLs(urls)))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if ready != nil {
		ready <- ln.Addr()
	}

wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err := <-serveErr:
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			reload(log, verifier, certs)
		}
	}
	log.Info("shutting down: closing clients and draining NATS", "timeout", cfg.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("stopped")
	return nil
}

// authorizer adapts auth.Verifier to the bridge's interface.
type authorizer struct{ v *auth.Verifier }

func (a authorizer) Authenticate(token string) (bridge.Identity, error) {
	id, err := a.v.Verify(token)
	if err != nil {
		return nil, err
	}
	return id, nil
}

var _ bridge.Authorizer = authorizer{}

func tlsConfig(c *bridge.CertReloader) *tls.Config {
	if c == nil {
		return nil
	}
	return c.TLSConfig()
}

// reload re-reads key material on SIGHUP; failures keep the old keys.
func reload(log *slog.Logger, v *auth.Verifier, certs *bridge.CertReloader) {
	if err := v.Reload(); err != nil {
		log.Error("SIGHUP: keeping the old JWT keys", "err", err)
	} else {
		log.Info("SIGHUP: JWT keys reloaded")
	}
	if certs != nil {
		if err := certs.Reload(); err != nil {
			log.Error("SIGHUP: keeping the old TLS certificate", "err", err)
		} else {
			log.Info("SIGHUP: TLS certificate reloaded")
		}
	}
}

const usageFormat = `{{range .}}{{usage_key .}}
    {{usage_description .}}{{if usage_default .}} (default {{usage_default .}}){{end}}
{{end}}`

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func defaultNodeID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "wsbridge"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// startEmbedded runs nats-server in-process with JetStream on disk.
func startEmbedded(cfg config, log *slog.Logger) (*natsserver.Server, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("BRIDGE_DATA_DIR: %w", err)
	}
	opts := &natsserver.Options{
		ServerName: "wsbridge-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
	}
	if strings.EqualFold(cfg.EmbeddedListen, "off") {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.EmbeddedListen)
		if err != nil {
			return nil, fmt.Errorf("%w: BRIDGE_EMBEDDED_NATS_LISTEN: %v", errUsage, err)
		}
		opts.Host = host
		if opts.Port, err = net.LookupPort("tcp", port); err != nil {
			return nil, fmt.Errorf("%w: BRIDGE_EMBEDDED_NATS_LISTEN: %v", errUsage, err)
		}
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats-server did not start (is %s in use? set BRIDGE_EMBEDDED_NATS_LISTEN)", cfg.EmbeddedListen)
	}
	log.Info("embedded nats-server started", "listen", cfg.EmbeddedListen, "jetstream", dir)
	return ns, nil
}

// connectNATS connects once and then reconnects forever. A bridge that
// starts before NATS comes up serves /healthz and reports /readyz 503.
func connectNATS(cfg config, urls string, embedded *natsserver.Server, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("wsbridge " + cfg.NodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		// Fail publishes while disconnected instead of buffering them:
		// clients get "unavailable" and can retry elsewhere.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", redactURLs(nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("NATS async error", "subject", subject, "err", err)
		}),
	}
	if embedded != nil && strings.EqualFold(cfg.EmbeddedListen, "off") {
		opts = append(opts, nats.InProcessServer(embedded))
	}
	if cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.NATSCreds))
	}
	if cfg.NATSToken != "" {
		opts = append(opts, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", redactURLs(urls), err)
	}
	return nc, nil
}

// redactURLs hides passwords in NATS URLs before they reach a log line.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "[REDACTED]" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
