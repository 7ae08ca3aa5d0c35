package main

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestRebalanceConfig(t *testing.T) {
	for _, k := range []string{"BRIDGE_REBALANCE", "BRIDGE_REBALANCE_SLACK", "BRIDGE_REBALANCE_RATE", "BRIDGE_REBALANCE_MIN_CONNECTIONS", "BRIDGE_MAX_HANDSHAKE_RATE"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Rebalance || cfg.RebalanceSlack != 0.10 || cfg.RebalanceRate != 50 || cfg.RebalanceMin != 100 || cfg.MaxHandshakeRate != 1000 {
		t.Fatalf("defaults: %+v", cfg)
	}
	// 50/s moves the 1,500 excess clients in 30 s.
	if secs := 1500 / cfg.RebalanceRate; secs != 30 {
		t.Fatalf("1,500 clients take %vs at the default rate", secs)
	}
	cases := []struct{ env, val string }{
		{"BRIDGE_REBALANCE_SLACK", "0"},
		{"BRIDGE_REBALANCE_RATE", "-1"},
		{"BRIDGE_REBALANCE_MIN_CONNECTIONS", "-5"},
		{"BRIDGE_MAX_HANDSHAKE_RATE", "-1"},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.val)
			_, err := loadConfig()
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.env) {
				t.Fatalf("%s=%s: %v, want a usage error naming it", tc.env, tc.val, err)
			}
		})
	}
}
