package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report collects results and renders them as markdown.
type report struct {
	args        string
	started     time.Time
	natsVersion string
	order       []string
	res         map[string]map[string]*result // scenario → target → result
}

func (r *report) add(res *result) {
	if r.res == nil {
		r.res = make(map[string]map[string]*result)
	}
	if r.res[res.Scenario] == nil {
		r.res[res.Scenario] = make(map[string]*result)
		r.order = append(r.order, res.Scenario)
	}
	r.res[res.Scenario][res.Target] = res
}

// value returns a metric and whether it was measured.
func (r *report) value(scenario, target, metric string) (float64, string, bool) {
	res := r.res[scenario][target]
	if res == nil {
		return 0, "", false
	}
	for _, m := range res.Metrics {
		if m.Name == metric {
			return m.Value, m.Unit, true
		}
	}
	return 0, "", false
}

// allTargets orders the report's columns; a run shows those it measured.
var allTargets = []string{"json", "raw", "native", "json-tls", "raw-tls", "native-tls"}

// secure reports whether target speaks wss://.
func secure(target string) bool { return strings.HasSuffix(target, "-tls") }

// nativeOf is the native target a target compares with: same transport.
func nativeOf(target string) string {
	if secure(target) {
		return "native-tls"
	}
	return "native"
}

func isNative(target string) bool { return nativeOf(target) == target }

// targets lists the targets with results, in column order.
func (r *report) targets() []string {
	var out []string
	for _, t := range allTargets {
		for _, byTarget := range r.res {
			if byTarget[t] != nil {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// goal is one target from issue 6 (and issue 17 for wss://).
type goal struct {
	text     string
	scenario string // prefix: idle matches idle-10000 and idle-19000
	metric   string
	check    func(v, native float64) bool
	tls      int // 0: every target; 1: wss:// targets only; -1: ws:// only
}

func (g goal) applies(target string) bool {
	return g.tls == 0 || (g.tls > 0) == secure(target)
}

var goals = []goal{
	{"idle RSS ≤ 2 KiB per subscribed connection", "idle-", "rss_per_conn", func(v, _ float64) bool { return v <= 2 }, -1},
	{"idle RSS ≤ 6 KiB per subscribed wss:// connection", "idle-", "rss_per_conn", func(v, _ float64) bool { return v <= 6 }, 1},
	{"idle RSS ≤ 2 KiB per subscribed connection, after -idle-hold", "idle-", "rss_per_conn_held", func(v, _ float64) bool { return v <= 2 }, -1},
	{"idle RSS ≤ 6 KiB per subscribed wss:// connection, after -idle-hold", "idle-", "rss_per_conn_held", func(v, _ float64) bool { return v <= 6 }, 1},
	{"one fd per connection", "idle-", "fds_per_conn", func(v, _ float64) bool { return v <= 1.05 }, 0},
	{"fan-out burst: no loss", "fanout-burst", "lost", func(v, _ float64) bool { return v == 0 }, 0},
	{"fan-out burst ≤ 0.7 µs server CPU per delivery", "fanout-burst", "server_cpu_per_delivery", func(v, _ float64) bool { return v <= 0.7 }, -1},
	{"steady rate p99 ≤ 20 ms", "fanout-rate", "latency_p99", func(v, _ float64) bool { return v <= 20 }, 0},
	{"steady rate ≤ 1/3 of native CPU per delivery", "fanout-rate", "server_cpu_per_delivery", func(v, n float64) bool { return n > 0 && v <= n/3 }, 0},
	{"connect ≥ 2× native handshakes/s", "connect", "handshakes_per_s", func(v, n float64) bool { return n > 0 && v >= 2*n }, -1},
	{"connect ≤ 60 µs server CPU per upgrade+hello", "connect", "server_cpu_per_handshake", func(v, _ float64) bool { return v <= 60 }, -1},
}

// measured reports whether any of targets has g's metric in scenario sc.
func (r *report) measured(sc string, g goal, targets []string) bool {
	for _, t := range targets {
		if _, _, ok := r.value(sc, t, g.metric); ok && g.applies(t) {
			return true
		}
	}
	return false
}

func (r *report) markdown(o options) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# wsbridge vs nats-server WebSocket (issue 6)\n\n")
	p("- Date: %s; run took %s\n", r.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(r.started).Round(time.Second))
	p("- Command: `go run ./bench/cmd/compare %s`\n", r.args)
	p("- Machine: %d CPUs, %s RAM, Linux %s, open-file limit %s\n", runtime.NumCPU(), memTotal(), readTrim("/proc/sys/kernel/osrelease"), fileLimit())
	p("- Go %s, nats-server %s; all processes share the machine (loopback)\n", runtime.Version(), r.natsVersion)
	p("- Targets: **json** = wsbridge `/ws`, **raw** = wsbridge `/ws/raw`, **native** = nats-server WebSocket listener (NATS text protocol); **-tls** = the same over wss:// (TLS 1.3, ECDSA P-256 certificate, a full handshake per connection; the idle section names the cipher suite each server chose). ")
	p("wsbridge runs against a separate nats-server process: `server_*` is wsbridge alone, `nats_*` the nats-server behind it.\n")
	p("- Sizes: idle %v (%s), fan-out %d subscribers × %d burst messages, %d msg/s for %s; connect %d with %d dialers; publish %d from one client, %d clients × %d msg/s for %s\n\n",
		o.idleConns, map[bool]string{true: "one shared subject", false: "one subject per connection"}[o.idleShared],
		o.subs, o.burstMsgs, o.rate, o.rateFor, o.connect, o.dialers, o.pubCount, o.pubClients, o.pubRate, o.pubFor)

	targets := r.targets()
	var mine []string // wsbridge's targets: the goals are theirs
	for _, t := range targets {
		if !isNative(t) {
			mine = append(mine, t)
		}
	}
	p("## Targets\n\n| target |")
	for _, t := range mine {
		p(" %s |", t)
	}
	p("\n|---|%s\n", strings.Repeat("---|", len(mine)))
	for _, g := range goals {
		for _, sc := range r.order {
			if !strings.HasPrefix(sc, g.scenario) || !r.measured(sc, g, mine) {
				continue
			}
			label := g.text
			if strings.HasSuffix(g.scenario, "-") {
				label += " (" + strings.TrimPrefix(sc, g.scenario) + ")"
			}
			p("| %s |", label)
			for _, t := range mine {
				native, _, _ := r.value(sc, nativeOf(t), g.metric)
				v, unit, ok := r.value(sc, t, g.metric)
				switch {
				case !ok || !g.applies(t):
					p(" – |")
				case g.check(v, native):
					p(" ✅ %s %s |", num(v), unit)
				default:
					p(" ❌ %s %s |", num(v), unit)
				}
			}
			p("\n")
		}
	}
	p("\n")

	for _, sc := range r.order {
		var ratios []string // targets with their native measured too
		for _, t := range mine {
			if r.res[sc][t] != nil && r.res[sc][nativeOf(t)] != nil {
				ratios = append(ratios, t)
			}
		}
		p("## %s\n\n| metric | unit |", sc)
		for _, t := range targets {
			p(" %s |", t)
		}
		for _, t := range ratios {
			p(" %s/%s |", t, nativeOf(t))
		}
		p("\n|---|---|%s\n", strings.Repeat("---|", len(targets)+len(ratios)))
		var names []string
		seen := map[string]bool{}
		for _, t := range targets {
			if res := r.res[sc][t]; res != nil {
				for _, m := range res.Metrics {
					if !seen[m.Name] {
						seen[m.Name] = true
						names = append(names, m.Name)
					}
				}
			}
		}
		for _, name := range names {
			unit := ""
			vals := map[string]float64{}
			oks := map[string]bool{}
			p("| %s |", name)
			for _, t := range targets {
				v, u, ok := r.value(sc, t, name)
				if ok {
					unit = u
				}
				vals[t], oks[t] = v, ok
			}
			p(" %s |", unit)
			for _, t := range targets {
				if oks[t] {
					p(" %s |", num(vals[t]))
				} else {
					p(" – |")
				}
			}
			for _, t := range ratios {
				if n := nativeOf(t); oks[t] && oks[n] && vals[n] != 0 {
					p(" %s |", num(vals[t]/vals[n]))
				} else {
					p(" – |")
				}
			}
			p("\n")
		}
		for _, t := range targets {
			if res := r.res[sc][t]; res != nil {
				for _, n := range res.Notes {
					p("\n- %s: %s", t, n)
				}
				for _, w := range res.Warnings {
					p("\n- ⚠️ %s: %s", t, w)
				}
			}
		}
		p("\n\n")
	}
	return b.String()
}

func num(v float64) string {
	switch a := abs(v); {
	case v == float64(int64(v)):
		return strconv.FormatInt(int64(v), 10)
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func memTotal() string {
	for _, line := range strings.Split(readTrim("/proc/meminfo"), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "?"
}

func fileLimit() string {
	for _, line := range strings.Split(readTrim("/proc/self/limits"), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			if f := strings.Fields(line); len(f) >= 5 {
				return f[3]
			}
		}
	}
	return "?"
}
