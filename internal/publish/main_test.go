package publish

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"wsbridge/internal/testutil"
	"wsbridge/internal/wire"
)

// TestMain fails the run if the publisher or the watchdog of an Outbox
// outlives its test: every test closes its Outbox, and Close waits.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		left := ownGoroutines()
		for len(left) > 0 && time.Now().Before(deadline) {
			runtime.Gosched()
			left = ownGoroutines()
		}
		if len(left) > 0 {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d left\n%s\n", len(left), strings.Join(left, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// ownGoroutines returns the stacks of the goroutines started by this
// package's non-test code.
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var own []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "created by wsbridge/internal/publish.") && !strings.Contains(g, "_test.go") {
			own = append(own, g)
		}
	}
	return own
}

// answer is one thing a Member heard.
type answer struct {
	kind    string // "ok", "err", "reply", "abort", "acked"
	ref     string
	code    string // err and abort: the wire code
	message string // err and abort: the wire message
	data    string // reply: the payload
	header  string // reply: its Test-Header
	seq     uint64 // acked: the stream sequence
}

// fakeMember records what it hears, in order. It is also a
// streams.Acker, for acked publishes.
type fakeMember struct {
	mu   sync.Mutex
	got  []answer
	kick chan struct{}
}

func newMember() *fakeMember { return &fakeMember{kick: make(chan struct{}, 1)} }

func (f *fakeMember) add(a answer) {
	f.mu.Lock()
	f.got = append(f.got, a)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *fakeMember) OK(ref string) { f.add(answer{kind: "ok", ref: ref}) }

func (f *fakeMember) Err(ref string, e *wire.Error) {
	f.add(answer{kind: "err", ref: ref, code: e.Code, message: e.Message})
}

func (f *fakeMember) Reply(ref string, m *nats.Msg) {
	f.add(answer{kind: "reply", ref: ref, data: string(m.Data), header: m.Header.Get("Test-Header")})
}

func (f *fakeMember) Abort(e *wire.Error) {
	f.add(answer{kind: "abort", code: e.Code, message: e.Message})
}

func (f *fakeMember) Acked(ref, _ string, seq uint64, _ bool) {
	f.add(answer{kind: "acked", ref: ref, seq: seq})
}

func (f *fakeMember) AckFailed(ref string, err error) {
	e := testMapError(err)
	f.add(answer{kind: "err", ref: ref, code: e.Code, message: e.Message})
}

// answers returns a copy of what f heard so far.
func (f *fakeMember) answers() []answer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]answer(nil), f.got...)
}

// waitN waits until f heard n answers and returns them all.
func (f *fakeMember) waitN(t *testing.T, n int) []answer {
	t.Helper()
	deadline := time.NewTimer(testutil.Wait)
	defer deadline.Stop()
	for {
		if got := f.answers(); len(got) >= n {
			return got
		}
		select {
		case <-f.kick:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d answers; have %+v", n, f.answers())
		}
	}
}

// testMapError stands in for the bridge's mapping of nats.go errors.
func testMapError(err error) *wire.Error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return wire.Errf(wire.CodePayloadTooLarge, "payload exceeds the NATS server's max_payload")
	case errors.Is(err, nats.ErrConnectionClosed):
		return wire.Errf(wire.CodeUnavailable, "NATS is unavailable")
	}
	return wire.Errf(wire.CodeInternal, err.Error())
}

// startNATS runs a nats-server for the test and connects to it.
func startNATS(t *testing.T, jetstream bool, mutate func(*server.Options)) (*server.Server, *nats.Conn) {
	t.Helper()
	ns := testutil.StartNATS(t, jetstream, mutate)
	return ns, testutil.NATSClient(t, ns)
}

// newOutbox makes an Outbox on nc, started unless told otherwise, and
// closes it at cleanup.
func newOutbox(t *testing.T, cfg Config, start bool) *Outbox {
	t.Helper()
	if cfg.MapError == nil {
		cfg.MapError = testMapError
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	if start {
		o.Start()
	}
	return o
}
