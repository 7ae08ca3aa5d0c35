package main

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"wsbridge/bridge"
)

// clusterHTML is the cluster page: it polls /cluster.json once a second.
//
//go:embed cluster.html
var clusterHTML []byte

// clusterPage serves the admin listener's /cluster page and the
// /cluster.json it reads: srv's view of every node, built from the
// announcements the nodes exchange over NATS.
func clusterPage(srv *bridge.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == "/cluster" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
			_, _ = w.Write(clusterHTML)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Nodes []bridge.NodeStatus `json:"nodes"`
		}{srv.Cluster()})
	})
}
