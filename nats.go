package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// openNATS connects to BRIDGE_NATS_URL or, when it is unset, to an
// embedded nats-server it starts first, storing JetStream in dataDir
// (checked by prepareDataDir). shown names the connection for log lines,
// without passwords. stop shuts the embedded server down (nothing without
// one); call it after nc is closed.
func openNATS(cfg config, dataDir string, log *slog.Logger) (nc *nats.Conn, shown string, stop func(), err error) {
	urls := cfg.NATSURL
	stop = func() {}
	var embedded *natsserver.Server
	if urls == "" {
		if embedded, err = startEmbedded(cfg, dataDir, log); err != nil {
			return nil, "", nil, err
		}
		stop = func() {
			embedded.Shutdown()
			embedded.WaitForShutdown()
		}
		urls = embedded.ClientURL()
		if inProcessOnly(cfg) {
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

// inProcessOnly reports whether the embedded nats-server has no listener.
func inProcessOnly(cfg config) bool {
	return cfg.NATSURL == "" && strings.EqualFold(cfg.EmbeddedListen, "off")
}

// embeddedStartTimeout bounds the wait for the embedded nats-server when
// it neither becomes ready nor reports an error.
const embeddedStartTimeout = 15 * time.Second

// startEmbedded runs nats-server in-process with JetStream in dataDir.
// The server's own errors (a port in use, a storage directory it cannot
// use) end the wait at once and are returned naming the variable to fix.
func startEmbedded(cfg config, dataDir string, log *slog.Logger) (*natsserver.Server, error) {
	opts := &natsserver.Options{
		ServerName: "wsbridge-embedded",
		JetStream:  true,
		StoreDir:   dataDir,
		NoSigs:     true,
	}
	if inProcessOnly(cfg) {
		opts.DontListen = true
	} else {
		host, port, err := splitListen(cfg.EmbeddedListen)
		if err != nil { // validate has checked it
			return nil, fmt.Errorf("%w: BRIDGE_EMBEDDED_NATS_LISTEN=%q: %v", errUsage, cfg.EmbeddedListen, err)
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w (BRIDGE_DATA_DIR=%s, BRIDGE_EMBEDDED_NATS_LISTEN=%s)", err, cfg.DataDir, cfg.EmbeddedListen)
	}
	sl := &serverLog{log: log.With("component", "nats-server"), fatal: make(chan string, 1)}
	ns.SetLoggerV2(sl, false, false, false)
	go ns.Start()
	deadline := time.Now().Add(embeddedStartTimeout)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		var cause string
		select {
		case cause = <-sl.fatal:
		default:
			if time.Now().Before(deadline) {
				continue
			}
			cause = fmt.Sprintf("not ready after %v", embeddedStartTimeout)
		}
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats-server did not start: %s (%s)", cause, embeddedHint(cfg, cause))
	}
	listen := "off (in-process only)"
	if addr := ns.Addr(); addr != nil && !opts.DontListen {
		listen = addr.String()
	}
	log.Info("embedded nats-server started", "listen", listen, "jetstream", dataDir)
	return ns, nil
}

// embeddedHint names the variable that most likely fixes cause.
func embeddedHint(cfg config, cause string) string {
	switch {
	case strings.Contains(cause, "listen"):
		return fmt.Sprintf("BRIDGE_EMBEDDED_NATS_LISTEN=%s: free the port, choose another address, or set off for in-process connections only", cfg.EmbeddedListen)
	case strings.Contains(cause, "JetStream"):
		return fmt.Sprintf("BRIDGE_DATA_DIR=%s: point it at a writable directory with free space", cfg.DataDir)
	}
	return fmt.Sprintf("check BRIDGE_EMBEDDED_NATS_LISTEN=%s and BRIDGE_DATA_DIR=%s", cfg.EmbeddedListen, cfg.DataDir)
}

// serverLog is the embedded nats-server's logger. Notices go to debug (its
// start banner is long); warnings and errors keep their level. nats-server
// reports a failed start by calling Fatalf and returning: the first such
// message goes to fatal, for startEmbedded.
type serverLog struct {
	log   *slog.Logger
	fatal chan string // capacity 1
}

func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	select {
	case l.fatal <- msg:
	default:
		l.log.Error(msg) // after the first: nobody waits for it
	}
}

// Retries of an unreachable NATS are logged for the first few attempts,
// then once per failureLogEvery with the count of lines suppressed.
const (
	failuresLogged  = 3
	failureLogEvery = 30 * time.Second
)

// linkLog logs the NATS connection's life: the first connect, every
// disconnect with its cause, failed attempts (rate-limited) and the
// reconnect that ends an outage. nats.go calls its methods from one
// goroutine; mu also covers connectNATS's own calls.
type linkLog struct {
	log       *slog.Logger
	inProcess bool             // the embedded server without a listener: no URL to show
	now       func() time.Time // time.Now; tests set it

	mu         sync.Mutex
	connected  bool      // once connected for the first time
	downSince  time.Time // start of the outage (or of the process)
	attempts   int       // failed attempts in this outage
	suppressed int       // failure lines not logged since lastLogged
	lastLogged time.Time
}

// where names the server nc is connected to, for a log line.
func (l *linkLog) where(nc *nats.Conn) string {
	if l.inProcess {
		return "in-process"
	}
	return redactURLs(nc.ConnectedUrlRedacted())
}

// up is the first connection (ConnectHandler, possibly after retries)
// and every reconnection (ReconnectHandler).
func (l *linkLog) up(nc *nats.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	attrs := []any{"url", l.where(nc), "server", nc.ConnectedServerName()}
	if l.attempts > 0 || l.connected {
		attrs = append(attrs, "failed_attempts", l.attempts, "down_for", l.now().Sub(l.downSince).Round(time.Millisecond).String())
	}
	if l.connected {
		l.log.Info("NATS reconnected", attrs...)
	} else {
		l.log.Info("NATS connected", attrs...)
	}
	l.connected, l.attempts, l.suppressed = true, 0, 0
}

// down is DisconnectErrHandler: err is nil when the connection is closed
// on purpose (shutdown), which is no warning.
func (l *linkLog) down(_ *nats.Conn, err error) {
	if err == nil {
		l.log.Debug("NATS connection closed")
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.downSince, l.attempts, l.suppressed, l.lastLogged = l.now(), 0, 0, time.Time{}
	l.log.Warn("NATS disconnected; reconnecting", "err", err.Error())
}

// failed is ReconnectErrHandler: one failed attempt to (re)connect.
func (l *linkLog) failed(_ *nats.Conn, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts++
	if errors.Is(err, nats.ErrNoServers) && !l.connected && l.attempts == 1 {
		// nats.go's first attempt hides the cause ("connection refused")
		// behind ErrNoServers; the retries carry it.
		return
	}
	now := l.now()
	if l.attempts > failuresLogged && now.Sub(l.lastLogged) < failureLogEvery {
		l.suppressed++
		return
	}
	attrs := []any{"err", err.Error(), "attempt", l.attempts, "down_for", now.Sub(l.downSince).Round(time.Millisecond).String()}
	if l.suppressed > 0 {
		attrs = append(attrs, "suppressed", l.suppressed)
	}
	if l.attempts == failuresLogged {
		attrs = append(attrs, "next", fmt.Sprintf("one line per %v", failureLogEvery))
	}
	l.log.Warn("NATS connection attempt failed; retrying", attrs...)
	l.suppressed, l.lastLogged = 0, now
}

// connectNATS connects once and then reconnects forever. A bridge that
// starts before NATS comes up serves /healthz and reports /readyz 503.
//
// The handlers are set here, as options: bridge.New chains its own onto
// nc.Opts, so nothing may call nc.Set*Handler later.
func connectNATS(cfg config, urls string, embedded *natsserver.Server, log *slog.Logger) (*nats.Conn, error) {
	ll := &linkLog{log: log, inProcess: inProcessOnly(cfg), now: time.Now, downSince: time.Now()}
	// nats.go calls ConnectHandler for the first connection when it is
	// made by a retry, not when Connect makes it at once: once covers
	// both.
	var once sync.Once
	connected := func(nc *nats.Conn) { once.Do(func() { ll.up(nc) }) }
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
		// nats.go's defaults (a ping every 2 minutes, a 1-minute write
		// timeout that only logs) leave a frozen or blackholed server
		// unnoticed for minutes. Two unanswered pings, or one write
		// blocked for an interval, drop the link; the reconnect then
		// walks the other URLs of BRIDGE_NATS_URL (nats.go shuffles the
		// pool and skips the server it just lost).
		nats.PingInterval(cfg.NATSPingInterval),
		nats.MaxPingsOutstanding(2),
		nats.FlusherTimeout(cfg.NATSPingInterval),
		nats.ReconnectOnFlusherError(),
		nats.DisconnectErrHandler(ll.down),
		nats.ReconnectErrHandler(ll.failed),
		nats.ReconnectHandler(ll.up),
		// nats.go gives up for good after the same auth error twice in a
		// row, which would leave the node unready until restarted; keep
		// retrying, so that fixing the credentials on the NATS side heals
		// it. Those failures come to ErrorHandler, not ReconnectErrHandler.
		nats.IgnoreAuthErrorAbort(),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			if sub == nil && isAuthError(err) && !nc.IsConnected() {
				ll.failed(nc, err)
				return
			}
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("NATS async error", "subject", subject, "err", err)
		}),
	}
	if embedded != nil && inProcessOnly(cfg) {
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
		log.Warn("NATS not reachable yet; retrying in the background, /readyz answers 503 until connected", "nats", redactURLs(urls))
	}
	return nc, nil
}

// isAuthError reports whether NATS refused the connection's credentials.
func isAuthError(err error) bool {
	for _, e := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
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
