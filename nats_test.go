package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestLinkLogRateLimit: the first failed attempts of an outage are each
// logged with their cause, later ones once per failureLogEvery with the
// count suppressed, and a clean close is no warning.
func TestLinkLogRateLimit(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_000_000, 0)
	ll := &linkLog{
		log:       slog.New(slog.NewJSONHandler(&buf, nil)),
		inProcess: true,
		now:       func() time.Time { return now },
		downSince: now,
	}
	refused := errors.New("dial tcp 127.0.0.1:20245: connect: connection refused")
	ll.failed(nil, nats.ErrNoServers) // nats.go's first attempt, cause hidden
	// One attempt a second for two minutes.
	for range 120 {
		now = now.Add(time.Second)
		ll.failed(nil, refused)
	}
	type line struct {
		Msg        string `json:"msg"`
		Level      string `json:"level"`
		Err        string `json:"err"`
		Attempt    int    `json:"attempt"`
		Suppressed int    `json:"suppressed"`
	}
	var lines []line
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		lines = append(lines, l)
	}
	// Attempts 2, 3 (the first few), then one per 30 s: 33, 63, 93.
	wantAttempts := []int{2, 3, 33, 63, 93}
	if len(lines) != len(wantAttempts) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(wantAttempts), buf.String())
	}
	total := ll.suppressed // not yet reported
	for i, l := range lines {
		if l.Attempt != wantAttempts[i] || l.Err != refused.Error() || l.Level != "WARN" {
			t.Errorf("line %d: %+v, want attempt %d with the cause", i, l, wantAttempts[i])
		}
		total += 1 + l.Suppressed
	}
	if total != 120 {
		t.Errorf("logged plus suppressed = %d, want every one of the 120 refused attempts", total)
	}
	if lines[2].Suppressed != 29 {
		t.Errorf("attempt 33 reports %d suppressed, want 29", lines[2].Suppressed)
	}

	buf.Reset()
	ll.down(nil, nil)
	if strings.Contains(buf.String(), "WARN") {
		t.Errorf("a clean close logs a warning: %s", buf.String())
	}
	buf.Reset()
	ll.down(nil, nats.ErrStaleConnection)
	if !strings.Contains(buf.String(), `"level":"WARN"`) || !strings.Contains(buf.String(), "stale connection") {
		t.Errorf("a lost link is not a warning with its cause: %s", buf.String())
	}
	// A new outage starts counting afresh.
	buf.Reset()
	now = now.Add(time.Second)
	ll.failed(nil, refused)
	if !strings.Contains(buf.String(), `"attempt":1`) {
		t.Errorf("the first failure of a new outage is not logged: %s", buf.String())
	}
}
