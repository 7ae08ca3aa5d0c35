// Package testutil holds the helpers wsbridge's tests share: a nats-server
// on a random port, a NATS client, a logger, polling with a deadline, and
// a hand-built WebSocket client on a plain TCP socket that writes and
// checks exact bytes.
//
// It is imported only by _test.go files. It knows RFC 6455 and nats-server
// but nothing of the bridge's JSON protocol, and it must never import
// wsbridge/bridge, so that bridge's own tests can use it without an import
// cycle. Every helper takes the test's testing.TB, calls t.Helper, fails
// the test with t.Fatal and releases what it started with t.Cleanup.
//
// A RawConn belongs to one goroutine; TryWrite is the one method safe to
// call from another goroutine while the test goroutine reads.
package testutil

import (
	"log/slog"
	"os"
	"testing"
	"time"
)

// Wait bounds every single expected event: a read, a handshake, a
// condition polled by Eventually. It is generous because the tests share
// small machines; a test that passes never waits for it.
const Wait = 10 * time.Second

// Eventually polls cond every 5 ms until it holds, and fails the test
// after Wait with "timed out waiting for " + what. cond runs on the
// calling goroutine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(Wait)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Logger returns a logger for a server under test: text on stderr at
// level WARN, or DEBUG when the environment variable WSBRIDGE_TEST_DEBUG
// is set, with the test's name on every record so that the output of
// parallel tests can be told apart.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("WSBRIDGE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
}
