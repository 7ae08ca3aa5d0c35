package integration

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"wsbridge/bridge"
	"wsbridge/internal/testutil"
)

// TestDrainSpreadsCloses: on Shutdown the node goes unready, then closes
// its clients with 1001 spread evenly over DrainSpread instead of all at
// once, so the rest of the fleet absorbs the reconnects gradually.
func TestDrainSpreadsCloses(t *testing.T) {
	const (
		clients = 40
		spread  = 2 * time.Second
	)
	ns := testutil.StartNATS(t, false, nil)
	b := startBridge(t, ns, func(c *bridge.Config) { c.DrainSpread = spread })
	type closed struct {
		at   time.Time
		code websocket.StatusCode
	}
	results := make(chan closed, clients)
	for range clients {
		w := dial(t, b.Addr)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*wait)
			defer cancel()
			ce, _ := w.readClose(ctx) // no close frame: code 0, caught below
			results <- closed{time.Now(), ce.Code}
		}()
	}
	// A client has its hello before its connection is registered: wait,
	// or Shutdown may refuse a late one without a close frame.
	testutil.Eventually(t, "every client registered", func() bool { return b.Stats().Connections == clients })
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(ctx) }()

	var times []time.Duration
	for range clients {
		r := <-results
		if r.code != websocket.StatusGoingAway {
			t.Fatalf("close code %d, want 1001", r.code)
		}
		times = append(times, r.at.Sub(start))
		if len(times) == 1 {
			// The node is draining while the spread goes on.
			if code := httpStatus(t, b.Addr, "/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d during the drain, want 503", code)
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	slices.Sort(times)
	first, last := times[0], times[len(times)-1]
	t.Logf("closes from %v to %v over a %v spread", first.Round(time.Millisecond), last.Round(time.Millisecond), spread)
	// Client i of n is closed at i/n of the spread: the last at 39/40.
	if last-first < spread/2 {
		t.Fatalf("closes span %v, want most of %v: they were not spread", last-first, spread)
	}
	if last > spread+wait/2 {
		t.Fatalf("last close after %v, want about %v", last, spread)
	}
	// Evenly: each half of the spread gets about half of the clients.
	early := 0
	for _, d := range times {
		if d < spread/2 {
			early++
		}
	}
	if early < clients*3/10 || early > clients*7/10 {
		t.Fatalf("%d of %d clients closed in the first half of the spread, want about half", early, clients)
	}
}
