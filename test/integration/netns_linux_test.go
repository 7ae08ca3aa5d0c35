package integration

// The fault suite's network: real namespaces, veth pairs and nftables
// drop rules, so a fault sends nothing at all (no RST, no FIN), as a
// frozen VM or a firewall that drops does.
//
//	host (NATS nodes, test clients) ── veth ── router ns ── veth ── bridge ns (wsbridge)
//	      hostIP                         routerA   routerB             innerIP
//
// Names carry the test process's pid, so parallel runs do not collide
// and a later run can delete what a killed one left behind.
//
// Every packet between the bridge and anything else is forwarded by the
// router namespace, and drop rules live in its forward chain: nothing on
// the host's own ruleset changes, and the endpoints never see a local
// error (an output-chain drop can surface as EPERM to the sender).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// requireNetns skips the test unless it runs as root with ip and nft, or
// fails it when WSBRIDGE_REQUIRE_NETNS=1 (CI), so a broken CI machine
// cannot pass the fault suite by skipping it.
func requireNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("the fault suite takes minutes")
	}
	switch {
	case os.Geteuid() != 0:
		netnsUnavailable(t, "not running as root")
	case !onPath("ip"):
		netnsUnavailable(t, "ip (iproute2) not found")
	case !onPath("nft"):
		netnsUnavailable(t, "nft not found (apt-get install nftables)")
	}
}

func onPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func netnsUnavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("WSBRIDGE_REQUIRE_NETNS") == "1" {
		t.Fatalf("fault suite: %s, and WSBRIDGE_REQUIRE_NETNS=1", why)
	}
	t.Skipf("fault suite needs root, network namespaces and nftables: %s (set WSBRIDGE_REQUIRE_NETNS=1 to fail instead)", why)
}

// sh runs a command and returns its combined output.
func sh(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

var netSeq atomic.Int32

// faultNet is the host ↔ router ↔ bridge topology above, private to one
// test: its names carry the pid and a sequence number and its /29 is
// checked to be unused, so parallel runs do not collide.
type faultNet struct {
	router, inner   string // namespace names
	hostIP, innerIP string
}

// newFaultNet builds the namespaces and links; t.Cleanup removes them
// (deleting a namespace removes its veth ends, their peers and routes).
func newFaultNet(t *testing.T) *faultNet {
	t.Helper()
	sweepNetns()
	id := strconv.Itoa(os.Getpid()) + "x" + strconv.Itoa(int(netSeq.Add(1)))
	n := &faultNet{router: "wsbf-r" + id, inner: "wsbf-b" + id}
	hostIf, rA, rB, bB := "wf"+id+"h", "wf"+id+"a", "wf"+id+"b", "wf"+id+"i"
	base, err := freeSubnet()
	if err != nil {
		netnsUnavailable(t, err.Error())
	}
	ip := func(off int) string { return fmt.Sprintf("10.231.%d.%d", base/256, base%256+off) }
	n.hostIP, n.innerIP = ip(1), ip(6)

	if _, err := sh("ip", "netns", "add", n.router); err != nil {
		netnsUnavailable(t, "cannot create a network namespace: "+err.Error())
	}
	t.Cleanup(func() {
		_, _ = sh("ip", "netns", "del", n.router)
		_, _ = sh("ip", "link", "del", hostIf) // gone with the namespace unless that failed
	})
	if _, err := sh("ip", "netns", "add", n.inner); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sh("ip", "netns", "del", n.inner) })
	steps := [][]string{
		{"ip", "link", "add", hostIf, "type", "veth", "peer", "name", rA},
		{"ip", "link", "add", rB, "type", "veth", "peer", "name", bB},
		{"ip", "link", "set", rA, "netns", n.router},
		{"ip", "link", "set", rB, "netns", n.router},
		{"ip", "link", "set", bB, "netns", n.inner},
		{"ip", "addr", "add", n.hostIP + "/30", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "-n", n.router, "addr", "add", ip(2) + "/30", "dev", rA},
		{"ip", "-n", n.router, "addr", "add", ip(5) + "/30", "dev", rB},
		{"ip", "-n", n.router, "link", "set", rA, "up"},
		{"ip", "-n", n.router, "link", "set", rB, "up"},
		{"ip", "-n", n.router, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", n.router, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "-n", n.inner, "addr", "add", n.innerIP + "/30", "dev", bB},
		{"ip", "-n", n.inner, "link", "set", bB, "up"},
		{"ip", "-n", n.inner, "link", "set", "lo", "up"},
		{"ip", "-n", n.inner, "route", "add", "default", "via", ip(5)},
		{"ip", "route", "add", ip(4) + "/30", "via", ip(2), "dev", hostIf},
		{"ip", "netns", "exec", n.router, "nft", "add table inet wsbf; add chain inet wsbf blackhole { type filter hook forward priority 0; policy accept; }"},
	}
	for _, s := range steps {
		if _, err := sh(s...); err != nil {
			t.Fatalf("building the fault network: %v", err)
		}
	}
	// The path works before any fault.
	ln, err := net.Listen("tcp", n.hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if out, err := sh("ip", "netns", "exec", n.inner, "timeout", "5", "bash", "-c",
		"exec 3<>/dev/tcp/"+n.hostIP+"/"+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Fatalf("bridge namespace cannot reach the host through the router: %v %s", err, out)
	}
	return n
}

var staleNetns = regexp.MustCompile(`^wsbf-[rb](\d+)x\d+$`)

// sweepNetns deletes namespaces this suite left behind in runs that died
// before their cleanup (a go test timeout, SIGKILL): those named after a
// pid that no longer exists. Deleting a namespace removes its veths and
// their routes.
func sweepNetns() {
	out, err := sh("ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleNetns.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); errors.Is(err, os.ErrNotExist) {
			_, _ = sh("ip", "netns", "del", f[0])
		}
	}
}

// freeSubnet picks a /29 in 10.231.0.0/16 that no local interface uses,
// returned as its offset in the /16.
func freeSubnet() (int, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, err
	}
	used := func(base int) bool {
		_, block, _ := net.ParseCIDR(fmt.Sprintf("10.231.%d.%d/29", base/256, base%256))
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && block.Contains(ipn.IP) {
				return true
			}
		}
		return false
	}
	start := (os.Getpid()*37 + int(netSeq.Load())*11) % 8192
	for i := range 64 {
		if base := ((start + i) % 8192) * 8; !used(base) {
			return base, nil
		}
	}
	return 0, errors.New("no free /29 in 10.231.0.0/16")
}

var handleRE = regexp.MustCompile(`# handle (\d+)`)

// drop adds drop rules for TCP segments matching any of the matches (nft
// expressions such as "tcp dport 4222") to the router's forward chain,
// so they vanish without an RST. heal removes exactly those rules; it is
// idempotent and also runs at cleanup.
func (n *faultNet) drop(t *testing.T, matches ...string) (heal func()) {
	t.Helper()
	var handles []string
	for _, m := range matches {
		out, err := sh("ip", "netns", "exec", n.router, "nft", "--echo", "--handle",
			"add rule inet wsbf blackhole "+m+" drop")
		if err != nil {
			t.Fatal(err)
		}
		h := handleRE.FindStringSubmatch(out)
		if h == nil {
			t.Fatalf("nft printed no rule handle: %q", out)
		}
		handles = append(handles, h[1])
	}
	var once sync.Once
	heal = func() {
		once.Do(func() {
			for _, h := range handles {
				if _, err := sh("ip", "netns", "exec", n.router, "nft", "delete rule inet wsbf blackhole handle "+h); err != nil {
					t.Errorf("healing: %v", err)
				}
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// freePortOn returns a TCP port free on ip.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	natsBinOnce sync.Once
	natsBinPath string
	natsBinErr  error
)

// natsServerBinary builds nats-server from the module cache (it is a
// dependency), once per test run: a NATS node in its own process can be
// frozen with SIGSTOP.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	natsBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wsbridge-nats-bin")
		if err != nil {
			natsBinErr = err
			return
		}
		natsBinPath = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBinPath, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = errors.New(string(out))
		}
	})
	if natsBinErr != nil {
		t.Fatalf("building nats-server: %v", natsBinErr)
	}
	return natsBinPath
}

// natsProc is a nats-server process.
type natsProc struct {
	cmd  *exec.Cmd
	logs *logTail
	done chan error
}

// startNATSProc runs nats-server with conf and waits until addr accepts.
func startNATSProc(t *testing.T, conf, addr string) *natsProc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(natsServerBinary(t), "-c", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &natsProc{cmd: cmd, logs: &logTail{}, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.logs.add(sc.Text())
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process still dies of SIGKILL; be explicit
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("nats-server exited: %v\n%s", err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server not listening on %s: %v\n%s", addr, err, p.logs)
		}
		pauseFor(50 * time.Millisecond)
	}
}

// startWrapped runs wsbridge under a wrapper command (ip netns exec NS,
// prlimit …; each execs the binary, so the pid is the bridge's) and waits
// until it listens, like startProcess.
func startWrapped(t *testing.T, wrapper []string, env ...string) *process {
	t.Helper()
	args := append(append([]string{}, wrapper...), wsbridgeBinary(t))
	cmd := exec.Command(args[0], args[1:]...)
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
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.add(line)
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "wsbridge listening" {
				select {
				case addrCh <- rec.Addr:
				default:
				}
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

// exited reports whether the process has ended, and how, without waiting.
func (p *process) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err // keep it for the next receive
		return true, err
	default:
		return false, nil
	}
}

// pauseFor paces a polling loop; it is never the thing waited for.
func pauseFor(d time.Duration) { foPause(context.Background(), d) }
