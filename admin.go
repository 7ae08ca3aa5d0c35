package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetrics is the registry every collector goes into, holding the Go
// and process collectors and wsbridge_build_info, and the /metrics
// handler that serves it.
func newMetrics(errorLog *log.Logger) (*prometheus.Registry, http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoGauge(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: errorLog}), nil
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

// publicHandler is what BRIDGE_LISTEN serves besides the WebSocket
// endpoints: the demo page, plus /metrics unless withMetrics is false
// because an admin listener keeps it.
func publicHandler(page, metrics http.Handler, withMetrics bool) http.Handler {
	if !withMetrics {
		return page
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	mux.Handle("/", page)
	return mux
}

// serveAdmin serves handler (adminMux) on ln in the background; a failure of Serve
// goes to errc. stop shuts it down, closing it outright after a second
// (a long /debug/pprof/profile or trace), and returns once Serve has.
func serveAdmin(ln net.Listener, handler http.Handler, errorLog *log.Logger, errc chan<- error) (stop func()) {
	admin := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errorLog,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := admin.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if admin.Shutdown(ctx) != nil {
			admin.Close()
		}
		<-done
	}
}

// adminMux serves the internal endpoints of BRIDGE_ADMIN_LISTEN. pprof
// is registered here by hand: http.DefaultServeMux is never served.
func adminMux(metrics, cluster http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	mux.Handle("/cluster", cluster)
	mux.Handle("/cluster.json", cluster)
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
