// Command compare runs the issue 6 benchmark end to end: it builds
// wsbridge, natsws and wsload into a temporary directory, and for every
// scenario and target starts fresh server processes on free ports, runs
// wsload against them, stops them, and writes a markdown report.
//
//	go run ./bench/cmd/compare -out bench/results/latest.md
//	go run ./bench/cmd/compare -smoke            # every scenario, tiny, < 1 min
//
// Targets: json (wsbridge /ws), raw (wsbridge /ws/raw) and native
// (nats-server's WebSocket listener, NATS text protocol), each also over
// wss:// with a -tls suffix (json-tls, raw-tls, native-tls; a self-signed
// ECDSA P-256 certificate made for the run). wsbridge runs against a
// separate nats-server process so that its CPU and memory are measured
// alone; NATS's own CPU is reported beside it.
//
//	go run ./bench/cmd/compare -targets json,json-tls,native,native-tls \
//	    -scenarios idle,connect,fanout-rate -idle 5000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	out        string
	targets    []string
	scenarios  []string
	idleConns  []int
	idleShared bool
	idleSettle time.Duration
	idleHold   time.Duration
	dialers    int
	subs       int
	burstMsgs  int
	rate       int
	rateFor    time.Duration
	connect    int
	pubCount   int
	pubClients int
	pubRate    int
	pubFor     time.Duration
	timeout    time.Duration
	bridgeEnv  []string
}

// result mirrors load.Result; compare reads wsload's JSON and needs no
// more of the load package.
type result struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Metrics  []struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
		Unit  string  `json:"unit"`
	} `json:"metrics"`
	Warnings []string `json:"warnings"`
	Notes    []string `json:"notes"`
}

func main() {
	var o options
	var targets, scenarios, idle, env string
	smoke := flag.Bool("smoke", false, "run every scenario tiny (50 connections, 500 messages) for CI")
	flag.StringVar(&o.out, "out", "", "markdown report file (default: stdout only)")
	flag.StringVar(&targets, "targets", "json,raw,native", "comma-separated targets")
	flag.StringVar(&scenarios, "scenarios", "idle,connect,fanout-burst,fanout-rate,publish,publish-rate", "comma-separated scenarios")
	flag.StringVar(&idle, "idle", "10000,19000", "idle: connection counts, one run each")
	flag.BoolVar(&o.idleShared, "idle-shared", false, "idle: all connections subscribe to one subject (default one subject each)")
	flag.DurationVar(&o.idleSettle, "idle-settle", 20*time.Second, "idle: time to watch memory return after clients leave")
	flag.DurationVar(&o.idleHold, "idle-hold", 0, "idle: also read memory after connections were idle this long, e.g. 150s, past Go's 2-minute forced GC (0: don't)")
	flag.IntVar(&o.dialers, "dialers", 200, "concurrent dialers")
	flag.IntVar(&o.subs, "subs", 2000, "fanout: subscribers")
	flag.IntVar(&o.burstMsgs, "burst-msgs", 20000, "fanout-burst: messages")
	flag.IntVar(&o.rate, "rate", 50, "fanout-rate: messages per second")
	flag.DurationVar(&o.rateFor, "rate-for", 20*time.Second, "fanout-rate: duration")
	flag.IntVar(&o.connect, "connect-total", 10000, "connect: connections")
	flag.IntVar(&o.pubCount, "pub-count", 200000, "publish: messages from one client")
	flag.IntVar(&o.pubClients, "pub-clients", 1000, "publish-rate: clients")
	flag.IntVar(&o.pubRate, "pub-rate", 10, "publish-rate: messages per second per client")
	flag.DurationVar(&o.pubFor, "pub-for", 10*time.Second, "publish-rate: duration")
	flag.DurationVar(&o.timeout, "timeout", 120*time.Second, "bound of one scenario phase")
	flag.StringVar(&env, "bridge-env", "", "comma-separated extra environment for wsbridge")
	flag.Parse()
	if *smoke {
		idle = "50"
		o.idleSettle, o.dialers, o.subs, o.burstMsgs = time.Second, 50, 50, 500
		o.rateFor, o.connect, o.pubCount, o.pubClients, o.pubFor = time.Second, 200, 2000, 50, time.Second
		o.timeout = 20 * time.Second
	}
	o.targets = split(targets)
	o.scenarios = split(scenarios)
	o.bridgeEnv = split(env)
	for _, s := range split(idle) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "compare: -idle: %q is not a count\n", s)
			os.Exit(2)
		}
		o.idleConns = append(o.idleConns, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, strings.Join(os.Args[1:], " ")); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// run is one whole comparison.
func run(ctx context.Context, o options, args string) error {
	dir, err := os.MkdirTemp("", "wsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, b := range []struct{ name, pkg string }{{"wsbridge", "."}, {"natsws", "./bench/cmd/natsws"}, {"wsload", "./bench/cmd/wsload"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, b.name), b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", b.pkg, err)
		}
	}
	if err := writeCert(dir); err != nil {
		return err
	}
	rep := &report{args: args, started: time.Now()}
	for _, sc := range o.scenarios {
		sizes := []int{0}
		if sc == "idle" {
			sizes = o.idleConns
		}
		for _, n := range sizes {
			name := sc
			if sc == "idle" {
				name = fmt.Sprintf("idle-%d", n)
			}
			for _, t := range o.targets {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Fprintf(os.Stderr, "== %s / %s\n", name, t)
				r, ver, err := runOne(ctx, o, dir, sc, t, n)
				if ver != "" {
					rep.natsVersion = ver
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "   failed: %v\n", err)
					r = &result{Target: t, Warnings: []string{err.Error()}}
				}
				r.Scenario = name
				rep.add(r)
				for _, m := range r.Metrics {
					fmt.Fprintf(os.Stderr, "   %-28s %12.4g %s\n", m.Name, m.Value, m.Unit)
				}
				for _, w := range r.Warnings {
					fmt.Fprintf(os.Stderr, "   warning: %s\n", w)
				}
			}
		}
	}
	md := rep.markdown(o)
	fmt.Print(md)
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(o.out, []byte(md), 0o644)
	}
	return nil
}

// proc is a server process compare started.
type proc struct {
	cmd  *exec.Cmd
	name string
}

func start(dir, name string, env []string, args ...string) (*proc, *bufio.Reader, error) {
	cmd := exec.Command(filepath.Join(dir, name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return &proc{cmd: cmd, name: name}, bufio.NewReader(out), nil
}

// stop sends SIGTERM and kills the process if it has not exited in 15s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitPort(port int) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on port %d after 15s", port)
}

// runOne starts fresh servers for target, runs one wsload scenario and
// stops them. It returns nats-server's version as natsws printed it.
func runOne(ctx context.Context, o options, dir, scenario, target string, idleConns int) (*result, string, error) {
	natsPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	wsPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	base, tlsOn := strings.CutSuffix(target, "-tls")
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	natsArgs := []string{"-port", strconv.Itoa(natsPort)}
	if base == "native" {
		natsArgs = append(natsArgs, "-ws", strconv.Itoa(wsPort))
		if tlsOn {
			natsArgs = append(natsArgs, "-tls-cert", cert, "-tls-key", key)
		}
	}
	ns, out, err := start(dir, "natsws", nil, natsArgs...)
	if err != nil {
		return nil, "", err
	}
	defer ns.stop()
	line, _ := out.ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, out) }()
	ver := ""
	if _, v, ok := strings.Cut(line, "version="); ok {
		ver = strings.TrimSpace(v)
	}
	if err := waitPort(natsPort); err != nil {
		return nil, ver, err
	}
	serverPID, natsPID := ns.cmd.Process.Pid, 0
	if base != "native" {
		env := []string{}
		if tlsOn {
			env = append(env, "BRIDGE_TLS_CERT="+cert, "BRIDGE_TLS_KEY="+key)
		}
		env = append(append(env,
			"BRIDGE_LISTEN=127.0.0.1:"+strconv.Itoa(wsPort),
			"BRIDGE_NATS_URL=nats://127.0.0.1:"+strconv.Itoa(natsPort),
			"BRIDGE_LOG_LEVEL=warn",
			"BRIDGE_DATA_DIR="+filepath.Join(dir, "data"),
			"BRIDGE_MAX_HANDSHAKE_RATE=0", // the connect scenario measures the uncapped rate
		), o.bridgeEnv...)
		br, bout, err := start(dir, "wsbridge", env)
		if err != nil {
			return nil, ver, err
		}
		defer br.stop()
		go func() { _, _ = io.Copy(os.Stderr, bout) }()
		if err := waitPort(wsPort); err != nil {
			return nil, ver, err
		}
		serverPID, natsPID = br.cmd.Process.Pid, ns.cmd.Process.Pid
	}
	args := []string{
		"-target", target, "-scenario", scenario,
		"-addr", "127.0.0.1:" + strconv.Itoa(wsPort),
		"-nats", "nats://127.0.0.1:" + strconv.Itoa(natsPort),
		"-pid", strconv.Itoa(serverPID), "-nats-pid", strconv.Itoa(natsPID),
		"-dialers", strconv.Itoa(o.dialers), "-timeout", o.timeout.String(),
		"-idle-conns", strconv.Itoa(max(idleConns, 1)), "-idle-settle", o.idleSettle.String(), "-idle-hold", o.idleHold.String(),
		"-idle-shared=" + strconv.FormatBool(o.idleShared),
		"-subs", strconv.Itoa(o.subs), "-burst-msgs", strconv.Itoa(o.burstMsgs),
		"-rate", strconv.Itoa(o.rate), "-rate-for", o.rateFor.String(),
		"-connect-total", strconv.Itoa(o.connect),
		"-pub-count", strconv.Itoa(o.pubCount), "-pub-clients", strconv.Itoa(o.pubClients),
		"-pub-rate", strconv.Itoa(o.pubRate), "-pub-for", o.pubFor.String(),
	}
	// wsload bounds itself; this is the backstop.
	lctx, cancel := context.WithTimeout(ctx, 4*o.timeout+o.rateFor+o.pubFor+o.idleSettle+o.idleHold+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(lctx, filepath.Join(dir, "wsload"), args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	runErr := cmd.Run()
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, ver, errors.Join(runErr, fmt.Errorf("reading wsload output: %w", err))
	}
	if runErr != nil {
		r.Warnings = append(r.Warnings, "wsload: "+runErr.Error())
	}
	return &r, ver, nil
}
