package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// openNATS connects to BRIDGE_NATS_URL or, when it is unset, to an
// embedded nats-server it starts first. shown names the connection for
// log lines, without passwords. stop shuts the embedded server down
// (nothing without one); call it after nc is closed.
func openNATS(cfg config, log *slog.Logger) (nc *nats.Conn, shown string, stop func(), err error) {
	urls := cfg.NATSURL
	stop = func() {}
	var embedded *natsserver.Server
	if urls == "" {
		if embedded, err = startEmbedded(cfg, log); err != nil {
			return nil, "", nil, err
		}
		stop = func() {
			embedded.Shutdown()
			embedded.WaitForShutdown()
		}
		urls = embedded.ClientURL()
		if strings.EqualFold(cfg.EmbeddedListen, "off") {
			shown = "embedded (in-process only)"
		}
	}
	if nc, err = connectNATS(cfg, urls, embedded, log); err != nil {
		stop()
		return nil, "", nil, err
	}
	if shown == "" {
		shown = redactURLs(urls)
	}
	return nc, shown, stop, nil
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
