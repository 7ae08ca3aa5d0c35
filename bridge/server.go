package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"wsbridge/internal/cluster"
	"wsbridge/internal/memtrim"
	"wsbridge/internal/metrics"
	"wsbridge/internal/publish"
	"wsbridge/internal/ratelimit"
	"wsbridge/internal/streams"
	"wsbridge/internal/subscribe"
	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
	"wsbridge/netpoll"
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// NodeID names this node in hello; required.
	NodeID string
	// MaxPayload caps an assembled client message and a published payload,
	// in bytes; zero means 1 MiB.
	MaxPayload int64
	// WriteBuffer caps the bytes queued for one client before it is cut as
	// a slow consumer; zero means 1 MiB.
	WriteBuffer int
	// HandshakeTimeout bounds the HTTP upgrade; zero means 5s.
	HandshakeTimeout time.Duration
	// PingInterval is how often the server pings; a client silent for two
	// intervals is closed. Zero means 30s.
	PingInterval time.Duration
	// MaxSubscriptions per connection; zero means 256.
	MaxSubscriptions int
	// RequestTimeout is the default req timeout; zero means 5s.
	RequestTimeout time.Duration
	// MaxRequestTimeout caps a client's timeout_ms; zero means 60s.
	MaxRequestTimeout time.Duration
	// Workers is the netpoll worker count; zero means 4×GOMAXPROCS.
	Workers int
	// Auth authenticates clients; nil means AllowAll.
	Auth Authorizer
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// CheckOrigin reports whether a browser Origin may connect, given the
	// request's Host and whether it came over TLS; requests without Origin
	// are not checked. Nil allows every origin.
	CheckOrigin func(origin, host string, tls bool) bool
	// CheckHost reports whether a handshake's Host header names this
	// service (DNS rebinding defence); a refused one gets 403. Nil allows
	// every Host.
	CheckHost func(host string) bool
	// TokenCookie names a cookie that may carry the token; empty disables
	// cookies.
	TokenCookie string
	// MaxConnections caps open connections (503 at the handshake); zero
	// means unlimited.
	MaxConnections int
	// MaxInflightRequests caps a connection's requests awaiting a reply
	// or their timeout; beyond it req answers too_many_requests. Zero
	// means 64.
	MaxInflightRequests int
	// MaxInflightAcks caps a connection's acked publishes awaiting their
	// PubAck; beyond it an acked pub answers too_many_requests. Zero
	// means 64.
	MaxInflightAcks int
	// MaxCatchupsPerConn caps a connection's JetStream catch-ups running
	// at once; its further stream subscriptions wait their turn. Zero
	// means 4.
	MaxCatchupsPerConn int
	// MaxPendingBytes caps the messages taken from NATS and not yet
	// queued to clients, node-wide, in bytes; beyond it messages are
	// dropped (the bridge is a slow consumer). Zero means 64 MiB.
	MaxPendingBytes int64
	// MaxPartialBytes caps, node-wide, the bytes of client messages
	// still being assembled (fragments, or a frame read in parts); a
	// message that would pass it closes its connection with 1013. Zero
	// means 256 MiB.
	MaxPartialBytes int64
	// MaxHandshakes caps sockets accepted but not yet upgraded (TLS and
	// HTTP handshakes in progress, idle keep-alive HTTP connections);
	// sockets beyond it are closed at once. Zero means 1024.
	MaxHandshakes int
	// MaxConnectionsPerIP caps connections from one remote address (429);
	// zero means unlimited.
	MaxConnectionsPerIP int
	// RateLimit is the sustained inbound messages per second allowed per
	// connection, RateBurst the bucket depth; zero RateLimit disables it.
	RateLimit float64
	RateBurst int
	// Compression negotiates permessage-deflate (RFC 7692, no context
	// takeover) with clients that offer it.
	Compression bool
	// CompressionMin is the smallest message, in bytes, sent compressed;
	// zero means 512.
	CompressionMin int
	// TLS, when set, makes the listener serve wss:// and https:// only.
	TLS *tls.Config
	// Handler serves HTTP paths the bridge does not own (/, /metrics…);
	// nil answers 404.
	Handler http.Handler
	// DrainSpread spreads Shutdown's 1001 closes evenly over this long, so
	// that the rest of the fleet absorbs the reconnects gradually; it is
	// capped by Shutdown's deadline less a reserve for draining NATS (a
	// tenth, at most 2s). Zero closes every client at once.
	DrainSpread time.Duration
	// AnnounceInterval is how often the node announces its load to its
	// peers on $WSBRIDGE.cluster.<node> (internal/cluster); zero means 1s.
	AnnounceInterval time.Duration
	// Rebalance lets the node shed clients with 1012 "rebalance" while it
	// holds more than the mean of the ready nodes × (1 + RebalanceSlack),
	// down to the mean (cluster.Shedder). False never sheds.
	Rebalance bool
	// RebalanceSlack is the fraction above the mean that starts shedding;
	// zero means 0.10.
	RebalanceSlack float64
	// RebalanceRate is how many clients per second a shedding node closes;
	// zero means 50.
	RebalanceRate float64
	// RebalanceMinConnections: a node holding this many connections or
	// fewer never sheds. Zero means no minimum.
	RebalanceMinConnections int
	// MaxHandshakeRate caps WebSocket upgrades per second, with a burst of
	// one second's worth; beyond it the handshake answers 503 with
	// Retry-After. Zero means unlimited.
	MaxHandshakeRate float64
	// ResumeWindow is how many of its most recent messages each JetStream
	// feed (one per stream and subject with subscribers on the node) keeps
	// in memory, so that a client resuming with "after" inside it is
	// served without reading JetStream; zero means 10,000, negative keeps
	// none.
	ResumeWindow int
	// ResumeWindowBytes bounds each feed's window in bytes; zero means
	// 8 MiB, negative means no byte bound.
	ResumeWindowBytes int
	// Registerer, when set, receives the server's Prometheus collectors
	// (the wsbridge_* metrics). Nil registers nothing; Stats still works.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1 << 20
	}
	if c.WriteBuffer <= 0 {
		c.WriteBuffer = 1 << 20
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 256
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.MaxRequestTimeout <= 0 {
		c.MaxRequestTimeout = 60 * time.Second
	}
	if c.MaxInflightRequests <= 0 {
		c.MaxInflightRequests = 64
	}
	if c.MaxInflightAcks <= 0 {
		c.MaxInflightAcks = 64
	}
	if c.MaxCatchupsPerConn <= 0 {
		c.MaxCatchupsPerConn = 4
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 64 << 20
	}
	if c.MaxPartialBytes <= 0 {
		c.MaxPartialBytes = 256 << 20
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 1024
	}
	if c.CompressionMin <= 0 {
		c.CompressionMin = 512
	}
	if c.ResumeWindow == 0 {
		c.ResumeWindow = 10000
	}
	if c.ResumeWindowBytes == 0 {
		c.ResumeWindowBytes = 8 << 20
	}
	if c.RateLimit > 0 && c.RateBurst <= 0 {
		c.RateBurst = max(1, int(c.RateLimit))
	}
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = time.Second
	}
	if c.RebalanceSlack <= 0 {
		c.RebalanceSlack = 0.10
	}
	if c.RebalanceRate <= 0 {
		c.RebalanceRate = 50
	}
	if c.Auth == nil {
		c.Auth = AllowAll{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is a WebSocket edge for one NATS connection. It is safe for
// concurrent use.
type Server struct {
	cfg     Config
	nc      *nats.Conn
	log     *slog.Logger
	poller  *netpoll.Poller
	pub     *streams.Publisher
	streams *streams.Streams
	metrics *metrics.Counters

	out *publish.Outbox

	// Announcements and the view of peers (internal/cluster).
	cluster *cluster.Membership
	rebal   *cluster.Shedder  // shedding (internal/cluster; glue in rebalance.go)
	hsRate  ratelimit.Limiter // MaxHandshakeRate (ratelimit.go)

	// The NATS link as client paths see it (natslink.go).
	natsUp        atomic.Bool
	everUp        atomic.Bool  // connected at least once: later ups are reconnects
	natsDownSince atomic.Int64 // unix nanoseconds; 0 while up

	helloUp, helloDown []byte   // the hello frames, by NATS state
	nodeHeader         []string // the Wsbridge-Node header value, shared by every message
	maxFrame           int64    // the largest frame sent to a client (hello's max_frame)
	refusalLog         *ratelimit.Log
	fdLog              *ratelimit.Log // accept and descriptor failures
	errLog             *ratelimit.Log // unexpected NATS errors on client operations
	inHandshake        atomic.Int64   // sockets counted against MaxHandshakes
	pending            atomic.Int64   // bytes in the dispatchers' queues (MaxPendingBytes)
	partials           *wsframe.Budget
	epoch              time.Time // Server.clock's origin

	slots ratelimit.Slots

	imu            sync.Mutex
	interests      map[ikey]*interest
	dispatchers    []*dispatcher
	nextDispatcher int // guarded by imu

	connsMu sync.Mutex
	conns   []*conn
	trim    *memtrim.Trimmer // memory back to the OS after waves of connections
	empty   chan struct{}    // closed when draining and conns is empty

	flusher    *subscribe.Flusher // makes, ends and confirms core subscriptions
	lnMu       sync.Mutex
	listeners  []net.Listener
	httpLn     *connListener
	httpSrv    *http.Server
	draining   atomic.Bool
	done       chan struct{}
	wg         sync.WaitGroup
	handshakes sync.WaitGroup
	stopOnce   sync.Once

	// beforeRegister, set by tests only, runs in adopt just before
	// register: the window in which a Shutdown may begin unseen.
	beforeRegister atomic.Pointer[func()]
}

// refusalLogBurst is how many refused handshakes are logged in a burst
// before the log falls back to one line per second.
const refusalLogBurst = 20

// New builds a Server on nc, which it owns from then on: Shutdown drains
// and closes it.
func New(cfg Config, nc *nats.Conn) (*Server, error) {
	cfg.setDefaults()
	if cfg.NodeID == "" {
		return nil, errors.New("bridge: Config.NodeID is required")
	}
	s := &Server{
		epoch:      time.Now(),
		refusalLog: ratelimit.NewLog(refusalLogBurst, time.Second),
		fdLog:      ratelimit.NewLog(refusalLogBurst, time.Second),
		errLog:     ratelimit.NewLog(refusalLogBurst, time.Second),
		cfg:        cfg,
		nc:         nc,
		log:        cfg.Logger,
		metrics:    metrics.New(),
		trim:       memtrim.New(0, nil),
		slots:      ratelimit.Slots{Max: cfg.MaxConnections, MaxPerAddr: cfg.MaxConnectionsPerIP},
		interests:  make(map[ikey]*interest),
		flusher:    subscribe.New(nc),
		done:       make(chan struct{}),
		empty:      make(chan struct{}),
	}
	presizeFDTable()
	// NATS's own max_payload bounds what reaches clients; before the
	// first connection it is unknown, and NATS's default is 1 MiB.
	s.maxFrame = wire.MaxFrame(max(cfg.MaxPayload, nc.MaxPayload(), 1<<20))
	s.helloUp = wsframe.AppendFrame(nil, ws.OpText, wire.AppendHello(nil, cfg.NodeID, cfg.MaxPayload, s.maxFrame, true))
	s.helloDown = wsframe.AppendFrame(nil, ws.OpText, wire.AppendHello(nil, cfg.NodeID, cfg.MaxPayload, s.maxFrame, false))
	s.partials = wsframe.NewBudget(cfg.MaxPartialBytes)
	s.nodeHeader = []string{cfg.NodeID}
	// Listen before reading the state, so no change falls in between.
	natsStatus := nc.StatusChanged(nats.CONNECTED, nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	s.natsUp.Store(nc.IsConnected())
	s.everUp.Store(s.natsUp.Load())
	if !s.natsUp.Load() {
		s.natsDownSince.Store(time.Now().UnixNano())
	}
	p, err := netpoll.New(netpoll.Config{
		Workers:     cfg.Workers,
		OnWaitError: func(err error) { s.log.Error("epoll wait failed", "err", err) },
	})
	if err != nil {
		return nil, err
	}
	s.poller = p
	// undo ends what New made before a failure: nc stays the caller's,
	// without our subscriptions.
	undo := func(err error) (*Server, error) {
		if s.cluster != nil {
			s.cluster.Close()
		}
		if s.out != nil {
			s.out.Close()
		}
		if s.streams != nil {
			s.streams.Shutdown(context.Background()) // nothing started: no wait
		}
		_ = p.Close()
		return nil, err
	}
	if s.pub, s.streams, err = newJetStream(s); err != nil {
		return undo(err)
	}
	if s.out, err = newOutbox(s); err != nil {
		return undo(err)
	}
	s.httpLn = newConnListener()
	s.httpSrv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       30 * time.Second, // idle keep-alives hold a MaxHandshakes place
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.rebal, err = newShedder(s); err != nil {
		return undo(err)
	}
	if s.cluster, err = newMembership(s); err != nil {
		return undo(fmt.Errorf("bridge: subscribing to announcements: %w", err))
	}
	s.dispatchers = newDispatchers(s)
	// The collector reads all of the above: register it last, before
	// anything starts.
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newCollector(s)); err != nil {
			return undo(fmt.Errorf("bridge: registering metrics: %w", err))
		}
	}
	s.wg.Add(7 + 2*len(s.dispatchers))
	go func() { defer s.wg.Done(); s.cluster.Run(s.done) }()
	go func() { defer s.wg.Done(); s.rebal.Run(s.done) }()
	go s.watchNATS(natsStatus)
	go func() { defer s.wg.Done(); s.pub.Run(s.done) }()
	s.out.Start()
	for _, d := range s.dispatchers {
		go d.intake()
		go d.run()
	}
	go func() { defer s.wg.Done(); _ = s.httpSrv.Serve(s.httpLn) }()
	go s.heartbeat()
	go func() { defer s.wg.Done(); s.flusher.Run(s.done) }()
	return s, nil
}

// NATS returns the server's NATS connection.
func (s *Server) NATS() *nats.Conn { return s.nc }

// Serve accepts connections on ln until Shutdown. It returns nil after
// Shutdown and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	if s.draining.Load() {
		s.lnMu.Unlock()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.lnMu.Unlock()
	var backoff time.Duration
	for {
		netc, err := ln.Accept()
		if err != nil {
			if s.draining.Load() {
				return nil
			}
			if !retryAccept(err) {
				return err
			}
			// Out of descriptors (EMFILE, ENFILE) or a transient
			// failure: back off instead of spinning, keep serving the
			// clients we have, and accept again once some leave.
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			s.logLimited(s.fdLog, "accept failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-s.done:
				return nil
			}
		}
		backoff = 0
		if s.inHandshake.Add(1) > int64(s.cfg.MaxHandshakes) {
			// A flood of sockets that never finish their handshake must
			// not pin a goroutine and a reader each.
			s.inHandshake.Add(-1)
			s.metrics.Refused(metrics.RefusedLimit, http.StatusServiceUnavailable)
			_ = netc.Close()
			continue
		}
		s.handshakes.Add(1)
		go func() {
			defer s.handshakes.Done()
			s.handshake(netc)
		}()
	}
}

// retryAccept reports whether an accept error is worth retrying: a
// timeout, descriptor or buffer exhaustion, or a connection aborted before
// it was accepted. Anything else (the listener closed) ends Serve.
func retryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// logLimited writes a warning through l: a burst, then one per second,
// with the count of lines suppressed in between.
func (s *Server) logLimited(l *ratelimit.Log, msg string, attrs ...any) {
	ok, suppressed := l.Allow(time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	s.log.Warn(msg, attrs...)
}

// Ready reports whether the node should receive traffic: NATS is connected
// and the server is not draining. It reads atomics only, so it answers at
// once even while a NATS write is stuck.
func (s *Server) Ready() bool { return !s.draining.Load() && s.natsUp.Load() }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready: NATS disconnected or draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/ws", s.serveUpgrade)
	mux.HandleFunc("/ws/raw", s.serveUpgrade)
	if s.cfg.Handler != nil {
		mux.Handle("/", s.cfg.Handler)
	}
	return mux
}

// register adds an upgraded connection; it fails once draining.
func (s *Server) register(c *conn) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.draining.Load() {
		return false
	}
	c.regIdx = len(s.conns)
	c.opened = s.clock()
	s.conns = append(s.conns, c)
	s.trim.Arrived(len(s.conns))
	s.metrics.Connected()
	return true
}

func (s *Server) unregister(c *conn) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if c.regIdx < 0 {
		return
	}
	var moved *conn
	if s.conns, moved = swapRemove(s.conns, c.regIdx); moved != nil {
		moved.regIdx = c.regIdx
	}
	c.regIdx = -1
	n := len(s.conns)
	s.metrics.Disconnected()
	s.trim.Left(n)
	s.slots.Release(c.remote.Addr())
	if n == 0 && s.draining.Load() {
		select {
		case <-s.empty:
		default:
			close(s.empty)
		}
	}
}

func (s *Server) snapshot() []*conn {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return append([]*conn(nil), s.conns...)
}

// heartbeat pings every connection each PingInterval and closes those
// silent for two intervals. One goroutine for all connections: no
// per-connection timers.
func (s *Server) heartbeat() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			deadline := now.Add(-2 * s.cfg.PingInterval).UnixNano()
			for _, c := range s.snapshot() {
				if c.lastRead.Load() < deadline {
					c.requestClose(wsframe.ClosePingTimeout)
				} else {
					c.ping()
				}
			}
		}
	}
}

// Shutdown stops accepting, closes every client with 1001 (spread over
// Config.DrainSpread), drains NATS and stops the workers. Clients still
// open when ctx ends are dropped. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() { err = s.shutdown(ctx) })
	return err
}

// drainReserve is the part of a shutdown deadline kept for draining NATS
// after the last client is closed: a tenth, at most 2s.
func drainReserve(budget time.Duration) time.Duration {
	return min(budget/10, 2*time.Second)
}

// closeSpread closes conns with 1001, spread evenly over DrainSpread,
// capped by ctx's deadline less drainReserve: client i of n is closed at
// i/n of the window. When ctx ends early the rest are closed at once.
func (s *Server) closeSpread(ctx context.Context, conns []*conn) {
	start := time.Now()
	window := s.cfg.DrainSpread
	if deadline, ok := ctx.Deadline(); ok {
		budget := deadline.Sub(start)
		window = min(window, budget-drainReserve(budget))
	}
	if window <= 0 || len(conns) < 2 {
		for _, c := range conns {
			c.requestClose(wsframe.CloseGoingAway)
		}
		return
	}
	s.log.Info("draining: closing clients with 1001", "clients", len(conns), "over", window.Round(time.Millisecond))
	t := time.NewTimer(0)
	defer t.Stop()
	due := func(i int) time.Duration {
		return time.Duration(float64(window) * float64(i) / float64(len(conns)))
	}
	for i := 0; i < len(conns); {
		// Everything due by now goes in one pass: at 100k clients the
		// spacing is finer than a timer's resolution.
		for elapsed := time.Since(start); i < len(conns) && due(i) <= elapsed; i++ {
			conns[i].requestClose(wsframe.CloseGoingAway)
		}
		if i == len(conns) {
			return
		}
		t.Reset(due(i) - time.Since(start))
		select {
		case <-t.C:
		case <-ctx.Done():
			for _, c := range conns[i:] {
				c.requestClose(wsframe.CloseGoingAway)
			}
			return
		case <-s.empty:
			return // every client left on its own
		}
	}
}

func (s *Server) shutdown(ctx context.Context) error {
	s.connsMu.Lock()
	s.draining.Store(true)
	if len(s.conns) == 0 {
		close(s.empty)
	}
	s.connsMu.Unlock()
	s.cluster.AnnounceNow() // peers stop counting this node at once
	// While clients are closed the listener stays open: new upgrades get
	// 503, /readyz answers 503 and /healthz 200, so load balancers and
	// probes see a node that is draining, not one that vanished.
	s.closeSpread(ctx, s.snapshot())
	select {
	case <-s.empty:
	case <-ctx.Done():
		s.log.Warn("drain timeout: dropping remaining clients", "clients", len(s.snapshot()))
	}
	s.lnMu.Lock()
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	s.lnMu.Unlock()
	s.httpLn.Close()
	// Handshakes in flight fail admission or register() and finish
	// within their deadline.
	s.handshakes.Wait()

	s.streams.Shutdown(ctx) // delete our consumers while NATS is still up

	var nerr error
	closed := make(chan struct{})
	s.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := s.nc.Drain(); err != nil {
		s.nc.Close()
	} else {
		select {
		case <-closed:
		case <-ctx.Done():
			nerr = ctx.Err()
			s.nc.Close()
		}
	}
	close(s.done)
	s.out.Close()
	s.trim.Stop()
	_ = s.poller.Close()
	for _, c := range s.snapshot() {
		c.teardown() // workers are stopped: no one else touches c
	}
	_ = s.httpSrv.Close()
	s.wg.Wait()
	return nerr
}

// swapRemove drops s[i] by moving the last element into its place. It
// returns the shorter slice and the element now at i, whose index its
// owner must update, or the zero value when s[i] was the last.
func swapRemove[T comparable](s []T, i int) ([]T, T) {
	var zero T
	last := len(s) - 1
	s[i] = s[last]
	s[last] = zero
	s = s[:last]
	if i < last {
		return s, s[i]
	}
	return s, zero
}
