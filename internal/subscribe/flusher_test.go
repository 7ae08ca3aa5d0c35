package subscribe

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"wsbridge/internal/testutil"
)

// journal records, in order, what the Flusher did to fakes.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// fakeInterest is a real NATS subscription on subject, feeding msgs. Its
// fields are written on Run's goroutine: the test reads them once a
// Waiter queued after it heard, or once subscribed is closed.
type fakeInterest struct {
	name, subject string
	j             *journal
	msgs          chan *nats.Msg
	ns            *nats.Subscription
	err           error         // why Subscribe failed
	subscribed    chan struct{} // closed by Subscribe
}

func newInterest(j *journal, name, subject string) *fakeInterest {
	return &fakeInterest{name: name, subject: subject, j: j, msgs: make(chan *nats.Msg, 16), subscribed: make(chan struct{})}
}

func (fi *fakeInterest) Subscribe(nc *nats.Conn) {
	fi.ns, fi.err = nc.ChanSubscribe(fi.subject, fi.msgs)
	fi.j.add("sub " + fi.name)
	close(fi.subscribed)
}

func (fi *fakeInterest) Unsubscribe() {
	if fi.ns != nil {
		_ = fi.ns.Unsubscribe()
	}
	fi.j.add("unsub " + fi.name)
}

// fakeWaiter records its confirmation and runs check first, on Run's
// goroutine.
type fakeWaiter struct {
	name  string
	j     *journal
	check func()
	heard chan struct{}
}

func newWaiter(j *journal, name string) *fakeWaiter {
	return &fakeWaiter{name: name, j: j, heard: make(chan struct{})}
}

func (w *fakeWaiter) Confirmed() {
	if w.check != nil {
		w.check()
	}
	w.j.add("confirmed " + w.name)
	close(w.heard)
}

// countInterest counts its calls and makes no subscription.
type countInterest struct{ subs, unsubs atomic.Int64 }

func (ci *countInterest) Subscribe(*nats.Conn) { ci.subs.Add(1) }
func (ci *countInterest) Unsubscribe()         { ci.unsubs.Add(1) }

// connect runs a nats-server for the test and connects to it.
func connect(t *testing.T, mutate func(*server.Options), opts ...nats.Option) (*server.Server, *nats.Conn) {
	t.Helper()
	ns := testutil.StartNATS(t, false, mutate)
	return ns, testutil.NATSClient(t, ns, opts...)
}

// run starts f.Run and returns its stop; it is also called at cleanup,
// which fails the test if Run does not return.
func run(t *testing.T, f *Flusher) (stop func()) {
	t.Helper()
	ch, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); f.Run(ch) }()
	var once sync.Once
	stop = func() {
		once.Do(func() { close(ch) })
		select {
		case <-done:
		case <-time.After(testutil.Wait):
			t.Fatal("Run did not return after stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// wait fails the test unless ch is closed within testutil.Wait.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testutil.Wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestOpsInOrder: subscribes and unsubscribes are applied in the order
// they were queued, and a waiter hears after every op queued before it.
// Ops queued before Run starts make one batch: every op, then its
// waiters. Queued while Run runs, they may split into several batches,
// and a waiter may hear after ops queued behind it, never before one
// queued ahead.
func TestOpsInOrder(t *testing.T) {
	ops := []string{"sub a", "sub b", "unsub a", "sub c", "unsub b"}
	for _, tc := range []struct {
		name    string
		running bool
	}{
		{"queued before Run", false},
		{"queued while Run runs", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, nc := connect(t, nil)
			f := New(nc)
			if tc.running {
				run(t, f)
			}
			j := &journal{}
			a, b, c := newInterest(j, "a", "t.a"), newInterest(j, "b", "t.b"), newInterest(j, "c", "t.c")
			w1, w2 := newWaiter(j, "w1"), newWaiter(j, "w2")
			f.Subscribe(a)
			f.Subscribe(b)
			f.Unsubscribe(a)
			f.Await(w1)
			f.Subscribe(c)
			f.Unsubscribe(b)
			f.Await(w2)
			if !tc.running {
				run(t, f)
			}
			wait(t, w2.heard, "w2 to hear")
			got := j.get()
			if !tc.running {
				if want := append(slices.Clone(ops), "confirmed w1", "confirmed w2"); !slices.Equal(got, want) {
					t.Fatalf("journal %q, want %q", got, want)
				}
			}
			applied := slices.DeleteFunc(slices.Clone(got), func(e string) bool { return strings.HasPrefix(e, "confirmed ") })
			if !slices.Equal(applied, ops) {
				t.Fatalf("ops applied as %q, want %q", applied, ops)
			}
			if i1, i2 := slices.Index(got, "confirmed w1"), slices.Index(got, "confirmed w2"); i1 < slices.Index(got, "unsub a") || i2 != len(got)-1 || i1 > i2 {
				t.Fatalf("journal %q: w1 must hear after unsub a, w2 last", got)
			}

			// An op with no waiter behind it is applied too.
			f.Unsubscribe(c)
			testutil.Eventually(t, "unsub c", func() bool { return slices.Contains(j.get(), "unsub c") })
		})
	}
}

// TestConfirmedMeansLive: when a waiter hears, the NATS server has the
// SUBs queued before it, so a message published then by another client
// reaches every one of them. Many waiters share the round trips, and hear
// in the order of their Awaits.
func TestConfirmedMeansLive(t *testing.T) {
	ns, nc := connect(t, nil)
	other := testutil.NATSClient(t, ns)
	f := New(nc)
	run(t, f)
	j := &journal{}
	const n = 200
	ins := make([]*fakeInterest, n)
	ws := make([]*fakeWaiter, n)
	for i := range n {
		ins[i] = newInterest(j, fmt.Sprint(i), fmt.Sprintf("live.%d", i))
		ws[i] = newWaiter(j, ins[i].name)
		in := ins[i]
		ws[i].check = func() {
			select {
			case <-in.subscribed:
			default:
				t.Errorf("waiter %s heard before its interest subscribed", in.name)
			}
		}
		f.Subscribe(ins[i])
		f.Await(ws[i])
	}
	for i := range n {
		wait(t, ws[i].heard, "waiter "+ws[i].name)
		if ins[i].err != nil {
			t.Fatalf("subscribing %s: %v", ins[i].subject, ins[i].err)
		}
		if err := other.Publish(ins[i].subject, []byte(ins[i].name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		select {
		case m := <-in.msgs:
			if string(m.Data) != in.name {
				t.Fatalf("%s got %q", in.subject, m.Data)
			}
		case <-time.After(testutil.Wait):
			t.Fatalf("%s: the message published after its waiter heard never arrived", in.subject)
		}
	}
	var heard []string
	for _, e := range j.get() {
		if name, ok := strings.CutPrefix(e, "confirmed "); ok {
			heard = append(heard, name)
		}
	}
	for i, w := range ws {
		if heard[i] != w.name {
			t.Fatalf("waiter %d to hear was %s, want %s", i, heard[i], w.name)
		}
	}
}

// TestRefusedSubscribe: a SUB that nats.go refuses is the interest's to
// record, before its waiter hears; the rest of the batch goes on.
func TestRefusedSubscribe(t *testing.T) {
	_, nc := connect(t, nil)
	f := New(nc)
	run(t, f)
	j := &journal{}
	bad, good := newInterest(j, "bad", "bad subject"), newInterest(j, "good", "good.subject")
	wBad, wGood := newWaiter(j, "bad"), newWaiter(j, "good")
	wBad.check = func() {
		if !errors.Is(bad.err, nats.ErrBadSubject) {
			t.Errorf("the waiter heard with the interest's error %v, want %v", bad.err, nats.ErrBadSubject)
		}
	}
	f.Subscribe(bad)
	f.Await(wBad)
	f.Subscribe(good)
	f.Await(wGood)
	wait(t, wBad.heard, "the refused interest's waiter")
	wait(t, wGood.heard, "the next interest's waiter")
	if good.err != nil {
		t.Fatalf("the interest after the refused one: %v", good.err)
	}
	f.Unsubscribe(bad) // never made: nothing to end, and no harm
	w := newWaiter(j, "after")
	f.Await(w)
	wait(t, w.heard, "the waiter after the unsubscribe")
}

// TestFull: Full refuses new interests once maxOps ops wait, Unsubscribe
// is never refused, and the bound frees up once Run has applied them.
func TestFull(t *testing.T) {
	_, nc := connect(t, nil)
	f := New(nc)
	ci := &countInterest{}
	for i := range maxOps {
		if f.Full() {
			t.Fatalf("full after %d ops, want %d", i, maxOps)
		}
		f.Subscribe(ci)
	}
	if !f.Full() {
		t.Fatalf("not full after %d ops", maxOps)
	}
	f.Unsubscribe(ci)
	j := &journal{}
	w := newWaiter(j, "w")
	f.Await(w)
	run(t, f)
	wait(t, w.heard, "the waiter behind the full queue")
	if f.Full() {
		t.Fatal("still full once Run applied every op")
	}
	if s, u := ci.subs.Load(), ci.unsubs.Load(); s != maxOps || u != 1 {
		t.Fatalf("applied %d subscribes and %d unsubscribes, want %d and 1", s, u, maxOps)
	}
}

// TestStop: stop ends Run whether it is idle or retrying a round trip
// NATS cannot answer; the waiter behind that round trip never hears.
func TestStop(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		_, nc := connect(t, nil)
		stop := run(t, New(nc))
		stop()
	})
	t.Run("retrying", func(t *testing.T) {
		_, nc := connect(t, nil)
		f := New(nc)
		stop := run(t, f)
		nc.Close() // every round trip fails at once from now on
		j := &journal{}
		in, w := newInterest(j, "a", "t.a"), newWaiter(j, "w")
		f.Subscribe(in)
		f.Await(w)
		wait(t, in.subscribed, "the subscribe before the round trip")
		stop()
		select {
		case <-w.heard:
			t.Fatal("a waiter heard although NATS never answered")
		default:
		}
	})
}

// TestNATSDownThenBack: while the NATS server is down, a waiter does not
// hear; once a server is back on the same address the round trip is
// retried and succeeds, and the subscription made meanwhile is live.
func TestNATSDownThenBack(t *testing.T) {
	ns, nc := connect(t, nil, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	port := ns.Addr().(*net.TCPAddr).Port
	f := New(nc)
	run(t, f)
	status := nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	ns.Shutdown()
	waitStatus(t, status, nats.RECONNECTING)

	var back atomic.Bool
	j := &journal{}
	in, w := newInterest(j, "a", "back.a"), newWaiter(j, "w")
	w.check = func() {
		if !back.Load() {
			t.Error("the waiter heard while NATS was down")
		}
	}
	f.Subscribe(in)
	f.Await(w)
	wait(t, in.subscribed, "the subscribe while NATS is down")
	back.Store(true)
	ns2 := testutil.StartNATS(t, false, func(o *server.Options) { o.Port = port })
	wait(t, w.heard, "the waiter once NATS is back")
	if in.err != nil {
		t.Fatalf("subscribing while NATS was down: %v", in.err)
	}
	other := testutil.NATSClient(t, ns2)
	if err := other.Publish(in.subject, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.msgs:
	case <-time.After(testutil.Wait):
		t.Fatal("the subscription made while NATS was down is not live")
	}
}

// waitStatus waits for nc to report want on ch.
func waitStatus(t *testing.T, ch <-chan nats.Status, want nats.Status) {
	t.Helper()
	deadline := time.After(testutil.Wait)
	for {
		select {
		case s := <-ch:
			if s == want {
				return
			}
		case <-deadline:
			t.Fatalf("timed out waiting for NATS status %v", want)
		}
	}
}
