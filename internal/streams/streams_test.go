package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/wire"
	"wsbridge/internal/wsframe"
)

// TestMain fails the run if a goroutine this package started, or one of
// nats.go's JetStream consumers, outlives the tests: every test shuts its
// Streams down, and Shutdown waits for what it started.
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
// package's non-test code or by nats.go's jetstream package for consumers
// and iterators.
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
		if strings.Contains(g, "created by github.com/nats-io/nats.go/jetstream.(*jetStream).newAsyncReply") {
			continue // the tests' own async publisher, ended with its connection
		}
		if strings.Contains(g, "created by wsbridge/internal/streams.") ||
			strings.Contains(g, "created by github.com/nats-io/nats.go/jetstream.") {
			own = append(own, g)
		}
	}
	return own
}

const (
	waitLimit   = 20 * time.Second // how long any awaited condition may take
	testTimeout = 5 * time.Second  // Config.RequestTimeout
)

// waitFor polls cond until it holds, failing the test at waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// env is one test's world: an in-process nats-server with JetStream, a
// stream EV on ev.>, a client connection and a Streams on it.
type env struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	r      *Streams
	data   map[uint64]string // the payload stored at each sequence
	pad    string            // appended to every payload
}

// newEnv starts the world with Config.WriteBuffer = writeBuffer.
func newEnv(t *testing.T, writeBuffer int) *env {
	t.Helper()
	nc := runNATS(t, true)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, nc: nc, js: js, stream: st, data: make(map[uint64]string)}
	e.r = newStreams(t, js, writeBuffer)
	return e
}

// runNATS starts a nats-server on a random port, with JetStream or
// without, and returns a connection to it. Both end with the test.
func runNATS(t *testing.T, jetStream bool) *nats.Conn {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = jetStream
	opts.StoreDir = t.TempDir()
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// newStreams returns a Streams on js that is shut down with the test,
// before the NATS connection closes (cleanups run last-in first-out).
func newStreams(t *testing.T, js jetstream.JetStream, writeBuffer int) *Streams {
	t.Helper()
	r := New(Config{JS: js, RequestTimeout: testTimeout, WriteBuffer: writeBuffer})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r
}

// publish stores n messages and returns their sequences. Message i goes to
// subjects[i%len(subjects)]; only the sequences on subjects[0] are
// returned. Publishes go out asynchronously in acknowledged batches, below
// nats.go's limit of outstanding async publishes.
func (e *env) publish(n int, subjects ...string) []uint64 {
	e.t.Helper()
	const batch = 256
	var seqs []uint64
	for start := 0; start < n; start += batch {
		type pending struct {
			subject, data string
			ack           jetstream.PubAckFuture
		}
		var acks []pending
		for i := start; i < min(start+batch, n); i++ {
			subject := subjects[i%len(subjects)]
			data := fmt.Sprintf(`{"i":%d,"pad":%q}`, len(e.data)+len(acks), e.pad)
			f, err := e.js.PublishAsync(subject, []byte(data))
			if err != nil {
				e.t.Fatalf("publish: %v", err)
			}
			acks = append(acks, pending{subject, data, f})
		}
		select {
		case <-e.js.PublishAsyncComplete():
		case <-time.After(waitLimit):
			e.t.Fatal("timed out waiting for PubAcks")
		}
		for _, p := range acks {
			select {
			case pa := <-p.ack.Ok():
				e.data[pa.Sequence] = p.data
				if p.subject == subjects[0] {
					seqs = append(seqs, pa.Sequence)
				}
			case err := <-p.ack.Err():
				e.t.Fatalf("publish: %v", err)
			}
		}
	}
	return seqs
}

// consumers is the number of consumers on the stream.
func (e *env) consumers() int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := e.stream.Info(ctx)
	if err != nil {
		e.t.Fatalf("stream info: %v", err)
	}
	return info.State.Consumers
}

// waitConsumers waits until the stream has n consumers.
func (e *env) waitConsumers(n int) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("%d consumers on the stream", n), func() bool { return e.consumers() == n })
}

// lastSeq is the stream's last sequence.
func (e *env) lastSeq() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := e.stream.Info(ctx)
	if err != nil {
		e.t.Fatalf("stream info: %v", err)
	}
	return info.State.LastSeq
}

// subscribe starts a subscription of m that ends with the test.
func (e *env) subscribe(m *member, subject string, from wire.From) *Sub {
	e.t.Helper()
	js, err := e.r.Subscribe(m, subject, from)
	if err != nil {
		e.t.Fatalf("Subscribe: %v", err)
	}
	e.t.Cleanup(js.Unsubscribe)
	return js
}

// check fails unless m holds exactly the messages at want, in order, each
// with the sid, subject and payload that was published.
func (e *env) check(m *member, subject string, want []uint64) {
	e.t.Helper()
	got := m.messages()
	seqs := make([]uint64, len(got))
	for i, g := range got {
		seqs[i] = g.Seq
		if g.Op != "msg" || g.SID != m.sid || g.Subject != subject || string(g.Data) != e.data[g.Seq] {
			e.t.Fatalf("message %d is %+v (data %s), want a msg for sid %q on %q with data %s",
				i, g, g.Data, m.sid, subject, e.data[g.Seq])
		}
	}
	if !slices.Equal(seqs, want) {
		e.t.Fatalf("got %d messages, want %d: %s", len(seqs), len(want), diff(seqs, want))
	}
}

// diff describes where got first departs from want.
func diff(got, want []uint64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d got seq %d, want %d (previous %v)", i, got[i], want[i], got[max(0, i-3):i])
		}
	}
	if len(got) > len(want) {
		return fmt.Sprintf("extra %v", got[len(want):min(len(got), len(want)+5)])
	}
	return fmt.Sprintf("missing from seq %d", want[len(got)])
}

// subState is a Sub's side of the catch-up boundary, read under its
// feed's lock.
type subState struct {
	member     bool // live on the feed or in one of its catch-ups
	live       bool
	catchingUp bool   // in a catch-up
	cursor     uint64 // catching up: every match up to cursor was sent
	feedLast   uint64 // the feed's position
}

func stateOf(js *Sub) subState {
	js.mu.Lock()
	f := js.feed
	js.mu.Unlock()
	if f == nil {
		return subState{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return subState{
		member:     js.idx >= 0 || js.cu != nil,
		live:       js.idx >= 0,
		catchingUp: js.cu != nil,
		cursor:     js.cursor,
		feedLast:   f.last,
	}
}

// idle reports that no subscription is setting up or catching up and no
// catch-up slot is taken.
func (r *Streams) idle() bool { return r.starting.Load() == 0 && len(r.catchups) == 0 }

// msg is one decoded {"op":"msg",...} envelope.
type msg struct {
	Op      string          `json:"op"`
	SID     string          `json:"sid"`
	Subject string          `json:"subject"`
	Data    json.RawMessage `json:"data"`
	Seq     uint64          `json:"seq"`
}

// member is the client end of a subscription: it records the frames it is
// given, and the test decides what Queued reports (a full queue holds the
// catch-up back) and when Enqueue starts refusing.
type member struct {
	t        *testing.T
	sid      string
	full     int           // what Queued reports while holding: Config.WriteBuffer
	compress bool          // what Compress reports
	slots    chan struct{} // what CatchupSlots returns

	attached chan struct{} // closed by Attached
	failed   chan error    // receives Fail's error

	mu       sync.Mutex
	msgs     []msg
	holding  bool // Queued reports a full queue
	holdAt   int  // start holding once this many messages arrived; 0: never
	blocked  int  // Queued calls answered "full"
	goneAt   int  // Enqueue refuses once this many messages arrived; 0: never
	closeAt  int  // Queued reports the client gone once this many arrived; 0: never
	closed   bool // Queued reports the client gone
	refused  int  // Enqueue calls refused
	inflated int  // compressed frames received
	once     sync.Once
}

var (
	_ Member  = (*member)(nil)
	_ Limited = (*member)(nil)
)

func newMember(t *testing.T, sid string, writeBuffer int) *member {
	return &member{t: t, sid: sid, full: writeBuffer, attached: make(chan struct{}), failed: make(chan error, 1)}
}

func (m *member) SID() string { return m.sid }

// Enqueue decodes frames, which hold whole server text frames (RFC 6455
// §5.2: FIN set, unmasked; RSV1 when compressed, RFC 7692 §6).
func (m *member) Enqueue(frames []byte, _ int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.goneAt > 0 && len(m.msgs) >= m.goneAt {
		m.refused++
		return false
	}
	for len(frames) > 0 {
		n := wsframe.FrameLen(frames)
		fr := frames[:n]
		frames = frames[n:]
		p := fr[n-payloadLen(fr):]
		if fr[1]&0x80 != 0 || fr[0]&0x0f != 0x1 || fr[0]&0x80 == 0 {
			m.t.Errorf("frame header % x: want a final unmasked text frame", fr[:2])
			return false
		}
		if fr[0]&0x40 != 0 {
			if !m.compress {
				m.t.Errorf("compressed frame for a member that does not compress")
				return false
			}
			b, err := wsframe.Inflate(p, 1<<20)
			if err != nil {
				m.t.Errorf("inflate: %v", err)
				return false
			}
			p = slices.Clone(*b)
			wsframe.PutBuffer(b)
			m.inflated++
		}
		var g msg
		if err := json.Unmarshal(p, &g); err != nil {
			m.t.Errorf("frame payload %q: %v", p, err)
			return false
		}
		m.msgs = append(m.msgs, g)
	}
	if m.holdAt > 0 && len(m.msgs) >= m.holdAt {
		m.holding, m.holdAt = true, 0
	}
	if m.closeAt > 0 && len(m.msgs) >= m.closeAt {
		m.closed = true
	}
	return true
}

// payloadLen is the payload length of the server frame fr.
func payloadLen(fr []byte) int {
	switch l := fr[1] & 0x7f; l {
	case 126:
		return len(fr) - 4
	case 127:
		return len(fr) - 10
	default:
		return int(l)
	}
}

func (m *member) Queued() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, false
	}
	if m.holding {
		m.blocked++
		return m.full, true
	}
	return 0, true
}

func (m *member) Compress(int) bool { return m.compress }

func (m *member) CatchupSlots() chan struct{} { return m.slots }

func (m *member) Attached() { m.once.Do(func() { close(m.attached) }) }

func (m *member) Fail(err error) {
	select {
	case m.failed <- err:
	default:
		m.t.Errorf("Fail called twice: %v", err)
	}
}

// hold makes Queued report a full queue from the k-th message on (at once
// for k = 0).
func (m *member) hold(k int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k == 0 || len(m.msgs) >= k {
		m.holding = true
		return
	}
	m.holdAt = k
}

// waitHeld waits until the catch-up asks Queued and is told the queue is
// full: it is held back before sending the next message.
func (m *member) waitHeld() {
	m.t.Helper()
	m.mu.Lock()
	seen := m.blocked
	m.mu.Unlock()
	waitFor(m.t, m.sid+" held back by a full queue", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.holding && m.blocked > seen
	})
}

// release lets the catch-up go on.
func (m *member) release() { m.releaseUntil(0) }

// releaseUntil lets the catch-up go on until m holds k messages (for
// ever for k = 0).
func (m *member) releaseUntil(k int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holding, m.holdAt = false, k
}

func (m *member) messages() []msg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// refusals is how many Enqueue calls were refused.
func (m *member) refusals() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused
}

// compressed is how many frames arrived compressed.
func (m *member) compressed() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inflated
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.msgs)
}

// waitCount waits until m holds n messages.
func (m *member) waitCount(n int) {
	m.t.Helper()
	waitFor(m.t, fmt.Sprintf("%s to hold %d messages", m.sid, n), func() bool { return m.count() >= n })
}

// waitAttached waits for Attached.
func (m *member) waitAttached() {
	m.t.Helper()
	select {
	case <-m.attached:
	case err := <-m.failed:
		m.t.Fatalf("Fail(%v) before Attached", err)
	case <-time.After(waitLimit):
		m.t.Fatal("timed out waiting for Attached")
	}
}

// noFail fails the test if Fail was called.
func (m *member) noFail() {
	m.t.Helper()
	select {
	case err := <-m.failed:
		m.t.Fatalf("Fail(%v)", err)
	default:
	}
}
