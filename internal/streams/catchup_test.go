package streams

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"wsbridge/internal/wire"
)

// The catch-up boundary without a resume window (newStreams sets none):
// a sub reads history through a catch-up until it reaches the feed's
// position, then goes live under the feed's lock. Each test holds the
// member back through Member.Queued at a chosen message (the catch-up
// hands it back and it rejoins one when its queue drains), publishes while
// it is held, and checks that every sequence reaches the member exactly
// once, in order. resume_test.go covers the window.

var fromAll = wire.From{Kind: wire.FromAll}

// TestCatchUpAllWhileLive publishes live messages while the catch-up of
// "all" is held at different points of the history: they come right after
// the history, through the catch-up the member rejoins.
func TestCatchUpAllWhileLive(t *testing.T) {
	const history, live, tail = 300, 60, 20 // messages, 2/3 of them on ev.a
	cases := []struct {
		name     string
		holdAt   int // messages delivered when the catch-up is held; -1: all of the history
		compress bool
	}{
		{"held before the first", 0, false},
		{"held mid-history", 100, false},
		{"held after the last", -1, false},
		{"compressed", 100, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1<<20)
			if tc.compress {
				e.pad = strings.Repeat("compressible ", 20)
			}
			hist := e.publish(history, "ev.a", "ev.b", "ev.a")
			holdAt := tc.holdAt
			if holdAt < 0 {
				holdAt = len(hist)
			}

			m := newMember(t, "s1", 1<<20)
			m.compress = tc.compress
			m.slots = make(chan struct{}, 1)
			m.hold(holdAt)
			js := e.subscribe(m, "ev.a", fromAll)
			m.waitAttached()
			m.waitHeld()
			// Held, it keeps its client's slot but gives back the node's.
			waitFor(t, "the held catch-up to free its node-wide slot", func() bool { return len(e.r.catchups) == 0 })
			if n := len(m.slots); n != 1 {
				t.Fatalf("%d of the client's catch-up slots taken while held, want 1", n)
			}
			if n := m.count(); n != holdAt {
				t.Fatalf("held with %d messages delivered, want %d", n, holdAt)
			}
			if st := stateOf(js); st.live || (holdAt > 0 && st.cursor != hist[holdAt-1]) {
				t.Fatalf("held live %v at cursor %d; want catching up at %d", st.live, st.cursor, hist[max(holdAt, 1)-1])
			}
			// A held member holds no consumer: the catch-up it left ended.
			e.waitConsumers(1)

			more := e.publish(live, "ev.a", "ev.b", "ev.a")
			last := more[len(more)-1]
			waitFor(t, "the feed to reach the last live message", func() bool { return stateOf(js).feedLast == last })
			if st := stateOf(js); st.live || m.count() != holdAt {
				t.Fatalf("got %d messages (live %v) while held at %d", m.count(), st.live, holdAt)
			}

			m.release()
			want := append(slices.Clone(hist), more...)
			m.waitCount(len(want))
			waitFor(t, "the sub to go live", func() bool { return stateOf(js).live })
			want = append(want, e.publish(tail, "ev.a", "ev.b")...)
			m.waitCount(len(want))
			e.check(m, "ev.a", want)
			if n := m.compressed(); tc.compress && n != len(want) {
				t.Errorf("%d of %d frames compressed, want all", n, len(want))
			}

			e.waitConsumers(1) // the catch-up deleted its own
			waitFor(t, "the catch-up to end", e.r.idle)
			if n := len(m.slots); n != 0 {
				t.Errorf("%d of the client's catch-up slots still taken", n)
			}
			if n := e.r.Stats().Catchups; n != 1 {
				t.Errorf("Catchups = %d, want 1", n)
			}
			m.noFail()
		})
	}
}

// TestCatchUpFeedMovesOn lets the feed run ahead of a member held in its
// catch-up, twice, with a small write buffer: each time the member
// rejoins a catch-up from its cursor and chases the feed until it
// reaches it.
func TestCatchUpFeedMovesOn(t *testing.T) {
	const writeBuffer = 2048
	e := newEnv(t, writeBuffer)
	hist := e.publish(200, "ev.a", "ev.b")
	base := e.lastSeq()

	m := newMember(t, "s1", writeBuffer)
	m.hold(50)
	js := e.subscribe(m, "ev.a", fromAll)
	m.waitAttached()
	m.waitHeld()

	// First: the feed moves on while the history is being sent.
	more := e.publish(100, "ev.a")
	last1 := more[len(more)-1]
	waitFor(t, "the feed to move on", func() bool { return stateOf(js).feedLast == last1 })
	if st := stateOf(js); st.live || st.cursor >= base {
		t.Fatalf("held at cursor %d (live %v), want below %d", st.cursor, st.live, base)
	}

	// Second: held again 30 messages into what was published while held.
	m.releaseUntil(len(hist) + 30)
	m.waitHeld()
	if st := stateOf(js); st.live || st.cursor != more[29] {
		t.Fatalf("held at cursor %d (live %v), want %d", st.cursor, st.live, more[29])
	}
	more2 := e.publish(100, "ev.a", "ev.b")
	last2 := more2[len(more2)-1]
	waitFor(t, "the feed to move on again", func() bool { return stateOf(js).feedLast == last2 })

	m.release()
	want := slices.Concat(hist, more, more2)
	m.waitCount(len(want))
	waitFor(t, "the sub to go live", func() bool { return stateOf(js).live })
	want = append(want, e.publish(10, "ev.a")...)
	m.waitCount(len(want))
	e.check(m, "ev.a", want)

	e.waitConsumers(1)
	waitFor(t, "the catch-up to end", e.r.idle)
	m.noFail()
}

// TestCatchUpFrom checks each kind of "from" on a stream with history:
// the member gets the history the kind selects, then every live message,
// each once and in order.
func TestCatchUpFrom(t *testing.T) {
	// A case returns the from and which sequences (history and live) the
	// member must get.
	type plan struct {
		from   wire.From
		keep   func(seq uint64) bool
		replay bool // a catch-up has history to send
	}
	cases := []struct {
		name string
		plan func(e *env, hist []uint64, base uint64) plan
	}{
		{"all", func(e *env, hist []uint64, base uint64) plan {
			return plan{fromAll, func(uint64) bool { return true }, true}
		}},
		{"after 0", func(e *env, hist []uint64, base uint64) plan {
			return plan{wire.From{Kind: wire.FromAfter}, func(uint64) bool { return true }, true}
		}},
		{"after a seq of the subject", func(e *env, hist []uint64, base uint64) plan {
			n := hist[20]
			return plan{wire.From{Kind: wire.FromAfter, After: n}, func(s uint64) bool { return s > n }, true}
		}},
		{"after a seq of another subject", func(e *env, hist []uint64, base uint64) plan {
			n := hist[20] + 1 // ev.b: publish alternates ev.a, ev.b, ev.a
			if slices.Contains(hist, n) {
				t.Fatalf("seq %d is on ev.a", n)
			}
			return plan{wire.From{Kind: wire.FromAfter, After: n}, func(s uint64) bool { return s > n }, true}
		}},
		{"after the base", func(e *env, hist []uint64, base uint64) plan {
			return plan{wire.From{Kind: wire.FromAfter, After: base}, func(s uint64) bool { return s > base }, false}
		}},
		{"after a seq not stored yet", func(e *env, hist []uint64, base uint64) plan {
			n := base + 4 // live delivery skips up to n
			return plan{wire.From{Kind: wire.FromAfter, After: n}, func(s uint64) bool { return s > n }, false}
		}},
		{"new", func(e *env, hist []uint64, base uint64) plan {
			return plan{wire.From{Kind: wire.FromNew}, func(s uint64) bool { return s > base }, false}
		}},
		{"last", func(e *env, hist []uint64, base uint64) plan {
			n := hist[len(hist)-1]
			return plan{wire.From{Kind: wire.FromLast}, func(s uint64) bool { return s >= n }, true}
		}},
		{"time", func(e *env, hist []uint64, base uint64) plan {
			at := e.stamp(hist[30])
			return plan{wire.From{Kind: wire.FromTime, Time: at}, func(s uint64) bool { return !e.stamp(s).Before(at) }, true}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1<<20)
			hist := e.publish(90, "ev.a", "ev.b", "ev.a")
			base := e.lastSeq()
			p := tc.plan(e, hist, base)

			m := newMember(t, "s1", 1<<20)
			m.hold(0) // before its first message, or before the switch when there is no history
			js := e.subscribe(m, "ev.a", p.from)
			m.waitAttached()
			m.waitHeld()
			// Stored after the attach: above base, so buffered or live.
			live := e.publish(12, "ev.a", "ev.b")
			waitFor(t, "the feed to reach the last live message", func() bool { return stateOf(js).feedLast == live[len(live)-1] })
			m.release()
			var want []uint64
			for _, s := range slices.Concat(hist, live) {
				if p.keep(s) {
					want = append(want, s)
				}
			}
			waitFor(t, "the sub to go live", func() bool { return stateOf(js).live })
			m.waitCount(len(want))
			e.check(m, "ev.a", want)

			waitFor(t, "the catch-up to end", e.r.idle)
			e.waitConsumers(1)
			if n, want := e.r.Stats().Catchups, map[bool]uint64{true: 1}[p.replay]; n != want {
				t.Errorf("Catchups = %d, want %d", n, want)
			}
			m.noFail()
		})
	}
}

// stamp is the time the stream stored seq at.
func (e *env) stamp(seq uint64) time.Time {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	m, err := e.stream.GetMsg(ctx, seq)
	if err != nil {
		e.t.Fatalf("get msg %d: %v", seq, err)
	}
	return m.Time
}

// TestUnsubscribeDuringCatchUp ends a sub held in its catch-up: no
// consumer is left, the feed goes with its last member, and Shutdown
// leaves no goroutine behind.
func TestUnsubscribeDuringCatchUp(t *testing.T) {
	cases := []struct {
		name   string
		shared bool // another member keeps the feed
	}{
		{"last member", false},
		{"feed shared", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1<<20)
			e.publish(200, "ev.a")
			var other *member
			if tc.shared {
				other = newMember(t, "other", 1<<20)
				ojs := e.subscribe(other, "ev.a", wire.From{Kind: wire.FromNew})
				other.waitAttached()
				waitFor(t, "the other sub to go live", func() bool { return stateOf(ojs).live })
			}

			m := newMember(t, "s1", 1<<20)
			m.hold(10)
			js := e.subscribe(m, "ev.a", fromAll)
			m.waitAttached()
			m.waitHeld()

			js.Unsubscribe()
			feeds := 0
			if tc.shared {
				feeds = 1
			}
			e.waitConsumers(feeds)
			waitFor(t, "the catch-up to end", e.r.idle)
			waitFor(t, "the feed count to settle", func() bool { return e.r.Feeds() == feeds })
			if st := stateOf(js); st.member {
				t.Fatal("still a member of the feed")
			}
			js.Unsubscribe() // idempotent
			if n := m.count(); n != 10 {
				t.Fatalf("got %d messages after the hold at 10", n)
			}
			m.noFail()

			if tc.shared {
				more := e.publish(5, "ev.a")
				other.waitCount(len(more))
				e.check(other, "ev.a", more)
			}

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			e.r.Shutdown(ctx)
			e.waitConsumers(0)
			waitFor(t, "every goroutine to end", func() bool { return len(ownGoroutines()) == 0 })
			if _, err := e.r.Subscribe(newMember(t, "late", 1<<20), "ev.a", fromAll); !errors.Is(err, ErrClosed) {
				t.Fatalf("Subscribe after Shutdown: %v, want ErrClosed", err)
			}
			e.r.Shutdown(ctx) // idempotent
		})
	}
}

// TestClientGoneEndsCatchUp stops taking frames partway through the
// history: the catch-up ends without Fail, deletes its consumer and frees
// its slot, and a later sub catches up in full.
func TestClientGoneEndsCatchUp(t *testing.T) {
	cases := []struct {
		name string
		gone func(m *member)
	}{
		{"Enqueue refuses", func(m *member) { m.goneAt = 10 }}, // once: the catch-up stops at the first refusal
		{"Queued reports closed", func(m *member) { m.closeAt = 10 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1<<20)
			hist := e.publish(100, "ev.a")

			m := newMember(t, "s1", 1<<20)
			m.slots = make(chan struct{}, 1)
			tc.gone(m)
			e.subscribe(m, "ev.a", fromAll)
			m.waitAttached()
			waitFor(t, "the catch-up to end", e.r.idle)
			if n := len(m.slots); n != 0 {
				t.Errorf("the client's catch-up slot still taken (%d)", n)
			}
			e.waitConsumers(1) // the feed's
			e.check(m, "ev.a", hist[:10])
			if n := m.refusals(); n > 1 {
				t.Errorf("Enqueue refused %d times, want at most once", n)
			}
			m.noFail()

			m2 := newMember(t, "s2", 1<<20)
			js2 := e.subscribe(m2, "ev.a", fromAll)
			m2.waitCount(len(hist))
			waitFor(t, "the second sub to go live", func() bool { return stateOf(js2).live })
			e.check(m2, "ev.a", hist)
			waitFor(t, "its catch-up to end", e.r.idle)
		})
	}
}

// TestCatchUpClientSlots runs two catch-ups of one client that allows
// one at a time (Limited): the second waits for the first's slot, and the
// first, held by a full queue, leaves the node-wide slot to others.
func TestCatchUpClientSlots(t *testing.T) {
	e := newEnv(t, 1<<20)
	hist := e.publish(100, "ev.a")
	slots := make(chan struct{}, 1)
	m1, m2 := newMember(t, "s1", 1<<20), newMember(t, "s2", 1<<20)
	m1.slots, m2.slots = slots, slots

	m1.hold(5)
	js1 := e.subscribe(m1, "ev.a", fromAll)
	m1.waitHeld()
	js2 := e.subscribe(m2, "ev.a", fromAll)
	m2.waitAttached()
	waitFor(t, "the held catch-up to free its node-wide slot", func() bool { return len(e.r.catchups) == 0 })
	if n := m2.count(); n != 0 {
		t.Fatalf("the second catch-up sent %d messages while the first held the client's slot", n)
	}

	m1.release()
	for _, s := range []struct {
		m  *member
		js *Sub
	}{{m1, js1}, {m2, js2}} {
		s.m.waitCount(len(hist))
		waitFor(t, s.m.sid+" to go live", func() bool { return stateOf(s.js).live })
		e.check(s.m, "ev.a", hist)
	}
	waitFor(t, "the catch-ups to end", e.r.idle)
	if n := len(slots); n != 0 {
		t.Errorf("%d of the client's catch-up slots still taken", n)
	}
}

// TestNoStream fails a sub whose subject no stream covers, before it is
// attached, with an error callers can branch on.
func TestNoStream(t *testing.T) {
	cases := []struct {
		name      string
		jetStream bool
		subject   string
		want      error
	}{
		{"no stream matches", true, "other.x", jetstream.ErrStreamNotFound},
		{"a stream only overlaps", true, ">", jetstream.ErrStreamNotFound},
		{"JetStream off", false, "ev.a", jetstream.ErrJetStreamNotEnabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *Streams
			if tc.jetStream {
				r = newEnv(t, 1<<20).r
			} else {
				js, err := jetstream.New(runNATS(t, false))
				if err != nil {
					t.Fatal(err)
				}
				r = newStreams(t, js, 1<<20)
			}
			m := newMember(t, "s1", 1<<20)
			js, err := r.Subscribe(m, tc.subject, fromAll)
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			t.Cleanup(js.Unsubscribe)
			select {
			case err := <-m.failed:
				if !errors.Is(err, tc.want) {
					t.Fatalf("Fail(%v), want %v", err, tc.want)
				}
			case <-m.attached:
				t.Fatal("Attached")
			case <-time.After(waitLimit):
				t.Fatal("timed out waiting for Fail")
			}
			waitFor(t, "the setup to end", r.idle)
			if n := r.Feeds(); n != 0 {
				t.Errorf("Feeds() = %d after a failed start", n)
			}
			select {
			case <-m.attached:
				t.Fatal("Attached after Fail")
			default:
			}
		})
	}
}
