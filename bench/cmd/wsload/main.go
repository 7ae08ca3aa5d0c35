// Command wsload is the load generator of the benchmarks: it runs one
// scenario against one target and prints the result as JSON on stdout.
// It runs in its own process so that its CPU is measured apart from the
// server's. bench/cmd/compare drives it; run it by hand to try one case:
//
//	wsload -target json -addr 127.0.0.1:8080 -nats nats://127.0.0.1:4222 \
//	    -pid $(pidof wsbridge) -nats-pid $(pidof natsws) -scenario idle -idle-conns 1000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"wsbridge/bench/internal/load"
	"wsbridge/bench/internal/wsc"
)

func main() {
	var cfg load.Config
	target := flag.String("target", "json", "json (wsbridge /ws), raw (wsbridge /ws/raw) or native (nats-server WebSocket); a -tls suffix dials wss://")
	scenario := flag.String("scenario", "idle", "one of idle, connect, fanout-burst, fanout-rate, publish, publish-rate")
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "WebSocket host:port")
	flag.StringVar(&cfg.NATSURL, "nats", "nats://127.0.0.1:4222", "NATS URL to publish and count with")
	flag.IntVar(&cfg.ServerPID, "pid", 0, "PID of the WebSocket server to measure (required)")
	flag.IntVar(&cfg.NATSPID, "nats-pid", 0, "PID of the NATS server behind wsbridge (0: none)")
	flag.IntVar(&cfg.Dialers, "dialers", 200, "concurrent dialers")
	flag.DurationVar(&cfg.Timeout, "timeout", 0, "bound of one phase (default 120s)")
	flag.IntVar(&cfg.IdleConns, "idle-conns", 10000, "idle: connections")
	flag.BoolVar(&cfg.IdleShared, "idle-shared", false, "idle: one subject for all instead of one each")
	flag.DurationVar(&cfg.IdleSettle, "idle-settle", 0, "idle: time to watch memory return after clients leave (default 20s)")
	flag.DurationVar(&cfg.IdleHold, "idle-hold", 0, "idle: read memory again after connections were idle this long (0: don't)")
	flag.IntVar(&cfg.FanoutSubs, "subs", 2000, "fanout: subscribers")
	flag.IntVar(&cfg.BurstMsgs, "burst-msgs", 20000, "fanout-burst: messages")
	flag.IntVar(&cfg.Rate, "rate", 50, "fanout-rate: messages per second")
	flag.DurationVar(&cfg.RateFor, "rate-for", 0, "fanout-rate: duration (default 20s)")
	flag.IntVar(&cfg.ConnectTotal, "connect-total", 10000, "connect: connections")
	flag.IntVar(&cfg.PubCount, "pub-count", 200000, "publish: messages from one client")
	flag.IntVar(&cfg.PubClients, "pub-clients", 1000, "publish-rate: clients")
	flag.IntVar(&cfg.PubRate, "pub-rate", 10, "publish-rate: messages per second per client")
	flag.DurationVar(&cfg.PubFor, "pub-for", 0, "publish-rate: duration (default 10s)")
	flag.Parse()
	base, secure := strings.CutSuffix(*target, "-tls")
	cfg.TLS = secure
	switch base {
	case "json":
		cfg.Dialect = wsc.JSON
	case "raw":
		cfg.Dialect = wsc.Raw
	case "native":
		cfg.Dialect = wsc.Native
	default:
		fmt.Fprintf(os.Stderr, "wsload: unknown -target %q\n", *target)
		os.Exit(2)
	}
	if cfg.ServerPID == 0 {
		fmt.Fprintln(os.Stderr, "wsload: -pid is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, cfg, *scenario)
	if res != nil {
		_ = json.NewEncoder(os.Stdout).Encode(res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}
