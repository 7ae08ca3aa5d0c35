package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wsbridge/internal/testutil"
	"wsbridge/netpoll"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// wsbridgeBinary builds the real program once per test run.
func wsbridgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wsbridge-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wsbridge")
		args := []string{"build", "-o", binPath}
		if netpoll.Portable {
			// The program under test runs the backend the tests run.
			args = append(args, "-tags", "portable")
		}
		out, err := exec.Command("go", append(args, "wsbridge")...).CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building wsbridge: %v", buildErr)
	}
	return binPath
}

// process is a running wsbridge binary.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *logTail
	done chan error
}

// startProcess runs wsbridge with env (BRIDGE_LISTEN defaults to a free
// loopback port) and waits until it listens.
func startProcess(t *testing.T, env ...string) *process {
	t.Helper()
	cmd := exec.Command(wsbridgeBinary(t))
	cmd.Env = append(os.Environ(), "BRIDGE_LISTEN=127.0.0.1:0", "BRIDGE_LOG_FORMAT=json", "BRIDGE_DRAIN_TIMEOUT=5s")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &logTail{}, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.add(line)
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "wsbridge listening" {
				addrCh <- rec.Addr
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.addr = <-addrCh:
	case err := <-p.done:
		t.Fatalf("wsbridge exited before listening: %v\n%s", err, p.logs)
	case <-time.After(wait * 2):
		t.Fatalf("wsbridge did not start\n%s", p.logs)
	}
	return p
}

func (p *process) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(wait * 2):
		t.Fatalf("wsbridge did not exit\n%s", p.logs)
		return nil
	}
}

type logTail struct {
	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed by the next add; nil when nobody waits
}

func (l *logTail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if l.grew != nil {
		close(l.grew)
		l.grew = nil
	}
}

// waitFor reports whether a line containing sub arrives within d.
func (l *logTail) waitFor(sub string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if strings.Contains(line, sub) {
				l.mu.Unlock()
				return true
			}
		}
		if l.grew == nil {
			l.grew = make(chan struct{})
		}
		grew := l.grew
		l.mu.Unlock()
		select {
		case <-grew:
		case <-deadline:
			return false
		}
	}
}
func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSIGTERMDrain: the real binary closes clients with 1001 and exits 0.
func TestSIGTERMDrain(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL())
	clients := make([]*wsClient, 5)
	for i := range clients {
		clients[i] = dial(t, p.addr)
		clients[i].subscribe("s", "drain.x", "")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if code, reason := c.closeStatus(); code != websocket.StatusGoingAway || reason == "" {
			t.Fatalf("close %d %q, want 1001", code, reason)
		}
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.logs)
	}
}

// TestEmbeddedNATSWalkthrough is the README's walkthrough: the default
// setup starts nats-server in-process, a service publishes on its port and
// a browser-style client receives, and back.
func TestEmbeddedNATSWalkthrough(t *testing.T) {
	natsPort := freePort(t)
	p := startProcess(t,
		"BRIDGE_NATS_URL=",
		"BRIDGE_EMBEDDED_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(natsPort),
		"BRIDGE_DATA_DIR="+t.TempDir())
	svc, err := nats.Connect("nats://127.0.0.1:" + strconv.Itoa(natsPort))
	if err != nil {
		t.Fatalf("embedded NATS not reachable: %v\n%s", err, p.logs)
	}
	defer svc.Close()
	js, err := svc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream not enabled in the embedded server: %v", err)
	}
	c := dial(t, p.addr)
	c.subscribe("s1", "orders.>", "")
	if err := svc.Publish("orders.new", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("msg", ""); string(f.Data) != `{"id":1}` {
		t.Fatalf("got %s", f.raw)
	}
	back := make(chan *nats.Msg, 1)
	if _, err := svc.ChanSubscribe("orders.ack", back); err != nil {
		t.Fatal(err)
	}
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.send(`{"op":"pub","subject":"orders.ack","data":{"id":1},"id":"p1"}`)
	c.expect("ok", "p1")
	select {
	case m := <-back:
		if string(m.Data) != `{"id":1}` {
			t.Fatalf("service got %q", m.Data)
		}
	case <-time.After(wait):
		t.Fatal("service got nothing")
	}
	if code := httpStatus(t, p.addr, "/"); code != 200 {
		t.Fatalf("demo page: %d", code)
	}
	if code := httpStatus(t, p.addr, "/bridge.js"); code != 200 {
		t.Fatalf("/bridge.js: %d", code)
	}
	c.c.Close(websocket.StatusNormalClosure, "done")
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestConfigErrorsExit2(t *testing.T) {
	cases := []struct {
		name, env, mention string
	}{
		{"bad duration", "BRIDGE_PING_INTERVAL=soon", "BRIDGE_PING_INTERVAL"},
		{"bad size", "BRIDGE_WRITE_BUFFER=lots", "BRIDGE_WRITE_BUFFER"},
		{"negative", "BRIDGE_DRAIN_TIMEOUT=-1s", "BRIDGE_DRAIN_TIMEOUT"},
		{"bad int", "BRIDGE_WORKERS=many", "BRIDGE_WORKERS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(wsbridgeBinary(t))
			cmd.Env = append(os.Environ(), tc.env)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.mention) {
				t.Fatalf("message does not name %s:\n%s", tc.mention, out)
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	out, err := exec.Command(wsbridgeBinary(t), "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, v := range []string{"BRIDGE_LISTEN", "BRIDGE_NATS_URL", "BRIDGE_DATA_DIR", "BRIDGE_EMBEDDED_NATS_LISTEN",
		"BRIDGE_HANDSHAKE_TIMEOUT", "BRIDGE_WORKERS", "BRIDGE_WRITE_BUFFER", "BRIDGE_PING_INTERVAL",
		"BRIDGE_MAX_PAYLOAD", "BRIDGE_DRAIN_TIMEOUT", "BRIDGE_NATS_CREDS", "BRIDGE_NATS_TOKEN",
		"BRIDGE_NATS_USER", "BRIDGE_NATS_PASSWORD"} {
		if !strings.Contains(string(out), v) {
			t.Errorf("-h does not mention %s", v)
		}
	}
	_, _ = io.Discard.Write(out)
}

// exitCode runs the binary with args and env and returns its exit status
// and combined output.
func exitCode(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(wsbridgeBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		t.Fatalf("running wsbridge %v: %v", args, err)
		return 0, ""
	}
}

func TestVersionSubcommand(t *testing.T) {
	code, out := exitCode(t, nil, "version")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{"wsbridge", runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("wsbridge version does not print %q:\n%s", want, out)
		}
	}
}

func TestUnknownSubcommandExit2(t *testing.T) {
	code, out := exitCode(t, nil, "serve")
	if code != 2 || !strings.Contains(out, "version") || !strings.Contains(out, "healthcheck") {
		t.Fatalf("exit %d, want 2 with the valid subcommands named:\n%s", code, out)
	}
}

func TestHealthcheckSubcommand(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL())
	cases := []struct {
		name, listen string
		want         int
	}{
		{"running bridge", p.addr, 0},
		{"nothing listening", "127.0.0.1:" + strconv.Itoa(freePort(t)), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := exitCode(t, []string{"BRIDGE_LISTEN=" + tc.listen, "BRIDGE_TLS_CERT="}, "healthcheck")
			if code != tc.want {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.want, out)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 {
				t.Fatalf("want one line of output, got:\n%s", out)
			}
		})
	}
}

// TestStartLogConfigRedactsSecrets: the "starting" line carries the
// version and the configuration, and no log line carries a secret.
func TestStartLogConfigRedactsSecrets(t *testing.T) {
	const secret = "some-unique-secret"
	ns := testutil.StartNATS(t, false, nil)
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_AUTH_MODE=jwt",
		"BRIDGE_JWT_SECRET="+secret, "BRIDGE_NODE_ID=cfg-node")
	if !p.logs.waitFor(`"msg":"NATS connected"`, wait) {
		t.Errorf("no NATS connected line:\n%s", p.logs)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.logs)
	}
	logs := p.logs.String()
	if strings.Contains(logs, secret) {
		t.Fatalf("the JWT secret reached the log:\n%s", logs)
	}
	var start struct {
		Msg     string         `json:"msg"`
		Version string         `json:"version"`
		Config  map[string]any `json:"config"`
	}
	for _, line := range strings.Split(logs, "\n") {
		if json.Unmarshal([]byte(line), &start) == nil && start.Msg == "starting" {
			break
		}
	}
	if start.Msg != "starting" || start.Version == "" {
		t.Fatalf("no starting line with a version:\n%s", logs)
	}
	for k, want := range map[string]any{
		"BRIDGE_AUTH_MODE":  "jwt",
		"BRIDGE_NODE_ID":    "cfg-node",
		"BRIDGE_NATS_URL":   ns.ClientURL(),
		"BRIDGE_JWT_SECRET": "[REDACTED]",
		"BRIDGE_NATS_TOKEN": "",
	} {
		if got, ok := start.Config[k]; !ok || got != want {
			t.Errorf("config.%s = %v, want %v", k, got, want)
		}
	}
	if !strings.Contains(logs, "send the signal again") {
		t.Errorf("the drain line does not say a second signal exits:\n%s", logs)
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: wait}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// hasMetrics reports the names in want missing from an exposition body.
func missingMetrics(body string, want ...string) []string {
	var missing []string
	for _, name := range want {
		if !strings.Contains("\n"+body, "\n"+name) {
			missing = append(missing, name)
		}
	}
	return missing
}

func TestMetricsOnMainListener(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL())
	code, body := get(t, "http://"+p.addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d\n%s", code, body)
	}
	if m := missingMetrics(body, "go_goroutines", "process_resident_memory_bytes", "wsbridge_build_info"); m != nil {
		t.Fatalf("/metrics lacks %v", m)
	}
	if m := missingMetrics(body, "wsbridge_connections"); m != nil {
		t.Errorf("/metrics lacks %v", m)
	}
}

func TestAdminListener(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	admin := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_ADMIN_LISTEN="+admin)
	t.Run("admin serves metrics", func(t *testing.T) {
		code, body := get(t, "http://"+admin+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET admin /metrics = %d", code)
		}
		if m := missingMetrics(body, "go_goroutines", "process_resident_memory_bytes"); m != nil {
			t.Fatalf("admin /metrics lacks %v", m)
		}
	})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/healthz"} {
		t.Run("admin "+path, func(t *testing.T) {
			if code, _ := get(t, "http://"+admin+path); code != http.StatusOK {
				t.Fatalf("GET admin %s = %d", path, code)
			}
		})
	}
	t.Run("public listener has no metrics", func(t *testing.T) {
		if code, _ := get(t, "http://"+p.addr+"/metrics"); code != http.StatusNotFound {
			t.Fatalf("GET public /metrics = %d, want 404", code)
		}
		if code, _ := get(t, "http://"+p.addr+"/debug/pprof/"); code != http.StatusNotFound {
			t.Fatalf("GET public /debug/pprof/ = %d, want 404", code)
		}
		if code, _ := get(t, "http://"+p.addr+"/healthz"); code != http.StatusOK {
			t.Fatalf("GET public /healthz = %d", code)
		}
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.logs)
	}
	if _, err := net.DialTimeout("tcp", admin, wait); err == nil {
		t.Fatal("the admin listener outlived the process")
	}
}

// TestSecondSIGTERMExitsAtOnce: a client that never answers the close
// keeps the drain going; a second SIGTERM ends the process right away.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	p := startProcess(t, "BRIDGE_NATS_URL="+ns.ClientURL(), "BRIDGE_DRAIN_TIMEOUT=60s")
	stuck := testutil.DialWS(t, p.addr, "/ws")
	stuck.ExpectText(`{"op":"hello"`)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.logs.waitFor("send the signal again", wait) {
		t.Fatalf("no drain line:\n%s", p.logs)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := p.wait(t)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit %v, want death by SIGTERM\n%s", err, p.logs)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("exit %v, want death by SIGTERM\n%s", err, p.logs)
	}
	if strings.Contains(p.logs.String(), `"msg":"stopped"`) {
		t.Fatal("the drain finished before the second signal: the test proves nothing")
	}
}
