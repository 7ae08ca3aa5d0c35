package streams

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/testutil"
	"wsbridge/internal/wire"
)

// fakeMember records the seqs of the msg frames it is given, in order.
type fakeMember struct {
	sid      string
	attached chan struct{}
	failed   chan error

	mu     sync.Mutex
	seqs   []uint64
	bad    error         // first undecodable frame
	grew   chan struct{} // closed by the next frame
	closed bool
	full   bool          // Queued reports a full write queue
	polled chan struct{} // closed by the next Queued
}

func newFakeMember(sid string) *fakeMember {
	return &fakeMember{sid: sid, attached: make(chan struct{}), failed: make(chan error, 1), grew: make(chan struct{}), polled: make(chan struct{})}
}

func (m *fakeMember) SID() string { return m.sid }

func (m *fakeMember) Enqueue(frames []byte, _ int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	r := bytes.NewReader(frames)
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		if err != nil {
			m.bad = err
			break
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			m.bad = err
			break
		}
		var f struct {
			Op  string `json:"op"`
			Sid string `json:"sid"`
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(p, &f); err != nil || f.Op != "msg" || f.Sid != m.sid {
			m.bad = fmt.Errorf("unexpected frame %q (%v)", p, err)
			break
		}
		m.seqs = append(m.seqs, f.Seq)
	}
	close(m.grew)
	m.grew = make(chan struct{})
	return true
}

func (m *fakeMember) Queued() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	close(m.polled)
	m.polled = make(chan struct{})
	if m.full {
		return 1 << 30, !m.closed
	}
	return 0, !m.closed
}

// setFull makes Queued report a full queue, or an empty one.
func (m *fakeMember) setFull(full bool) {
	m.mu.Lock()
	m.full = full
	m.mu.Unlock()
}

// count is how many msg frames the member got.
func (m *fakeMember) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seqs)
}

// waitPolled waits until Queued is called twice more: whoever paces the
// member has looked at its queue since the call.
func (m *fakeMember) waitPolled(t *testing.T) {
	t.Helper()
	for range 2 {
		m.mu.Lock()
		ch := m.polled
		m.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("member %s: its queue was not looked at", m.sid)
		}
	}
}

func (m *fakeMember) Compress(int) bool { return false }
func (m *fakeMember) Attached()         { close(m.attached) }
func (m *fakeMember) Fail(err error)    { m.failed <- err }

// waitSeq waits until the member has seen seq; it fails on a gap, a
// duplicate or a bad frame.
func (m *fakeMember) waitSeq(t *testing.T, from, seq uint64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		m.mu.Lock()
		got, bad, grew := m.seqs, m.bad, m.grew
		m.mu.Unlock()
		if bad != nil {
			t.Fatalf("member %s: %v", m.sid, bad)
		}
		for i, s := range got {
			if s != from+uint64(i) {
				t.Fatalf("member %s: got %v, want %d, %d, … in order, once each", m.sid, got, from, from+1)
			}
		}
		if n := len(got); n > 0 && got[n-1] >= seq {
			return
		}
		select {
		case <-grew:
		case err := <-m.failed:
			t.Fatalf("member %s failed: %v", m.sid, err)
		case <-deadline:
			t.Fatalf("member %s: got %d seqs (%v), want through %d", m.sid, len(got), got, seq)
		}
	}
}

// resumeEnv is an in-process JetStream server with stream R on r.>,
// and Streams on it.
type resumeEnv struct {
	js jetstream.JetStream
	r  *Streams
}

func newResumeEnv(t *testing.T, window int) *resumeEnv {
	t.Helper()
	ns := testutil.StartNATS(t, true, nil)
	nc := testutil.NATSClient(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R", Subjects: []string{"r.>"}}); err != nil {
		t.Fatal(err)
	}
	r := New(Config{JS: js, RequestTimeout: 5 * time.Second, WriteBuffer: 1 << 20, Window: window, Logger: testutil.Logger(t)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return &resumeEnv{js: js, r: r}
}

// publish stores seqs from..to on r.x (one per sequence: r.x is the only
// subject used).
func (e *resumeEnv) publish(t *testing.T, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := from; i <= to; i++ {
		ack, err := e.js.Publish(ctx, "r.x", []byte(`{"n":`+strconv.Itoa(i)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence != uint64(i) {
			t.Fatalf("message %d stored as seq %d", i, ack.Sequence)
		}
	}
}

func (e *resumeEnv) subscribe(t *testing.T, sid string, from wire.From) *fakeMember {
	t.Helper()
	m, _ := e.subscribeSub(t, newFakeMember(sid), from)
	return m
}

func (e *resumeEnv) subscribeSub(t *testing.T, m *fakeMember, from wire.From) (*fakeMember, *Sub) {
	t.Helper()
	sid := m.sid
	js, err := e.r.Subscribe(m, "r.x", from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Unsubscribe)
	select {
	case <-m.attached:
	case err := <-m.failed:
		t.Fatalf("subscribe %s: %v", sid, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("subscribe %s: not attached", sid)
	}
	return m, js
}

// feedAt waits until r.x's feed has delivered through seq.
func (e *resumeEnv) feedAt(t *testing.T, seq uint64) {
	t.Helper()
	testutil.Eventually(t, "the feed to reach seq "+strconv.FormatUint(seq, 10), func() bool {
		e.r.mu.Lock()
		f := e.r.feeds["r.x"]
		e.r.mu.Unlock()
		if f == nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.last >= seq
	})
}

func after(n uint64) wire.From { return wire.From{Kind: wire.FromAfter, After: n} }

func TestResumeWindow(t *testing.T) {
	t.Run("inside the window: served from memory", func(t *testing.T) {
		e := newResumeEnv(t, 100)
		e.publish(t, 1, 50)
		e.subscribe(t, "live", wire.From{Kind: wire.FromNew})
		e.feedAt(t, 50) // the new feed read the stream's tail into its window
		m := e.subscribe(t, "r", after(20))
		m.waitSeq(t, 21, 50)
		e.publish(t, 51, 60)
		m.waitSeq(t, 21, 60)
		st := e.r.Stats()
		if st.ResumesFromWindow != 1 || st.ResumesFromJetStream != 0 || st.CatchupConsumers != 0 {
			t.Errorf("stats %+v, want one resume from the window and no catch-up consumer", st)
		}
	})
	t.Run("straddling the window's edge while messages arrive", func(t *testing.T) {
		e := newResumeEnv(t, 10)
		e.publish(t, 1, 30)
		e.subscribe(t, "live", wire.From{Kind: wire.FromNew})
		e.feedAt(t, 30) // window: 21..30
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.publish(t, 31, 230)
		}()
		m := e.subscribe(t, "r", after(15))
		<-done
		m.waitSeq(t, 16, 230)
		if st := e.r.Stats(); st.ResumesFromJetStream != 1 || st.CatchupConsumers == 0 {
			t.Errorf("stats %+v, want one resume through JetStream", st)
		}
	})
	t.Run("below the window: one shared catch-up", func(t *testing.T) {
		e := newResumeEnv(t, 10)
		e.publish(t, 1, 100)
		e.subscribe(t, "live", wire.From{Kind: wire.FromNew})
		e.feedAt(t, 100) // window: 91..100
		const n = 20
		ms := make([]*fakeMember, n)
		for i := range ms {
			ms[i] = e.subscribe(t, "r"+strconv.Itoa(i), after(uint64(5+3*i)))
		}
		for i, m := range ms {
			m.waitSeq(t, uint64(6+3*i), 100)
		}
		e.publish(t, 101, 110)
		for i, m := range ms {
			m.waitSeq(t, uint64(6+3*i), 110)
		}
		// A resume is counted when it goes live, which can follow its
		// last catch-up frame.
		testutil.Eventually(t, "every resume counted through JetStream", func() bool {
			return e.r.Stats().ResumesFromJetStream == n
		})
		st := e.r.Stats()
		// They arrive within the catch-up's gathering time: one consumer
		// from the lowest start; a second if the machine is slow.
		if st.CatchupConsumers > 2 {
			t.Errorf("%d catch-up consumers for %d subscriptions below the window, want them shared", st.CatchupConsumers, n)
		}
	})
	t.Run("no window: every resume reads JetStream", func(t *testing.T) {
		e := newResumeEnv(t, 0)
		e.publish(t, 1, 20)
		e.subscribe(t, "live", wire.From{Kind: wire.FromNew})
		m := e.subscribe(t, "r", after(5))
		m.waitSeq(t, 6, 20)
		e.publish(t, 21, 25)
		m.waitSeq(t, 6, 25)
	})
	t.Run("all, from a window holding the whole stream", func(t *testing.T) {
		e := newResumeEnv(t, 100)
		e.publish(t, 1, 40)
		m := e.subscribe(t, "r", wire.From{Kind: wire.FromAll})
		m.waitSeq(t, 1, 40)
		if st := e.r.Stats(); st.CatchupConsumers != 0 {
			t.Errorf("stats %+v, want no catch-up consumer", st)
		}
	})
	t.Run("last, through JetStream when the window is empty", func(t *testing.T) {
		e := newResumeEnv(t, 0)
		e.publish(t, 1, 10)
		m := e.subscribe(t, "r", wire.From{Kind: wire.FromLast})
		m.waitSeq(t, 10, 10)
		e.publish(t, 11, 12)
		m.waitSeq(t, 10, 12)
	})
}

func TestResumePacing(t *testing.T) {
	t.Run("a member whose queue is full is handed back, then resumes", func(t *testing.T) {
		e := newResumeEnv(t, 10)
		e.publish(t, 1, 100)
		e.subscribe(t, "live", wire.From{Kind: wire.FromNew})
		e.feedAt(t, 100)
		slow := newFakeMember("slow")
		slow.setFull(true)
		e.subscribeSub(t, slow, after(0))
		fast := e.subscribe(t, "fast", after(0))
		fast.waitSeq(t, 1, 100) // not held up by slow
		slow.waitPolled(t)
		if n := slow.count(); n != 0 {
			t.Fatalf("slow member got %d messages with a full queue", n)
		}
		slow.setFull(false)
		slow.waitSeq(t, 1, 100)
		e.publish(t, 101, 105)
		slow.waitSeq(t, 1, 105)
		fast.waitSeq(t, 1, 105)
	})
	t.Run("nothing after unsubscribe", func(t *testing.T) {
		e := newResumeEnv(t, 10)
		e.publish(t, 1, 100)
		e.subscribe(t, "live", wire.From{Kind: wire.FromNew})
		e.feedAt(t, 100)
		m := newFakeMember("gone")
		m.setFull(true) // parked in its catch-up
		_, js := e.subscribeSub(t, m, after(0))
		m.waitPolled(t)
		js.Unsubscribe()
		m.setFull(false)
		n := m.count()
		e.publish(t, 101, 120)
		e.feedAt(t, 120)
		if got := m.count(); got != n {
			t.Errorf("%d messages after unsubscribe", got-n)
		}
	})
	t.Run("time: a catch-up placed by JetStream", func(t *testing.T) {
		e := newResumeEnv(t, 10)
		e.publish(t, 1, 30)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := e.js.Stream(ctx, "R")
		if err != nil {
			t.Fatal(err)
		}
		msg, err := st.GetMsg(ctx, 21)
		if err != nil {
			t.Fatal(err)
		}
		m := e.subscribe(t, "t", wire.From{Kind: wire.FromTime, Time: msg.Time})
		m.waitSeq(t, 21, 30)
		e.publish(t, 31, 35)
		m.waitSeq(t, 21, 35)
	})
}

func TestTailStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		st       jetstream.StreamState
		n, bytes int
		want     uint64
	}{
		{"empty stream", jetstream.StreamState{FirstSeq: 0, LastSeq: 0}, 100, 0, 1},
		{"shorter than the window", jetstream.StreamState{Msgs: 40, FirstSeq: 1, LastSeq: 40}, 100, 0, 1},
		{"longer than the window", jetstream.StreamState{Msgs: 1000, FirstSeq: 1, LastSeq: 1000}, 100, 0, 901},
		{"purged head", jetstream.StreamState{Msgs: 10, FirstSeq: 991, LastSeq: 1000}, 100, 0, 991},
		{"bytes bound", jetstream.StreamState{Msgs: 1000, Bytes: 1000 * 1000, FirstSeq: 1, LastSeq: 1000}, 100, 10_000, 991},
		{"no window", jetstream.StreamState{Msgs: 1000, FirstSeq: 1, LastSeq: 1000}, 0, 0, 1001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tailStart(tc.st, tc.n, tc.bytes); got != tc.want {
				t.Errorf("tailStart = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestStreamLookupCache starts a feed on a pattern three times: the
// second start asks JetStream only for the cached stream's info; after
// the stream is deleted and another one covers the pattern, the third
// finds the new one.
func TestStreamLookupCache(t *testing.T) {
	ns := testutil.StartNATS(t, true, nil)
	nc := testutil.NATSClient(t, ns)
	var mu sync.Mutex
	var sent []string
	js, err := jetstream.New(nc, jetstream.WithClientTrace(&jetstream.ClientTrace{
		RequestSent: func(subj string, _ []byte) {
			mu.Lock()
			sent = append(sent, subj)
			mu.Unlock()
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "A", Subjects: []string{"c.>"}}); err != nil {
		t.Fatal(err)
	}
	r := New(Config{JS: js, RequestTimeout: 5 * time.Second, WriteBuffer: 1 << 20, Window: 10})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	lookups := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range sent {
			if strings.HasPrefix(s, "$JS.API.STREAM.NAMES") {
				n++
			}
		}
		return n
	}
	// start subscribes and unsubscribes once the feed is up, so the next
	// start begins from no feed.
	start := func(want string) {
		t.Helper()
		m := newFakeMember("s")
		js, err := r.Subscribe(m, "c.x", wire.From{Kind: wire.FromNew})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-m.attached:
		case err := <-m.failed:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("not attached")
		}
		r.mu.Lock()
		f := r.feeds["c.x"]
		r.mu.Unlock()
		if f == nil || f.stream != want {
			t.Fatalf("feed on %v, want stream %s", f, want)
		}
		js.Unsubscribe()
		testutil.Eventually(t, "the feed to stop", func() bool { return r.Feeds() == 0 })
	}
	start("A")
	if n := lookups(); n != 1 {
		t.Fatalf("%d lookups by subject for the first feed, want 1", n)
	}
	start("A")
	if n := lookups(); n != 1 {
		t.Fatalf("%d lookups by subject after the second feed, want the cached answer", n)
	}
	if err := js.DeleteStream(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"c.>"}}); err != nil {
		t.Fatal(err)
	}
	start("B")
}
