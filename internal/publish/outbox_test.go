package publish

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/streams"
	"wsbridge/internal/testutil"
	"wsbridge/internal/wire"
)

// TestPublish: a core publish is answered ok once nats.go took it (and
// not at all without a ref), a refusal from nats.go is answered with the
// mapped err, and a raw-mode message that fails aborts its member.
func TestPublish(t *testing.T) {
	const maxPayload = 1024
	ns, nc := startNATS(t, false, func(o *server.Options) { o.MaxPayload = maxPayload })
	sc := testutil.NATSClient(t, ns)
	sub, err := sc.SubscribeSync("t.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	var published atomic.Int64
	o := newOutbox(t, Config{NATS: nc, Published: func() { published.Add(1) }}, true)

	tooBig := wire.Errf(wire.CodePayloadTooLarge, "payload exceeds the NATS server's max_payload")
	for _, tc := range []struct {
		name      string
		raw       bool
		ref       string
		size      int
		want      *answer // nil: no answer
		delivered bool
	}{
		{name: "ok", ref: "p1", size: 10, want: &answer{kind: "ok", ref: "p1"}, delivered: true},
		{name: "fire and forget", size: 10, delivered: true},
		{name: "too large", ref: "p2", size: maxPayload + 1, want: &answer{kind: "err", ref: "p2", code: tooBig.Code, message: tooBig.Message}},
		{name: "too large without ref", size: maxPayload + 1},
		{name: "raw", raw: true, size: 10, delivered: true},
		{name: "raw too large", raw: true, size: maxPayload + 1, want: &answer{kind: "abort", code: tooBig.Code, message: tooBig.Message}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mb := newMember()
			before := published.Load()
			m := &nats.Msg{Subject: "t." + strconv.Itoa(tc.size), Data: bytes.Repeat([]byte("x"), tc.size)}
			var e *wire.Error
			if tc.raw {
				e = o.PublishRaw(mb, m)
			} else {
				e = o.Publish(mb, tc.ref, m)
			}
			if e != nil {
				t.Fatalf("refused: %v", e)
			}
			// One publisher, in order: once a later publish is answered,
			// this one was too, if it was to be.
			if e := o.Publish(mb, "after", &nats.Msg{Subject: "t.after"}); e != nil {
				t.Fatalf("refused: %v", e)
			}
			got := mb.waitN(t, 1)
			if tc.want != nil {
				got = mb.waitN(t, 2)
				if got[0] != *tc.want {
					t.Errorf("answer %+v, want %+v", got[0], *tc.want)
				}
				got = got[1:]
			}
			if len(got) != 1 || got[0] != (answer{kind: "ok", ref: "after"}) {
				t.Errorf("answers %+v, want only ok after", got)
			}
			if tc.delivered {
				msg, err := sub.NextMsg(testutil.Wait)
				if err != nil {
					t.Fatalf("not delivered: %v", err)
				}
				if msg.Subject != m.Subject || len(msg.Data) != tc.size {
					t.Errorf("delivered %s with %d bytes, want %s with %d", msg.Subject, len(msg.Data), m.Subject, tc.size)
				}
			}
			if msg, err := sub.NextMsg(testutil.Wait); err != nil || msg.Subject != "t.after" {
				t.Fatalf("next delivery %v, %v; want t.after", msg, err)
			}
			want := int64(1)
			if tc.delivered {
				want = 2
			}
			if n := published.Load() - before; n != want {
				t.Errorf("Published called %d times, want %d", n, want)
			}
		})
	}
}

// TestQueueBounds: the queue refuses a publish with unavailable beyond
// outboxJobs jobs or outboxBytes payload bytes, and a refused request
// leaves nothing in flight. The outbox is not started, so nothing drains.
func TestQueueBounds(t *testing.T) {
	_, nc := startNATS(t, false, nil)
	big := make([]byte, outboxBytes/2+1)
	for _, tc := range []struct {
		name string
		fill func(*Outbox, Member) int // queues until the next job is refused, returns how many
		want int
	}{
		{
			name: "jobs",
			fill: func(o *Outbox, mb Member) int {
				for i := range outboxJobs {
					if e := o.Publish(mb, "", &nats.Msg{Subject: "b.jobs"}); e != nil {
						return i
					}
				}
				return outboxJobs
			},
			want: outboxJobs,
		},
		{
			name: "bytes",
			fill: func(o *Outbox, mb Member) int {
				if e := o.Publish(mb, "", &nats.Msg{Subject: "b.bytes", Data: big}); e != nil {
					return 0
				}
				return 1
			},
			want: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutbox(t, Config{NATS: nc}, false)
			mb := newMember()
			if n := tc.fill(o, mb); n != tc.want {
				t.Fatalf("queued %d jobs, want %d", n, tc.want)
			}
			next := &nats.Msg{Subject: "b.next"}
			if tc.name == "bytes" {
				next.Data = big
			}
			if e := o.Publish(mb, "p", next); e != errStuck {
				t.Errorf("Publish beyond the bound = %v, want %v", e, errStuck)
			}
			if e := o.Request(mb, "r", next, time.Hour); e != errStuck {
				t.Errorf("Request beyond the bound = %v, want %v", e, errStuck)
			}
			if n := o.Requests(); n != 0 {
				t.Errorf("%d requests in flight after the refusal, want 0", n)
			}
			if got := mb.answers(); len(got) != 0 {
				t.Errorf("refusals answered %+v, want only the returned errors", got)
			}
		})
	}
}

// stallProxy forwards TCP to a NATS server. While held it stops reading
// from the client, like a frozen NATS node: the client's socket buffers
// fill and its writes block, with nats.go's connection lock held.
type stallProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	held  bool
	thawC chan struct{} // closed by thaw
	conns []net.Conn
	wg    sync.WaitGroup
}

// proxyBuffer is the socket buffer size on both sides of the held
// direction, so that a little data fills them.
const proxyBuffer = 16 << 10

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, thawC: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		_ = c.(*net.TCPConn).SetReadBuffer(proxyBuffer)
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, c, true)
		go p.pipe(c, up, false)
	}
}

func (p *stallProxy) pipe(dst, src net.Conn, holdable bool) {
	defer p.wg.Done()
	buf := make([]byte, 4<<10)
	for {
		if holdable {
			p.mu.Lock()
			held, thaw := p.held, p.thawC
			p.mu.Unlock()
			if held {
				<-thaw
			}
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.held {
		p.held, p.thawC = true, make(chan struct{})
	}
}

func (p *stallProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		p.held = false
		close(p.thawC)
	}
}

func (p *stallProxy) close() {
	p.thaw()
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// smallDialer dials NATS with a small send buffer, so that a held proxy
// blocks nats.go's writes after little data.
type smallDialer struct{}

func (smallDialer) Dial(network, address string) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, testutil.Wait)
	if err != nil {
		return nil, err
	}
	_ = c.(*net.TCPConn).SetWriteBuffer(proxyBuffer)
	return c, nil
}

// TestStall: once a publish has been stuck for stallAfter, new publishes
// are refused at once with unavailable and the jobs queued behind it are
// answered unavailable by the watchdog; the stuck one is answered when
// NATS takes it, and publishing works again.
func TestStall(t *testing.T) {
	ns := testutil.StartNATS(t, false, nil)
	p := startStallProxy(t, ns.Addr().String())
	nc, err := nats.Connect("nats://"+p.ln.Addr().String(), nats.SetCustomDialer(smallDialer{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	o := newOutbox(t, Config{NATS: nc}, true)
	t.Cleanup(p.thaw) // before o.Close, which waits for the stuck publish

	p.hold()
	const jobs = 128
	payload := make([]byte, 32<<10) // 4 MiB in all, far beyond the held buffers
	mb := newMember()
	for i := range jobs {
		if e := o.Publish(mb, strconv.Itoa(i), &nats.Msg{Subject: "stall", Data: payload}); e != nil {
			t.Fatalf("job %d refused before the stall: %v", i, e)
		}
	}
	other := newMember()
	testutil.Eventually(t, "a publish refused while NATS is stuck", func() bool {
		e := o.Publish(other, "", &nats.Msg{Subject: "stall.probe"})
		if e != nil && e != errStuck {
			t.Fatalf("refused with %v, want %v", e, errStuck)
		}
		return e != nil
	})
	if e := o.Request(other, "r", &nats.Msg{Subject: "stall.req"}, time.Hour); e != errStuck {
		t.Errorf("Request while stuck = %v, want %v", e, errStuck)
	}
	// Every job but the stuck one is answered: ok before it, unavailable
	// after it.
	got := mb.waitN(t, jobs-1)
	stuck := -1
	for i, a := range got {
		if a.kind == "err" {
			if stuck < 0 {
				stuck = i
			}
			if a.code != errStuck.Code || a.message != errStuck.Message || a.ref != strconv.Itoa(i+1) {
				t.Errorf("answer %d: %+v, want err %s for ref %d", i, a, errStuck.Code, i+1)
			}
		} else if stuck >= 0 || a != (answer{kind: "ok", ref: strconv.Itoa(i)}) {
			t.Errorf("answer %d: %+v, want ok for ref %d before any err", i, a, i)
		}
	}
	if stuck < 0 {
		t.Fatalf("no job was answered unavailable: %+v", got)
	}
	t.Logf("%d jobs published before the stall, job %d stuck, %d answered unavailable", stuck, stuck, jobs-1-stuck)

	p.thaw()
	got = mb.waitN(t, jobs)
	if a := got[jobs-1]; a != (answer{kind: "ok", ref: strconv.Itoa(stuck)}) {
		t.Errorf("the stuck job's answer: %+v, want ok for ref %d", a, stuck)
	}
	testutil.Eventually(t, "publishing again", func() bool {
		return o.Publish(other, "again", &nats.Msg{Subject: "stall.again"}) == nil
	})
	if a := other.waitN(t, 1)[0]; a != (answer{kind: "ok", ref: "again"}) {
		t.Errorf("after the stall: %+v, want ok again", a)
	}
}

// TestPublishAcked: an acked publish goes to JetStream and is answered by
// its PubAck through the streams.Acker; one failed before it was sent is
// answered once with the err and forgotten by the Publisher.
func TestPublishAcked(t *testing.T) {
	_, nc := startNATS(t, true, nil)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Wait)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ACK", Subjects: []string{"ack.>"}}); err != nil {
		t.Fatal(err)
	}
	pub, _, err := streams.NewPublisher(nc, testutil.Wait)
	if err != nil {
		t.Fatal(err)
	}
	o := newOutbox(t, Config{NATS: nc, JetStream: pub}, true)
	mb := newMember()

	m := &nats.Msg{Subject: "ack.one", Data: []byte("x")}
	if !pub.Track(mb, "a1", m, 64) {
		t.Fatal("not tracked")
	}
	if e := o.PublishAcked(mb, m); e != nil {
		t.Fatalf("refused: %v", e)
	}
	if a := mb.waitN(t, 1)[0]; a != (answer{kind: "acked", ref: "a1", seq: 1}) {
		t.Errorf("answer %+v, want acked a1 at 1", a)
	}

	failed := &nats.Msg{Subject: "ack.two"}
	if !pub.Track(mb, "a2", failed, 64) {
		t.Fatal("not tracked")
	}
	noStream := wire.Errf(wire.CodeNoStream, "no JetStream stream captures the subject")
	o.FailAcked(mb, failed, noStream)
	o.FailAcked(mb, failed, noStream) // already answered: nothing
	if _, _, ok := pub.Take(failed); ok {
		t.Error("the failed publish is still tracked")
	}
	// An ok later in the publisher's order shows nothing else is coming.
	if e := o.Publish(mb, "after", &nats.Msg{Subject: "ack.after"}); e != nil {
		t.Fatalf("refused: %v", e)
	}
	got := mb.waitN(t, 3)
	want := []answer{
		{kind: "acked", ref: "a1", seq: 1},
		{kind: "err", ref: "a2", code: noStream.Code, message: noStream.Message},
		{kind: "ok", ref: "after"},
	}
	if len(got) != len(want) {
		t.Fatalf("answers %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answer %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := pub.Inflight(); n != 0 {
		t.Errorf("%d acked publishes in flight, want 0", n)
	}
}

// TestCloseIdempotent: Close waits for what Start started, and may be
// called again, or without Start.
func TestCloseIdempotent(t *testing.T) {
	_, nc := startNATS(t, false, nil)
	for _, start := range []bool{true, false} {
		o, err := New(Config{NATS: nc, MapError: testMapError})
		if err != nil {
			t.Fatal(err)
		}
		if start {
			o.Start()
			o.Start()
		}
		o.Close()
		o.Close()
		testutil.Eventually(t, "the goroutines to end", func() bool { return len(ownGoroutines()) == 0 })
	}
}
