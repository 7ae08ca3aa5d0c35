package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsbridge/internal/testutil"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"
)

// quickExit bounds how long the binary may take to refuse a setting.
const quickExit = 5 * time.Second

// runBinary runs wsbridge with env on top of a safe base (a free public
// port, an in-process-only embedded NATS, a private data dir), so that a
// check that fails to refuse never binds a shared port. It kills the
// process after wait and returns its exit status, its output and how long
// it ran.
func runBinary(t *testing.T, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, wsbridgeBinary(t), args...)
	cmd.Env = append(os.Environ(), "BRIDGE_LISTEN=127.0.0.1:0", "BRIDGE_EMBEDDED_NATS_LISTEN=off",
		"BRIDGE_DATA_DIR="+t.TempDir(), "BRIDGE_NATS_URL=", "BRIDGE_AUTH_MODE=none", "BRIDGE_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("wsbridge still running after %v:\n%s", wait, out)
	case err == nil:
		return 0, string(out), took
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out), took
	default:
		t.Fatalf("running wsbridge: %v", err)
	}
	return 0, "", 0
}

// holdPort listens on a loopback port for the test's lifetime.
func holdPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigErrorsNameTheVariable: every setting the bridge cannot use
// exits 2 at once, before NATS is started, with a message naming the
// variable and what would be right.
func TestConfigErrorsNameTheVariable(t *testing.T) {
	plain := writeFile(t, "plain", "not a directory")
	garbage := writeFile(t, "garbage.pem", "not PEM")
	cases := []struct {
		name    string
		env     []string
		mention []string // all in the output
	}{
		{"duration without unit", []string{"BRIDGE_PING_INTERVAL=30"}, []string{"BRIDGE_PING_INTERVAL", "30s"}},
		{"bad duration", []string{"BRIDGE_HANDSHAKE_TIMEOUT=soon"}, []string{"BRIDGE_HANDSHAKE_TIMEOUT", "250ms"}},
		{"bad bool", []string{"BRIDGE_COMPRESSION=yes"}, []string{"BRIDGE_COMPRESSION", "true or false"}},
		{"negative workers", []string{"BRIDGE_WORKERS=-1"}, []string{"BRIDGE_WORKERS", "positive"}},
		{"zero NATS ping interval", []string{"BRIDGE_NATS_PING_INTERVAL=0s"}, []string{"BRIDGE_NATS_PING_INTERVAL", "5s"}},
		{"listen without port", []string{"BRIDGE_LISTEN=nonsense"}, []string{"BRIDGE_LISTEN", "host:port"}},
		{"admin listen without port", []string{"BRIDGE_ADMIN_LISTEN=localhost"}, []string{"BRIDGE_ADMIN_LISTEN", "host:port"}},
		{"embedded listen without port", []string{"BRIDGE_EMBEDDED_NATS_LISTEN=127.0.0.1"}, []string{"BRIDGE_EMBEDDED_NATS_LISTEN", "host:port"}},
		{"bad NATS URL", []string{"BRIDGE_NATS_URL=nats://[::1"}, []string{"BRIDGE_NATS_URL", "nats://host:4222"}},
		{"empty NATS URL entry", []string{"BRIDGE_NATS_URL=nats://a:4222,,nats://b:4222"}, []string{"BRIDGE_NATS_URL", "empty entry"}},
		{"bad anon pub pattern", []string{"BRIDGE_ANON_PUB=orders..x"}, []string{"BRIDGE_ANON_PUB", `"orders..x"`, "orders.>"}},
		{"bad anon sub pattern", []string{"BRIDGE_ANON_SUB=chat.>,a.>.b"}, []string{"BRIDGE_ANON_SUB", `"a.>.b"`}},
		{"unknown auth mode", []string{"BRIDGE_AUTH_MODE=oauth"}, []string{"BRIDGE_AUTH_MODE", "none", "jwt"}},
		{"jwt without key", []string{"BRIDGE_AUTH_MODE=jwt"}, []string{"BRIDGE_AUTH_MODE", "BRIDGE_JWT_SECRET", "BRIDGE_JWT_PUBLIC_KEY", "BRIDGE_JWT_JWKS"}},
		{"jwt with two keys", []string{"BRIDGE_AUTH_MODE=jwt", "BRIDGE_JWT_SECRET=s3cret-value", "BRIDGE_JWT_JWKS=" + garbage},
			[]string{"BRIDGE_JWT_SECRET", "BRIDGE_JWT_JWKS", "exactly one"}},
		{"jwt settings in mode none", []string{"BRIDGE_JWT_SECRET=s3cret-value", "BRIDGE_JWT_ISSUER=me"},
			[]string{"BRIDGE_AUTH_MODE", "BRIDGE_JWT_SECRET", "BRIDGE_JWT_ISSUER"}},
		{"missing public key file", []string{"BRIDGE_AUTH_MODE=jwt", "BRIDGE_JWT_PUBLIC_KEY=/nonexistent/key.pem"}, []string{"BRIDGE_JWT_PUBLIC_KEY", "PEM"}},
		{"public key not PEM", []string{"BRIDGE_AUTH_MODE=jwt", "BRIDGE_JWT_PUBLIC_KEY=" + garbage}, []string{"BRIDGE_JWT_PUBLIC_KEY", "PEM"}},
		{"JWKS not JSON", []string{"BRIDGE_AUTH_MODE=jwt", "BRIDGE_JWT_JWKS=" + garbage}, []string{"BRIDGE_JWT_JWKS", "JSON Web Key Set"}},
		{"bad origin", []string{"BRIDGE_ALLOWED_ORIGINS=https://ok.example.com,app.example.com/path"}, []string{"BRIDGE_ALLOWED_ORIGINS", `"app.example.com/path"`, "https://"}},
		{"TLS cert without key", []string{"BRIDGE_TLS_CERT=" + garbage}, []string{"BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY"}},
		{"missing TLS cert file", []string{"BRIDGE_TLS_CERT=/nonexistent/cert.pem", "BRIDGE_TLS_KEY=" + garbage}, []string{"BRIDGE_TLS_CERT", "PEM"}},
		{"TLS files not PEM", []string{"BRIDGE_TLS_CERT=" + garbage, "BRIDGE_TLS_KEY=" + garbage}, []string{"BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY", "PEM"}},
		{"data dir cannot be created", []string{"BRIDGE_DATA_DIR=/proc/nope"}, []string{"BRIDGE_DATA_DIR", "/proc/nope", "writable directory"}},
		{"data dir is a file", []string{"BRIDGE_DATA_DIR=" + plain}, []string{"BRIDGE_DATA_DIR", "not a directory"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, took := runBinary(t, tc.env)
			if code != 2 {
				t.Fatalf("exit %d, want 2:\n%s", code, out)
			}
			for _, m := range tc.mention {
				if !strings.Contains(out, m) {
					t.Errorf("output does not mention %s:\n%s", m, out)
				}
			}
			if took > quickExit {
				t.Errorf("took %v to exit, want < %v", took, quickExit)
			}
			for _, started := range []string{"embedded nats-server started", "NATS connected", "wsbridge listening"} {
				if strings.Contains(out, started) {
					t.Errorf("%q logged before the error: the check comes too late:\n%s", started, out)
				}
			}
			if strings.Contains(out, "s3cret-value") {
				t.Errorf("the error shows a secret:\n%s", out)
			}
			if strings.Contains(out, "envconfig.Process") || strings.Contains(out, "auth: ") {
				t.Errorf("raw library text instead of the variable:\n%s", out)
			}
		})
	}
}

// TestStartFailuresExitAtOnce: what is not a configuration error but
// still keeps the bridge from starting (a port in use, storage the
// embedded nats-server refuses) exits 1 at once with the cause and the
// variable, and a taken public or admin port is found before NATS starts.
func TestStartFailuresExitAtOnce(t *testing.T) {
	jsBlocked := t.TempDir()
	if err := os.WriteFile(filepath.Join(jsBlocked, "jetstream"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	taken := holdPort(t)
	cases := []struct {
		name       string
		env        []string
		mention    []string
		beforeNATS bool
	}{
		{"public port in use", []string{"BRIDGE_LISTEN=" + taken}, []string{"BRIDGE_LISTEN", "address already in use"}, true},
		{"admin port in use", []string{"BRIDGE_ADMIN_LISTEN=" + taken}, []string{"BRIDGE_ADMIN_LISTEN", "address already in use"}, true},
		{"embedded NATS port in use", []string{"BRIDGE_EMBEDDED_NATS_LISTEN=" + taken},
			[]string{"BRIDGE_EMBEDDED_NATS_LISTEN", "address already in use"}, false},
		{"JetStream cannot use the data dir", []string{"BRIDGE_DATA_DIR=" + jsBlocked},
			[]string{"BRIDGE_DATA_DIR", "JetStream", "not a directory"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, took := runBinary(t, tc.env)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			for _, m := range tc.mention {
				if !strings.Contains(out, m) {
					t.Errorf("output does not mention %s:\n%s", m, out)
				}
			}
			if took > quickExit {
				t.Errorf("took %v to exit, want < %v", took, quickExit)
			}
			if strings.Contains(out, "did not start (is") || strings.Contains(out, "not ready after") {
				t.Errorf("a guess instead of nats-server's own error:\n%s", out)
			}
			if tc.beforeNATS && strings.Contains(out, "embedded nats-server") {
				t.Errorf("NATS started before the listener failed:\n%s", out)
			}
		})
	}
}

// TestUnreachableNATSLogsCause: a NATS that refuses connections is logged
// with the cause on every early retry, and the connection that finally
// succeeds says how many attempts failed.
func TestUnreachableNATSLogsCause(t *testing.T) {
	port := freePort(t)
	p := startProcess(t, "BRIDGE_NATS_URL=nats://127.0.0.1:"+strconv.Itoa(port))
	for _, want := range []string{`"msg":"NATS not reachable yet`, `"attempt":2`, `"attempt":3`} {
		if !p.logs.waitFor(want, wait) {
			t.Fatalf("no %s line:\n%s", want, p.logs)
		}
	}
	if !p.logs.waitFor("connection refused", 0) {
		t.Fatalf("the retries do not say why they failed:\n%s", p.logs)
	}
	opts := natstest.DefaultTestOptions
	opts.Port = port
	ns := natstest.RunServer(&opts)
	t.Cleanup(ns.Shutdown)
	if !p.logs.waitFor(`"msg":"NATS connected"`, wait) || !p.logs.waitFor(`"failed_attempts"`, 0) {
		t.Fatalf("no NATS connected line with the failed attempts:\n%s", p.logs)
	}
}

// TestCleanShutdownNoNATSWarning: SIGTERM closes the NATS connection on
// purpose, which is no warning; and with BRIDGE_EMBEDDED_NATS_LISTEN=off
// no log line claims a NATS listen address.
func TestCleanShutdownNoNATSWarning(t *testing.T) {
	p := startProcess(t, "BRIDGE_NATS_URL=", "BRIDGE_EMBEDDED_NATS_LISTEN=off", "BRIDGE_DATA_DIR="+t.TempDir())
	if !p.logs.waitFor(`"msg":"NATS connected"`, wait) {
		t.Fatalf("no NATS connected line:\n%s", p.logs)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.logs)
	}
	logs := p.logs.String()
	if strings.Contains(logs, "NATS disconnected") || strings.Contains(logs, "err=<nil>") || strings.Contains(logs, `"err":null`) {
		t.Errorf("a clean shutdown logs a NATS disconnect:\n%s", logs)
	}
	if strings.Contains(logs, "nats://") || strings.Contains(logs, ":4222") {
		t.Errorf("an in-process-only embedded server is shown with a listen address:\n%s", logs)
	}
	if !strings.Contains(logs, `"url":"in-process"`) {
		t.Errorf("the NATS connected line does not say in-process:\n%s", logs)
	}
}

// TestNATSFailoverToOtherURL: with two URLs in BRIDGE_NATS_URL, losing
// the server in use moves the bridge to the other one.
func TestNATSFailoverToOtherURL(t *testing.T) {
	a, b := testutil.StartNATS(t, false, nil), testutil.StartNATS(t, false, nil)
	p := startProcess(t, "BRIDGE_NATS_URL="+a.ClientURL()+","+b.ClientURL())
	if !p.logs.waitFor(`"msg":"NATS connected"`, wait) {
		t.Fatalf("no NATS connected line:\n%s", p.logs)
	}
	var first, second *natsserver.Server = a, b
	if a.NumClients() == 0 {
		first, second = b, a
	}
	first.Shutdown()
	if !p.logs.waitFor(`"msg":"NATS reconnected"`, wait) {
		t.Fatalf("no NATS reconnected line:\n%s", p.logs)
	}
	if !p.logs.waitFor(`"url":"`+second.ClientURL()+`"`, 0) {
		t.Fatalf("not reconnected to %s:\n%s", second.ClientURL(), p.logs)
	}
}

// authErrorCounter is a nats-server logger that counts refused
// credentials.
type authErrorCounter struct {
	n    atomic.Int64
	more chan struct{} // gets a token per refusal, without blocking
}

func (a *authErrorCounter) Noticef(string, ...any) {}
func (a *authErrorCounter) Warnf(string, ...any)   {}
func (a *authErrorCounter) Fatalf(string, ...any)  {}
func (a *authErrorCounter) Debugf(string, ...any)  {}
func (a *authErrorCounter) Tracef(string, ...any)  {}
func (a *authErrorCounter) Errorf(format string, v ...any) {
	if msg := strings.ToLower(fmt.Sprintf(format, v...)); strings.Contains(msg, "authentication error") || strings.Contains(msg, "authorization") {
		a.n.Add(1)
		select {
		case a.more <- struct{}{}:
		default:
		}
	}
}

// TestNATSAuthFailureKeepsRetrying: credentials NATS refuses are logged
// with the cause, and the bridge does not give up after the same error
// twice (nats.go's default): once NATS takes its credentials, it connects.
func TestNATSAuthFailureKeepsRetrying(t *testing.T) {
	port := freePort(t)
	run := func(token string) *natsserver.Server {
		opts := natstest.DefaultTestOptions
		opts.Port, opts.Authorization = port, token
		ns := natstest.RunServer(&opts)
		t.Cleanup(ns.Shutdown)
		return ns
	}
	ns := run("right-token")
	counter := &authErrorCounter{more: make(chan struct{}, 1)}
	ns.SetLogger(counter, false, false)
	p := startProcess(t, "BRIDGE_NATS_URL=nats://127.0.0.1:"+strconv.Itoa(port), "BRIDGE_NATS_TOKEN=wrong-token")
	if !p.logs.waitFor(`"msg":"NATS connection attempt failed`, wait) || !p.logs.waitFor("Authorization Violation", 0) {
		t.Fatalf("the refused credentials are not logged:\n%s", p.logs)
	}
	deadline := time.After(wait)
	for counter.n.Load() < 3 { // nats.go aborts after the second by default
		select {
		case <-counter.more:
		case <-deadline:
			t.Fatalf("the bridge stopped trying after %d refusals:\n%s", counter.n.Load(), p.logs)
		}
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	run("wrong-token") // the credentials are fixed on the NATS side
	if !p.logs.waitFor(`"msg":"NATS connected"`, wait) {
		t.Fatalf("the bridge did not connect once NATS took its credentials:\n%s", p.logs)
	}
	if strings.Contains(p.logs.String(), "wrong-token") {
		t.Fatalf("the NATS token reached the log:\n%s", p.logs)
	}
}
