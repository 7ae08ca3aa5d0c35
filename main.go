// Command wsbridge is a WebSocket edge for NATS: browsers and other
// WebSocket clients subscribe and publish on NATS subjects through it.
// Configuration is by BRIDGE_* environment variables; `wsbridge -h` lists
// them. `wsbridge version` and `wsbridge healthcheck` are the only
// subcommands.
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
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wsbridge/auth"
	"wsbridge/bridge"
	"wsbridge/client"
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

const usageHeader = `wsbridge: a WebSocket edge for NATS.

Usage:
  wsbridge              serve, configured by the environment variables below
  wsbridge version      print the version and build information
  wsbridge healthcheck  GET /healthz on BRIDGE_LISTEN; exit 0 on 200, else 1 (for Docker HEALTHCHECK)
  wsbridge -h           print this help

Environment variables:

`

// run executes the subcommand in args, or with none starts the bridge and
// serves until ctx ends, then shuts down within BRIDGE_DRAIN_TIMEOUT. When
// ready is not nil it receives the listening address once the bridge
// accepts connections (tests use it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- net.Addr) error {
	if len(args) == 0 {
		return serve(ctx, stderr, ready)
	}
	if len(args) > 1 {
		return fmt.Errorf("%w: unexpected argument %q after %s (see wsbridge -h)", errUsage, args[1], args[0])
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usageHeader)
		return envconfig.Usagef("BRIDGE", &config{}, stdout, usageFormat)
	case "version":
		printVersion(stdout)
		return nil
	case "healthcheck":
		return healthcheck(ctx, stdout, os.LookupEnv)
	default:
		return fmt.Errorf("%w: unknown argument %q (valid: version, healthcheck, -h; none starts the bridge)", errUsage, args[0])
	}
}

// serve is the bridge itself: wsbridge with no arguments.
func serve(ctx context.Context, stderr io.Writer, ready chan<- net.Addr) error {
	var cfg config
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
	log.Info("starting", "version", version, "go", runtime.Version(), cfg.logAttr())

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

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoGauge(),
	} {
		if err := reg.Register(c); err != nil {
			nc.Close()
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelError)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: errorLog})
	// /metrics is public only while there is no admin listener to keep it.
	public := client.Handler()
	if cfg.AdminListen == "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics)
		mux.Handle("/", public)
		public = mux
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		nc.Close()
		return fmt.Errorf("listening on BRIDGE_LISTEN %s: %w", cfg.Listen, err)
	}
	var aln net.Listener
	if cfg.AdminListen != "" {
		if aln, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			ln.Close()
			nc.Close()
			return fmt.Errorf("listening on BRIDGE_ADMIN_LISTEN %s: %w", cfg.AdminListen, err)
		}
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
		Handler:             public,
		Registerer:          reg,
	}, nc)
	if err != nil {
		ln.Close()
		if aln != nil {
			aln.Close()
		}
		nc.Close()
		return err
	}
	adminErr := make(chan error, 1) // stays empty without an admin listener
	if aln != nil {
		admin := &http.Server{
			Handler:           adminMux(metrics),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          errorLog,
		}
		adminDone := make(chan struct{})
		go func() {
			defer close(adminDone)
			if err := admin.Serve(aln); !errors.Is(err, http.ErrServerClosed) {
				adminErr <- err
			}
		}()
		// Runs after the drain, so metrics stay up while clients leave.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if admin.Shutdown(sctx) != nil {
				admin.Close() // a long /debug/pprof/profile or trace
			}
			<-adminDone
		}()
		log.Info("admin listening", "addr", aln.Addr().String(), "paths", "/metrics /debug/pprof/ /healthz")
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
	// nats.go calls ConnectHandler for the first connection, whether made
	// at once or by a retry; once also covers versions that skip the
	// immediate case.
	var once sync.Once
	connected := func(nc *nats.Conn) {
		once.Do(func() {
			log.Info("NATS connected", "url", redactURLs(nc.ConnectedUrlRedacted()), "server", nc.ConnectedServerName())
		})
	}
	opts := []nats.Option{
		nats.ConnectHandler(connected),
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
	if nc.IsConnected() {
		connected(nc)
	} else {
		log.Warn("NATS not reachable yet; retrying in the background", "nats", redactURLs(urls))
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

// adminMux serves the internal endpoints of BRIDGE_ADMIN_LISTEN. pprof
// is registered here by hand: http.DefaultServeMux is never served.
func adminMux(metrics http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// buildInfoGauge is wsbridge_build_info: always 1, the build in its labels.
func buildInfoGauge() prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wsbridge_build_info",
		Help: "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{
			"version":   version,
			"goversion": runtime.Version(),
			"revision":  cmp.Or(vcsSetting("vcs.revision"), "unknown"),
		},
	})
	g.Set(1)
	return g
}

// vcsSetting is a vcs.* setting the go command stamped into the binary,
// or "" (go run, -buildvcs=false, or a build without .git).
func vcsSetting(key string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// printVersion is wsbridge version.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wsbridge %s\n", version)
	fmt.Fprintf(w, "go: %s\n", runtime.Version())
	fmt.Fprintf(w, "platform: %s/%s\n", runtime.GOOS, runtime.GOARCH)
	for _, key := range []string{"vcs.revision", "vcs.time", "vcs.modified"} {
		if v := vcsSetting(key); v != "" {
			fmt.Fprintf(w, "%s: %s\n", key, v)
		}
	}
}

// healthcheck is wsbridge healthcheck, for Docker's HEALTHCHECK in an
// image without curl: it asks this node's own listener for /healthz.
// Every failure is exit status 1 (Docker reserves 2).
func healthcheck(ctx context.Context, stdout io.Writer, lookupEnv func(string) (string, bool)) error {
	url, err := healthURL(lookupEnv)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	c := &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			Proxy: nil, // it talks to itself
			// On loopback the certificate, issued for the public name,
			// cannot match; there is no one in between to verify.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		},
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s", url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: GET %s: %s\n", url, resp.Status)
	return nil
}

// healthURL is /healthz on the address BRIDGE_LISTEN binds, reached over
// loopback when it binds every interface, and https with BRIDGE_TLS_CERT.
func healthURL(lookupEnv func(string) (string, bool)) (string, error) {
	listen, ok := lookupEnv("BRIDGE_LISTEN")
	if !ok {
		f, _ := reflect.TypeFor[config]().FieldByName("Listen")
		listen = f.Tag.Get("default")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("BRIDGE_LISTEN: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if cert, _ := lookupEnv("BRIDGE_TLS_CERT"); cert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/healthz", nil
}
