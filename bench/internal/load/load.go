// Package load runs the benchmark scenarios of issue 6 against one target
// (wsbridge JSON, wsbridge raw or nats-server's native WebSocket) and
// measures the target's processes through /proc. It owns the scenarios;
// the wire is wsc's and the process sampling procstat's. Run is not safe
// for concurrent use: it drives one target at a time.
package load

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/bench/internal/procstat"
	"wsbridge/bench/internal/wsc"
)

// Config is one scenario run. Zero sizes take the defaults noted.
type Config struct {
	Dialect   wsc.Dialect
	TLS       bool   // wss:// (any certificate accepted); the target is then named dialect-tls
	Addr      string // host:port of the WebSocket listener
	NATSURL   string // NATS client URL used to publish and to count
	ServerPID int    // the WebSocket server process (wsbridge or nats-server)
	NATSPID   int    // the NATS process behind wsbridge; 0 when it is ServerPID

	Dialers int           // concurrent dialers while connecting; 0 means 200
	Timeout time.Duration // bound of one phase; 0 means 120s

	IdleConns  int  // idle: connections; 0 means 10000
	IdleShared bool // idle: all subscribe to one subject instead of one each
	IdleSettle time.Duration
	// IdleHold, when set, reads memory a second time after the connections
	// have been idle this long (rss_per_conn_held): past Go's forced GC
	// (every 2 minutes), memory a connection storm left behind has been
	// collected and returned, in every Go server alike.
	IdleHold time.Duration

	FanoutSubs int           // fanout-*: subscribers; 0 means 2000
	BurstMsgs  int           // fanout-burst: messages; 0 means 20000
	Rate       int           // fanout-rate: messages per second; 0 means 50
	RateFor    time.Duration // fanout-rate: duration; 0 means 20s

	ConnectTotal int // connect: connections; 0 means 10000

	PubCount   int           // publish: messages from one client; 0 means 200000
	PubClients int           // publish-rate: clients; 0 means 1000
	PubRate    int           // publish-rate: messages per second per client; 0 means 10
	PubFor     time.Duration // publish-rate: duration; 0 means 10s
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.Dialers, 200)
	def(&c.IdleConns, 10000)
	def(&c.FanoutSubs, 2000)
	def(&c.BurstMsgs, 20000)
	def(&c.Rate, 50)
	def(&c.ConnectTotal, 10000)
	def(&c.PubCount, 200000)
	def(&c.PubClients, 1000)
	def(&c.PubRate, 10)
	if c.Timeout <= 0 {
		c.Timeout = 120 * time.Second
	}
	if c.RateFor <= 0 {
		c.RateFor = 20 * time.Second
	}
	if c.PubFor <= 0 {
		c.PubFor = 10 * time.Second
	}
	if c.IdleSettle <= 0 {
		c.IdleSettle = 20 * time.Second
	}
}

// Metric is one measured number.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Result is the outcome of one scenario on one target.
type Result struct {
	Scenario string   `json:"scenario"`
	Target   string   `json:"target"`
	Metrics  []Metric `json:"metrics"`
	Warnings []string `json:"warnings,omitempty"`
	Notes    []string `json:"notes,omitempty"` // what was measured, such as the cipher suite
}

func (r *Result) add(name string, v float64, unit string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.warn("%s: no value (nothing was measured)", name)
		v = 0
	}
	r.Metrics = append(r.Metrics, Metric{name, v, unit})
}

func (r *Result) note(format string, a ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, a...))
}

func (r *Result) warn(format string, a ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, a...))
}

// Scenarios lists the scenario names Run accepts, in run order.
var Scenarios = []string{"idle", "connect", "fanout-burst", "fanout-rate", "publish", "publish-rate"}

// Run runs one scenario.
func Run(ctx context.Context, cfg Config, scenario string) (*Result, error) {
	cfg.setDefaults()
	r := &runner{cfg: cfg, res: &Result{Scenario: scenario, Target: cfg.Dialect.String()}}
	if cfg.TLS {
		r.res.Target += "-tls"
		r.tls = &tls.Config{InsecureSkipVerify: true}
	}
	var err error
	switch scenario {
	case "idle":
		err = r.idle(ctx)
	case "connect":
		err = r.connect(ctx)
	case "fanout-burst":
		err = r.fanout(ctx, false)
	case "fanout-rate":
		err = r.fanout(ctx, true)
	case "publish":
		err = r.publish(ctx)
	case "publish-rate":
		err = r.publishRate(ctx)
	default:
		return nil, fmt.Errorf("load: unknown scenario %q (want one of %s)", scenario, strings.Join(Scenarios, ", "))
	}
	return r.res, err
}

type runner struct {
	cfg Config
	res *Result
	tls *tls.Config // with cfg.TLS; no session cache: every handshake is a full one
}

// snapshot samples the server, NATS behind it (if separate) and the
// generator itself.
type snapshot struct{ srv, nats, self procstat.Sample }

func (r *runner) snap() snapshot {
	s := snapshot{}
	s.srv, _ = procstat.Read(r.cfg.ServerPID)
	if r.cfg.NATSPID != 0 {
		s.nats, _ = procstat.Read(r.cfg.NATSPID)
	}
	s.self, _ = procstat.Read(0)
	return s
}

// cpu records server, NATS and generator CPU between a and b, per unit of
// work n (named per), and warns when the generator or the machine was the
// likely bottleneck.
func (r *runner) cpu(a, b snapshot, n int, per string) {
	wall := b.srv.At.Sub(a.srv.At)
	srv := b.srv.CPU - a.srv.CPU
	gen := b.self.CPU - a.self.CPU
	nat := b.nats.CPU - a.nats.CPU
	if n > 0 {
		r.res.add("server_cpu_per_"+per, float64(srv.Nanoseconds())/1e3/float64(n), "µs")
		if r.cfg.NATSPID != 0 {
			r.res.add("nats_cpu_per_"+per, float64(nat.Nanoseconds())/1e3/float64(n), "µs")
		}
	}
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	r.res.add("server_cpu", pct(srv), "% of a core")
	if r.cfg.NATSPID != 0 {
		r.res.add("nats_cpu", pct(nat), "% of a core")
	}
	r.res.add("generator_cpu", pct(gen), "% of a core")
	if pct(gen) > 100 {
		r.res.warn("generator used %.0f%% of a core (of 2): it competes with the server and may be the bottleneck", pct(gen))
	}
	if total := pct(srv + gen + nat); total > 170 {
		r.res.warn("all processes together used %.0f%% of 2 cores: the machine was saturated", total)
	}
}

// srcIP rotates source addresses over 127.0.0.2–127.0.0.250 so that many
// connections do not exhaust one address's ephemeral ports.
var srcIP atomic.Uint32

func nextLocal() *net.TCPAddr {
	n := srcIP.Add(1)
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+n%249))}
}

// dial opens a connection in the runner's dialect, subscribed to subject
// when it is not empty, and returns it once the subscription is live (JSON:
// ok, Native: PONG; Raw: after the 101, see probe).
func (r *runner) dial(subject, pub string) (*wsc.Conn, error) {
	target := "/"
	switch r.cfg.Dialect {
	case wsc.JSON:
		target = "/ws"
	case wsc.Raw:
		q := []string{}
		if subject != "" {
			q = append(q, "sub="+subject)
		}
		if pub != "" {
			q = append(q, "pub="+pub)
		}
		target = "/ws/raw?" + strings.Join(q, "&")
	}
	c, err := wsc.Dial(r.cfg.Dialect, nextLocal(), r.cfg.Addr, target, 30*time.Second, r.tls)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	wantAck, err := c.Start(subject)
	if err == nil && wantAck {
		err = c.WaitAck()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

// dialMany opens n connections with cfg.Dialers concurrent dialers.
// subject(i) names connection i's subscription.
func (r *runner) dialMany(ctx context.Context, n int, subject func(int) string, pub string) ([]*wsc.Conn, int, []time.Duration) {
	conns := make([]*wsc.Conn, n)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(r.cfg.Timeout)
	for range min(r.cfg.Dialers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				c, err := r.dial(subject(i), pub)
				if err != nil {
					if failed.Add(1) <= 3 {
						r.res.warn("dial %d: %v", i, err)
					}
					continue
				}
				lat[i] = time.Since(t0)
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	ok := conns[:0]
	oklat := lat[:0]
	for i, c := range conns {
		if c != nil {
			ok = append(ok, c)
			oklat = append(oklat, lat[i])
		}
	}
	return ok, n - len(ok), oklat
}

func closeAll(conns []*wsc.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

func (r *runner) connectNATS() (*nats.Conn, error) {
	nc, err := nats.Connect(r.cfg.NATSURL, nats.Name("wsload"), nats.MaxReconnects(0))
	if err != nil {
		return nil, fmt.Errorf("load: connecting to NATS at %s: %w", r.cfg.NATSURL, err)
	}
	return nc, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}

// waitFor polls cond every 50ms until it holds, quiet passes without
// progress() changing, or the runner's timeout. It reports whether cond
// held.
func (r *runner) waitFor(ctx context.Context, cond func() bool, progress func() int64, quiet time.Duration) bool {
	deadline := time.Now().Add(r.cfg.Timeout)
	last, lastChange := progress(), time.Now()
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
		if p := progress(); p != last {
			last, lastChange = p, time.Now()
		} else if time.Since(lastChange) > quiet {
			return false
		}
	}
	return true
}
