package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
		out, err := exec.Command("go", "build", "-o", binPath, "wsbridge").CombinedOutput()
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
}

func (l *logTail) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
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
	ns := startNATS(t, false)
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
