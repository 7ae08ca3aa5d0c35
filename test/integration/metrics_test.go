package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// scrape reads a Prometheus text exposition from url: series (name plus
// labels, as written) → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad exposition line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// atLeast marks a wanted value of waitMetrics as a lower bound.
const atLeast = "≥"

// waitMetrics scrapes url until every series in want has its value (or,
// for a key prefixed with atLeast, at least it), and returns that scrape.
// Counters move on other goroutines than the one a client hears from (a
// hello is counted after its write, a slow consumer's close after its
// cut), so they are waited for rather than read once. After wait it fails
// the test, listing each series still off.
func waitMetrics(t *testing.T, url string, want map[string]float64) map[string]float64 {
	t.Helper()
	off := func(m map[string]float64) []string {
		var bad []string
		for key, v := range want {
			series, floor := strings.CutPrefix(key, atLeast)
			if got := m[series]; got != v && !(floor && got > v) {
				w := fmt.Sprint(v)
				if floor {
					w = atLeast + " " + w
				}
				bad = append(bad, fmt.Sprintf("%s = %v, want %s", series, got, w))
			}
		}
		slices.Sort(bad)
		return bad
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(wait)
	for {
		m := scrape(t, url)
		bad := off(m)
		if len(bad) == 0 {
			return m
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("metrics after %v:\n%s", wait, strings.Join(bad, "\n"))
		}
	}
}

// metricsBridge is an auth bridge (HS256 tokens, https://good.example
// allowed) that serves its registry on /metrics.
func metricsBridge(t *testing.T, mutate func(*bridge.Config)) (*testBridge, string) {
	t.Helper()
	ns := testutil.StartNATS(t, false, nil)
	reg := prometheus.NewRegistry()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	b := authBridge(t, ns, hsConfig(), []string{"https://good.example"}, func(c *bridge.Config) {
		c.Registerer = reg
		c.Handler = mux
		if mutate != nil {
			mutate(c)
		}
	})
	return b, "http://" + b.Addr + "/metrics"
}

// TestMetricsFollowClients scrapes /metrics while clients connect,
// subscribe, publish, get refused and disconnect, and checks that each
// counter moves by what was done.
func TestMetricsFollowClients(t *testing.T) {
	b, url := metricsBridge(t, func(c *bridge.Config) { c.MaxConnections = 3 })
	m := scrape(t, url)
	for _, series := range []string{
		"wsbridge_connections", "wsbridge_connections_accepted_total", "wsbridge_subscriptions",
		"wsbridge_nats_subscriptions", "wsbridge_nats_connected", "wsbridge_worker_queue_depth",
		"wsbridge_draining", `wsbridge_handshakes_refused_total{reason="auth"}`,
		`wsbridge_messages_in_total{op="pub"}`, `wsbridge_messages_out_total{op="msg"}`,
		"wsbridge_deliveries_dropped_total", "wsbridge_slow_consumer_disconnects_total",
		"wsbridge_jetstream_catchups_total", "wsbridge_jetstream_feeds", "wsbridge_nats_reconnects_total",
		"wsbridge_handshake_duration_seconds_count", "wsbridge_delivery_latency_seconds_count",
	} {
		if _, ok := m[series]; !ok {
			t.Errorf("%s missing from /metrics", series)
		}
	}
	if m["wsbridge_connections"] != 0 || m["wsbridge_nats_connected"] != 1 {
		t.Fatalf("fresh node: connections %v, nats_connected %v", m["wsbridge_connections"], m["wsbridge_nats_connected"])
	}

	// Two clients on one subject: two subscriptions, one NATS interest.
	tok := userToken(t, "alice", allowAll())
	a := connectAs(t, b.Addr, tok)
	c := connectAs(t, b.Addr, tok)
	a.subscribe("s", "metrics.x", "")
	c.subscribe("s", "metrics.x", "")
	c.send(map[string]any{"op": "pub", "subject": "metrics.x", "data": "hello", "id": "p1"})
	c.expect("ok", "p1")
	for _, w := range []*wsClient{a, c} {
		if f := w.recv(); f.Op != "msg" {
			t.Fatalf("got %s, want msg", f.Op)
		}
	}
	m = waitMetrics(t, url, map[string]float64{
		"wsbridge_connections":                              2,
		"wsbridge_connections_accepted_total":               2,
		"wsbridge_subscriptions":                            2,
		"wsbridge_nats_subscriptions":                       1,
		`wsbridge_messages_in_total{op="sub"}`:              2,
		`wsbridge_messages_in_total{op="pub"}`:              1,
		`wsbridge_messages_out_total{op="hello"}`:           2,
		`wsbridge_messages_out_total{op="ok"}`:              3,
		`wsbridge_messages_out_total{op="msg"}`:             2,
		"wsbridge_handshake_duration_seconds_count":         2,
		atLeast + "wsbridge_delivery_latency_seconds_count": 1,
	})
	if m[`wsbridge_bytes_in_total{op="pub"}`] < float64(len(`{"op":"pub"}`)) || m[`wsbridge_bytes_out_total{op="msg"}`] < 2*float64(len(`{"op":"msg"}`)) {
		t.Errorf("byte counters did not move: in %v, out %v", m[`wsbridge_bytes_in_total{op="pub"}`], m[`wsbridge_bytes_out_total{op="msg"}`])
	}

	// One refusal of each kind.
	expectRefused(t, "ws://"+b.Addr+"/ws", nil, http.StatusUnauthorized, "")
	expectRefused(t, "ws://"+b.Addr+"/ws?token="+tok, withHeader("Origin", "https://evil.example"), http.StatusForbidden, tok)
	if code := httpStatus(t, b.Addr, "/ws"); code != http.StatusUpgradeRequired {
		t.Fatalf("GET /ws = %d, want 426", code)
	}
	connectAs(t, b.Addr, tok) // the third and last slot
	expectRefused(t, "ws://"+b.Addr+"/ws?token="+tok, nil, http.StatusServiceUnavailable, tok)
	refusals := make(map[string]float64)
	for _, reason := range []string{"auth", "origin", "bad_request", "limit"} {
		refusals[`wsbridge_handshakes_refused_total{reason="`+reason+`"}`] = 1
	}
	waitMetrics(t, url, refusals)

	// A normal close and its subscription going away.
	_ = a.c.Close(websocket.StatusNormalClosure, "bye")
	waitMetrics(t, url, map[string]float64{
		`wsbridge_connections_closed_total{code="1000"}`: 1,
		"wsbridge_connections":                           2,
		"wsbridge_subscriptions":                         1,
		"wsbridge_nats_subscriptions":                    1,
	})
}

// TestMetricsSlowConsumer: a client that stops reading is cut, and the
// messages it could not take are counted as dropped.
func TestMetricsSlowConsumer(t *testing.T) {
	b, url := metricsBridge(t, func(c *bridge.Config) { c.WriteBuffer = 16 << 10 })
	tok := userToken(t, "slow", allowAll())
	stuck := testutil.DialWS(t, b.Addr, "/ws?token="+tok)
	stuck.ExpectText(`{"op":"hello"`)
	stuck.SendText(`{"op":"sub","id":"s","subject":"metrics.slow"}`)
	stuck.ExpectText(`{"op":"ok"`)
	// The client reads nothing more: its socket buffers fill, then its
	// write queue.
	pub := connectAs(t, b.Addr, tok)
	payload := strings.Repeat("x", 8<<10)
	deadline := time.Now().Add(wait)
	for scrape(t, url)["wsbridge_slow_consumer_disconnects_total"] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stuck client was never cut as a slow consumer")
		}
		for range 50 {
			pub.send(map[string]any{"op": "pub", "subject": "metrics.slow", "data": payload})
		}
		pub.send(map[string]any{"op": "ping", "id": "sync"})
		pub.expect("pong", "sync")
	}
	// The close is counted when the worker cuts the connection, after the
	// slow-consumer counter moved: wait for it, not read it.
	waitMetrics(t, url, map[string]float64{
		atLeast + `wsbridge_connections_closed_total{code="1008"}`: 1,
		atLeast + "wsbridge_deliveries_dropped_total":              1,
	})
}
