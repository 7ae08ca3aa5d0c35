// Command wsbridge is a WebSocket edge for NATS: browsers and other
// WebSocket clients subscribe and publish on NATS subjects through it.
// Configuration is by BRIDGE_* environment variables; `wsbridge -h` lists
// them. The subcommands are `wsbridge version`, `wsbridge healthcheck`
// and `wsbridge token` (a development JWT).
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/client"
	"wsbridge/netpoll"
)

// errUsage marks configuration errors: exit status 2.
var errUsage = errors.New("usage")

// version is the release this binary was built from, set with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal the default behaviour returns, so a second
	// one kills the process instead of waiting for the drain. ctx ends
	// only once that is so: the drain's log line can promise it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	context.AfterFunc(sigCtx, func() { stop(); cancel() })
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "wsbridge:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run executes the subcommand in args, or with none starts the bridge and
// serves until ctx ends, then shuts down within BRIDGE_DRAIN_TIMEOUT. When
// ready is not nil it receives the listening address once the bridge
// accepts connections (tests use it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- net.Addr) error {
	if len(args) == 0 {
		return serve(ctx, stderr, ready)
	}
	if args[0] == "token" {
		return tokenCommand(args[1:], stdout, stderr)
	}
	if len(args) > 1 {
		return fmt.Errorf("%w: unexpected argument %q after %s (see wsbridge -h)", errUsage, args[1], args[0])
	}
	switch args[0] {
	case "-h", "-help", "--help":
		return printHelp(stdout)
	case "version":
		printVersion(stdout)
		return nil
	case "healthcheck":
		return healthcheck(ctx, stdout, os.LookupEnv)
	default:
		return fmt.Errorf("%w: unknown argument %q (valid: version, healthcheck, token, -h; none starts the bridge)", errUsage, args[0])
	}
}

// serve is the bridge itself: wsbridge with no arguments. Everything a
// configuration can get wrong is checked, and both listeners are bound,
// before NATS is started or dialled: a bad setting exits 2 and a port in
// use exits 1, each at once and with nothing left running.
func serve(ctx context.Context, stderr io.Writer, ready chan<- net.Addr) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	verifier, err := newVerifier(cfg)
	if err != nil {
		return err
	}
	origins, err := newOriginPolicy(cfg.AllowedOrigins)
	if err != nil {
		return err
	}
	hosts, err := newHostPolicy(cfg.PublicHosts)
	if err != nil {
		return err
	}
	certs, err := loadCerts(cfg)
	if err != nil {
		return err
	}
	var dataDir string
	if cfg.NATSURL == "" {
		if dataDir, err = prepareDataDir(cfg.DataDir); err != nil {
			return err
		}
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
	log.Info("starting", "version", version, "go", runtime.Version(), cfg.logAttr())
	if verifier.Mode() == auth.ModeNone {
		log.Warn("BRIDGE_AUTH_MODE=none: every client is anonymous", "pub", cfg.AnonPub, "sub", cfg.AnonSub)
	}
	if netpoll.Portable {
		log.Warn("portable backend: no epoll, two goroutines per connection; fine for development, production wants Linux", "goos", runtime.GOOS)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on BRIDGE_LISTEN=%s: %w%s", cfg.Listen, err, listenHint(err))
	}
	defer ln.Close() // after Shutdown, a no-op
	var aln net.Listener
	if cfg.AdminListen != "" {
		if aln, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return fmt.Errorf("listening on BRIDGE_ADMIN_LISTEN=%s: %w%s", cfg.AdminListen, err, listenHint(err))
		}
		defer aln.Close()
	}

	// SIGHUP reloads keys; trap it before anything can send it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelError)
	reg, metrics, err := newMetrics(errorLog)
	if err != nil {
		return err
	}
	nc, natsShown, stopEmbedded, err := openNATS(cfg, dataDir, log)
	if err != nil {
		return err
	}
	defer stopEmbedded()

	demo := client.Config{AllowOrigin: origins.Allow}
	if cfg.NATSURL == "" { // embedded, a development setup: the demo page may name it
		demo.NATSURL = natsShown
	}
	// /metrics is public only while there is no admin listener to keep it.
	public := publicHandler(client.Handler(demo), metrics, cfg.AdminListen == "")

	srv, err := bridge.New(bridge.Config{
		NodeID:              cfg.NodeID,
		MaxPayload:          int64(cfg.MaxPayload),
		WriteBuffer:         int(cfg.WriteBuffer),
		MaxPendingBytes:     int64(cfg.MaxPendingBytes),
		MaxPartialBytes:     int64(cfg.MaxPartialBytes),
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
		MaxHandshakes:       cfg.MaxHandshakes,
		MaxInflightRequests: cfg.MaxInflightReqs,
		MaxInflightAcks:     cfg.MaxInflightAcks,
		MaxCatchupsPerConn:  cfg.MaxCatchups,
		CheckHost:           hosts.Allow,
		RateLimit:           cfg.RateLimit,
		RateBurst:           cfg.RateBurst,
		TLS:                 tlsConfig(certs, cfg.TLSPreferChaCha),
		Compression:         cfg.Compression,
		CompressionMin:      int(cfg.CompressionMin),
		DrainSpread:         cfg.DrainTimeout,
		ResumeWindow:        resumeWindow(cfg.ResumeWindow),
		ResumeWindowBytes:   int(cfg.ResumeBytes),
		Logger:              log,
		Handler:             public,
		Registerer:          reg,

		Rebalance:               cfg.Rebalance,
		RebalanceSlack:          cfg.RebalanceSlack,
		RebalanceRate:           cfg.RebalanceRate,
		RebalanceMinConnections: cfg.RebalanceMin,
		MaxHandshakeRate:        cfg.MaxHandshakeRate,
	}, nc)
	if err != nil {
		nc.Close()
		return err
	}
	adminErr := make(chan error, 1) // stays empty without an admin listener
	if aln != nil {
		stopAdmin := serveAdmin(aln, adminMux(metrics, clusterPage(srv)), errorLog, adminErr)
		// Runs after the drain, so metrics stay up while clients leave.
		defer stopAdmin()
		log.Info("admin listening", "addr", aln.Addr().String(), "paths", "/metrics /debug/pprof/ /healthz /cluster")
	}
	log.Info("wsbridge listening", "addr", ln.Addr().String(), "node", cfg.NodeID, "nats", natsShown)
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
		case err := <-adminErr:
			_ = srv.Shutdown(context.Background())
			return fmt.Errorf("serving BRIDGE_ADMIN_LISTEN: %w", err)
		case <-hup:
			reload(log, verifier, certs)
		}
	}
	log.Info("shutting down: closing clients and draining NATS; send the signal again to exit immediately", "timeout", cfg.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("stopped")
	return nil
}

// listenHint says what usually fixes a failed listen.
func listenHint(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return " (another process holds the port: stop it or choose another address)"
	case errors.Is(err, syscall.EACCES):
		return " (ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a port above 1023)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return " (no interface of this host has that address)"
	}
	return ""
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

// resumeWindow maps BRIDGE_RESUME_WINDOW, where 0 means none, to
// bridge.Config's, where 0 means the default.
func resumeWindow(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func tlsConfig(c *bridge.CertReloader, preferChaCha20 bool) *tls.Config {
	if c == nil {
		return nil
	}
	return c.TLSConfig(preferChaCha20)
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

// newLogger logs at BRIDGE_LOG_LEVEL in BRIDGE_LOG_FORMAT to w.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// defaultNodeID is the node name when BRIDGE_NODE_ID is unset.
func defaultNodeID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "wsbridge"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
