package testutil

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
)

// StartNATS runs a nats-server for the test on a random TCP port of
// 127.0.0.1, with JetStream (its store in t.TempDir()) when jetstream is
// set, and shuts it down at cleanup. mutate, when not nil, edits the
// options last, so it may override any of them (a fixed Port to restart
// a server where the previous one listened, say).
func StartNATS(t testing.TB, jetstream bool, mutate func(*server.Options)) *server.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = -1
	if jetstream {
		opts.JetStream = true
		opts.StoreDir = t.TempDir()
	}
	if mutate != nil {
		mutate(&opts)
	}
	s := natstest.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	return s
}

// NATSClient connects to ns as a microservice would, with nats.go's
// defaults unless opts say otherwise, and closes the connection at
// cleanup.
func NATSClient(t testing.TB, ns *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connecting to nats-server at %s: %v", ns.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}
