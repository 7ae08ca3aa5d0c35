package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestUpgradeDuringDrain: a client admitted just before Shutdown begins
// has its 101 and hello already; it then gets a 1001 close like the
// clients that were connected, not a bare FIN.
func TestUpgradeDuringDrain(t *testing.T) {
	ns := startTestNATS(t)
	overTransports(t, func(t *testing.T, tr transport) {
		srv := startTestBridgeOver(t, ns, tr, nil)
		shut := make(chan error, 1)
		hook := func() {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), confWait)
				defer cancel()
				shut <- srv.Shutdown(ctx)
			}()
			deadline := time.Now().Add(confWait)
			for !srv.draining.Load() && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // polling the condition itself
			}
		}
		srv.beforeRegister.Store(&hook)
		c := dialWS(t, srv)
		if reason := c.expectClose(ws.StatusGoingAway); reason != "server shutting down" {
			t.Fatalf("close reason %q", reason)
		}
		c.expectEnd()
		select {
		case err := <-shut:
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		case <-time.After(confWait):
			t.Fatal("Shutdown did not return")
		}
	})
}
