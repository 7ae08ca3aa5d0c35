package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestHealthURL(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"default", nil, "http://127.0.0.1:8080/healthz"},
		{"empty host", map[string]string{"BRIDGE_LISTEN": ":9000"}, "http://127.0.0.1:9000/healthz"},
		{"unspecified v4", map[string]string{"BRIDGE_LISTEN": "0.0.0.0:9000"}, "http://127.0.0.1:9000/healthz"},
		{"unspecified v6", map[string]string{"BRIDGE_LISTEN": "[::]:9000"}, "http://127.0.0.1:9000/healthz"},
		{"specific host", map[string]string{"BRIDGE_LISTEN": "10.1.2.3:9000"}, "http://10.1.2.3:9000/healthz"},
		{"v6 loopback", map[string]string{"BRIDGE_LISTEN": "[::1]:9000"}, "http://[::1]:9000/healthz"},
		{"tls", map[string]string{"BRIDGE_TLS_CERT": "/etc/cert.pem"}, "https://127.0.0.1:8080/healthz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := healthURL(envMap(tc.env))
			if err != nil || got != tc.want {
				t.Fatalf("healthURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := healthURL(envMap(map[string]string{"BRIDGE_LISTEN": "nonsense"})); err == nil {
		t.Fatal("BRIDGE_LISTEN without a port accepted")
	}
}

func TestHealthcheck(t *testing.T) {
	var status atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	})
	plain := httptest.NewServer(h)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(h)
	defer tlsSrv.Close()

	cases := []struct {
		name   string
		env    map[string]string
		status int
		ok     bool
	}{
		{"http 200", map[string]string{"BRIDGE_LISTEN": plain.Listener.Addr().String()}, 200, true},
		{"https self-signed 200", map[string]string{"BRIDGE_LISTEN": tlsSrv.Listener.Addr().String(), "BRIDGE_TLS_CERT": "x"}, 200, true},
		{"503", map[string]string{"BRIDGE_LISTEN": plain.Listener.Addr().String()}, 503, false},
		{"http to a TLS listener", map[string]string{"BRIDGE_LISTEN": tlsSrv.Listener.Addr().String()}, 200, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status.Store(int32(tc.status))
			var out bytes.Buffer
			err := healthcheck(context.Background(), &out, envMap(tc.env))
			if (err == nil) != tc.ok {
				t.Fatalf("healthcheck: %v, want ok=%v", err, tc.ok)
			}
			if errors.Is(err, errUsage) {
				t.Fatal("a failed healthcheck must exit 1, not 2")
			}
			if tc.ok && strings.Count(out.String(), "\n") != 1 {
				t.Fatalf("output %q, want one line", out.String())
			}
		})
	}
}

func TestRunArguments(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		usage bool   // exit status 2
		out   string // in stdout
	}{
		{"help", []string{"-h"}, false, "wsbridge healthcheck"},
		{"version", []string{"version"}, false, runtime.Version()},
		{"unknown", []string{"serve"}, true, ""},
		{"extra", []string{"version", "now"}, true, ""},
		{"token help", []string{"token", "-h"}, false, "-sub-allow"},
		{"token bad flag", []string{"token", "-nope"}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, &out, io.Discard, nil)
			if errors.Is(err, errUsage) != tc.usage || (!tc.usage && err != nil) {
				t.Fatalf("run(%q) = %v", tc.args, err)
			}
			if tc.usage && !strings.Contains(err.Error(), "healthcheck") && !strings.Contains(err.Error(), "-h") {
				t.Fatalf("message does not point to the valid arguments: %v", err)
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Fatalf("output lacks %q:\n%s", tc.out, out.String())
			}
		})
	}
}

// TestSecretsTagged: every field that looks like a secret is tagged so,
// and tagged values never reach the start line.
func TestSecretsTagged(t *testing.T) {
	cfg := config{NATSURL: "nats://u:pw-in-url@h:4222", LogLevel: "info"}
	var secrets []string
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		looksSecret := strings.Contains(name, "SECRET") || strings.Contains(name, "TOKEN") || strings.Contains(name, "PASSWORD")
		if looksSecret != (f.Tag.Get("secret") == "true") {
			t.Errorf("%s: secret tag %q", name, f.Tag.Get("secret"))
		}
		if f.Tag.Get("secret") == "true" {
			s := "value-of-" + name
			reflect.ValueOf(&cfg).Elem().Field(i).SetString(s)
			secrets = append(secrets, s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", cfg.logAttr())
	for _, s := range append(secrets, "pw-in-url") {
		if strings.Contains(buf.String(), s) {
			t.Errorf("start line shows %q:\n%s", s, buf.String())
		}
	}
	for _, want := range []string{`"BRIDGE_JWT_SECRET":"[REDACTED]"`, `"BRIDGE_LOG_LEVEL":"info"`, `"BRIDGE_NATS_URL":"nats://[REDACTED]@h:4222"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("start line lacks %s:\n%s", want, buf.String())
		}
	}
}

// TestConfigIgnoresUnprefixed: envconfig, given a prefix, falls back to
// the bare tag name (LISTEN for BRIDGE_LISTEN); stray variables such as
// these in a container must not change the configuration.
func TestConfigIgnoresUnprefixed(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "BRIDGE_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	defaults, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LISTEN", ":1")
	t.Setenv("WORKERS", "99")
	t.Setenv("LOG_LEVEL", "debug")
	t.Setenv("NATS_URL", "nats://stray:4222")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || cfg.Workers != 0 || cfg.LogLevel != "info" || cfg.NATSURL != "" {
		t.Errorf("unprefixed variables read: Listen %q, Workers %d, LogLevel %q, NATSURL %q", cfg.Listen, cfg.Workers, cfg.LogLevel, cfg.NATSURL)
	}
	if !reflect.DeepEqual(cfg, defaults) {
		t.Errorf("config %+v, want the defaults %+v", cfg, defaults)
	}
}

// TestConfigTagsFullNames: every field names its whole variable, since
// envconfig runs without a prefix (see config).
func TestConfigTagsFullNames(t *testing.T) {
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if name := f.Tag.Get("envconfig"); !strings.HasPrefix(name, "BRIDGE_") || name != strings.ToUpper(name) {
			t.Errorf("%s: envconfig tag %q, want BRIDGE_ and upper case", f.Name, name)
		}
	}
}
