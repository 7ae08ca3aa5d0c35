package integration

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsbridge/internal/testutil"

	natstest "github.com/nats-io/nats-server/v2/test"
)

// freezeProxy forwards TCP to a NATS server until frozen; then it drops
// every byte either way and answers nothing, like a frozen node or a
// blackholed link: no RST, no FIN.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		var up net.Conn
		if !p.frozen.Load() {
			if up, err = net.Dial("tcp", p.target); err != nil {
				c.Close()
				continue
			}
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		if up != nil {
			p.conns = append(p.conns, up)
		}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst while not frozen and discards afterwards; a nil
// end (a connection accepted while frozen) is a black hole.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	if src == nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() && dst != nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezeProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestFrozenNATSDetected: a NATS link that goes silent without closing
// is dropped within three BRIDGE_NATS_PING_INTERVALs and the bridge moves
// to the other URL of BRIDGE_NATS_URL.
func TestFrozenNATSDetected(t *testing.T) {
	const interval = 500 * time.Millisecond
	a := testutil.StartNATS(t, false, nil)
	proxy := startFreezeProxy(t, a.Addr().String())
	otherPort := freePort(t) // nothing there yet, so the bridge starts on the proxy
	other := "nats://127.0.0.1:" + strconv.Itoa(otherPort)
	p := startProcess(t, "BRIDGE_NATS_URL=nats://"+proxy.addr()+","+other, "BRIDGE_NATS_PING_INTERVAL="+interval.String())
	if !p.logs.waitFor(`"msg":"NATS connected"`, wait) || !p.logs.waitFor(`"url":"nats://`+proxy.addr()+`"`, 0) {
		t.Fatalf("not connected through the proxy:\n%s", p.logs)
	}
	opts := natstest.DefaultTestOptions
	opts.Port = otherPort
	b := natstest.RunServer(&opts)
	t.Cleanup(b.Shutdown)

	frozenAt := time.Now()
	proxy.frozen.Store(true)
	if !p.logs.waitFor("stale connection", wait) {
		t.Fatalf("the frozen link was not noticed:\n%s", p.logs)
	}
	// Three intervals at most, plus the ping timer's phase and a loaded
	// machine's scheduling.
	took := time.Since(frozenAt)
	t.Logf("frozen link noticed after %v", took)
	if took > 3*interval+2*time.Second {
		t.Errorf("noticed after %v, want about %v", took, 3*interval)
	}
	if !p.logs.waitFor(`"msg":"NATS reconnected"`, wait) || !p.logs.waitFor(`"url":"`+other+`"`, 0) {
		t.Fatalf("not reconnected to %s:\n%s", other, p.logs)
	}
}
