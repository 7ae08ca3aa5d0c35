package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"wsbridge/bench/internal/procstat"
	"wsbridge/bench/internal/wsc"
)

// idle opens IdleConns subscribed connections and measures what each costs
// the server at rest, then closes them and watches memory come back.
func (r *runner) idle(ctx context.Context) error {
	n := r.cfg.IdleConns
	subject := func(i int) string { return "bench.idle." + strconv.Itoa(i) }
	if r.cfg.IdleShared {
		subject = func(int) string { return "bench.idle" }
	}
	before := r.snap()
	conns, failed, _ := r.dialMany(ctx, n, subject, "")
	defer closeAll(conns)
	var seen atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				k, _, err := c.Next()
				if err != nil {
					return
				}
				if k == wsc.Msg && first {
					first = false
					seen.Add(1)
				}
			}
		}()
	}
	if r.cfg.Dialect == wsc.Raw {
		// Raw mode has no ok: a probe per subject proves every
		// subscription is live before memory is read.
		if err := r.probe(ctx, len(conns), subject, &seen); err != nil {
			return err
		}
	}
	setup := time.Since(before.srv.At)
	if len(conns) > 0 {
		if st, ok := conns[0].TLS(); ok {
			r.res.note("%s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		}
	}
	// Let the handshake garbage be collected so RSS shows what
	// connections hold, not what setting them up cost.
	time.Sleep(min(r.cfg.IdleSettle, 5*time.Second))
	after := r.snap()
	k := float64(len(conns))
	r.res.add("connections", k, "")
	r.res.add("failed", float64(failed), "")
	r.res.add("setup_time", setup.Seconds(), "s")
	r.res.add("rss_before", float64(before.srv.RSS)/(1<<20), "MiB")
	r.res.add("rss_after", float64(after.srv.RSS)/(1<<20), "MiB")
	r.res.add("rss_per_conn", float64(after.srv.RSS-before.srv.RSS)/k/1024, "KiB")
	r.res.add("threads", float64(after.srv.Threads), "")
	r.res.add("fds_per_conn", float64(after.srv.FDs-before.srv.FDs)/k, "")
	if r.cfg.NATSPID != 0 {
		r.res.add("nats_rss_per_conn", float64(after.nats.RSS-before.nats.RSS)/k/1024, "KiB")
	}
	if hold := r.cfg.IdleHold - time.Since(before.srv.At.Add(setup)); r.cfg.IdleHold > 0 {
		select {
		case <-time.After(hold):
		case <-ctx.Done():
		}
		held := r.snap()
		r.res.add("rss_per_conn_held", float64(held.srv.RSS-before.srv.RSS)/k/1024, "KiB")
		r.res.add("threads_held", float64(held.srv.Threads), "")
	}
	closeAll(conns)
	wg.Wait()
	// Memory returns when the server lets go of it: poll until it stops
	// falling or IdleSettle passes.
	deadline := time.Now().Add(r.cfg.IdleSettle)
	left, _ := procstat.Read(r.cfg.ServerPID)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
		left, _ = procstat.Read(r.cfg.ServerPID)
	}
	grown := after.srv.RSS - before.srv.RSS
	r.res.add("rss_after_leave", float64(left.RSS)/(1<<20), "MiB")
	if grown > 0 {
		r.res.add("rss_returned", 100*float64(after.srv.RSS-left.RSS)/float64(grown), "%")
	}
	r.res.add("fds_after_leave", float64(left.FDs-before.srv.FDs), "")
	return nil
}

// probe publishes one message per subject until seen reaches want.
func (r *runner) probe(ctx context.Context, want int, subject func(int) string, seen *atomic.Int64) error {
	nc, err := r.connectNATS()
	if err != nil {
		return err
	}
	defer nc.Close()
	distinct := subject(0) != subject(1)
	for try := 0; seen.Load() < int64(want); try++ {
		if try == 30 || ctx.Err() != nil {
			r.res.warn("probe: only %d of %d raw subscriptions answered", seen.Load(), want)
			return nil
		}
		if distinct {
			for i := range want {
				_ = nc.Publish(subject(i), []byte(`"probe"`))
			}
		} else {
			_ = nc.Publish(subject(0), []byte(`"probe"`))
		}
		_ = nc.Flush()
		r.waitFor(ctx, func() bool { return seen.Load() >= int64(want) }, seen.Load, time.Second)
	}
	return nil
}

// connect measures handshakes: Dialers goroutines open ConnectTotal
// connections, each complete when the server greeted it (JSON: hello,
// Native: INFO then PONG to CONNECT+PING, Raw: the 101 of a pub-only
// connection). Connections stay
// open until the end so only setup is measured.
func (r *runner) connect(ctx context.Context) error {
	pub := ""
	if r.cfg.Dialect == wsc.Raw {
		pub = "bench.connect" // raw mode needs sub or pub; pub costs no NATS interest
	}
	a := r.snap()
	conns, failed, lat := r.dialMany(ctx, r.cfg.ConnectTotal, func(int) string { return "" }, pub)
	b := r.snap()
	defer closeAll(conns)
	wall := b.srv.At.Sub(a.srv.At)
	r.res.add("connections", float64(len(conns)), "")
	r.res.add("failed", float64(failed), "")
	r.res.add("handshakes_per_s", float64(len(conns))/wall.Seconds(), "/s")
	sortDurations(lat)
	r.res.add("handshake_p50", ms(percentile(lat, 0.5)), "ms")
	r.res.add("handshake_p99", ms(percentile(lat, 0.99)), "ms")
	r.cpu(a, b, len(conns), "handshake")
	return nil
}

// payload builds a JSON message of about 100 bytes carrying seq and, when
// ts is not zero, the publish time in unix nanoseconds.
func payload(b []byte, seq int, ts int64) []byte {
	b = append(b[:0], `{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	for len(b) < 98 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// field returns the integer after key in p.
func field(p []byte, key string) (int64, bool) {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return 0, false
	}
	var n int64
	j := i + len(key)
	for ; j < len(p) && p[j] >= '0' && p[j] <= '9'; j++ {
		n = n*10 + int64(p[j]-'0')
	}
	return n, j > i+len(key)
}

// subscriber is one fan-out receiver's tally. It is written by its reader
// goroutine; counters read by others are atomic.
type subscriber struct {
	next     int64
	got      atomic.Int64
	lost     int64
	disorder int64
	last     atomic.Int64 // unix nanos of the last delivery
	lat      []time.Duration
}

// fanout runs fanout-burst (BurstMsgs as fast as NATS takes them) or
// fanout-rate (Rate per second for RateFor, with latency) to FanoutSubs
// subscribers of one subject.
func (r *runner) fanout(ctx context.Context, paced bool) error {
	const subject = "bench.fanout"
	msgs := r.cfg.BurstMsgs
	if paced {
		msgs = r.cfg.Rate * int(r.cfg.RateFor/time.Second)
	}
	conns, failed, _ := r.dialMany(ctx, r.cfg.FanoutSubs, func(int) string { return subject }, "")
	defer closeAll(conns)
	r.res.add("subscribers", float64(len(conns)), "")
	r.res.add("failed", float64(failed), "")
	r.res.add("messages", float64(msgs), "")
	var warmed, done, cut atomic.Int64
	var ending atomic.Bool
	subs := make([]*subscriber, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		s := &subscriber{}
		if paced {
			s.lat = make([]time.Duration, 0, msgs)
		}
		subs[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			warm := false
			for {
				k, p, err := c.Next()
				if err != nil {
					if !ending.Load() {
						cut.Add(1) // the server closed it, not us
					}
					return
				}
				if k != wsc.Msg {
					continue
				}
				seq, ok := field(p, `"seq":`)
				if !ok {
					if !warm {
						warm = true
						warmed.Add(1)
					}
					continue
				}
				now := time.Now().UnixNano()
				if paced {
					ts, _ := field(p, `"ts":`)
					s.lat = append(s.lat, time.Duration(now-ts))
				}
				switch {
				case seq == s.next:
				case seq > s.next:
					s.lost += seq - s.next
				default:
					s.disorder++
				}
				s.next = max(s.next, seq+1)
				s.last.Store(now)
				s.got.Add(1)
				if seq == int64(msgs-1) {
					done.Add(1)
				}
			}
		}()
	}
	nc, err := r.connectNATS()
	if err != nil {
		return err
	}
	defer nc.Close()
	// Warm up: every subscriber has seen a message, so all are live
	// (raw mode has no ok) and first-delivery costs are paid.
	for try := 0; warmed.Load() < int64(len(conns)); try++ {
		if try == 100 || ctx.Err() != nil {
			return fmt.Errorf("load: warm-up: only %d of %d subscribers got a message", warmed.Load(), len(conns))
		}
		_ = nc.Publish(subject, []byte(`{"warm":1}`))
		_ = nc.Flush()
		r.waitFor(ctx, func() bool { return warmed.Load() >= int64(len(conns)) }, warmed.Load, 300*time.Millisecond)
	}
	total := func() int64 {
		var n int64
		for _, s := range subs {
			n += s.got.Load()
		}
		return n
	}
	a := r.snap()
	var buf []byte
	if paced {
		tick := time.NewTicker(time.Second / time.Duration(r.cfg.Rate))
		for i := 0; i < msgs && ctx.Err() == nil; i++ {
			<-tick.C
			buf = payload(buf, i, time.Now().UnixNano())
			_ = nc.Publish(subject, buf)
		}
		tick.Stop()
	} else {
		for i := range msgs {
			buf = payload(buf, i, 0)
			if err := nc.Publish(subject, buf); err != nil {
				return fmt.Errorf("load: publishing: %w", err)
			}
		}
	}
	_ = nc.Flush()
	pubEnd := time.Now()
	complete := r.waitFor(ctx, func() bool { return done.Load() >= int64(len(conns)) }, total, 5*time.Second)
	b := r.snap()
	ending.Store(true)
	closeAll(conns)
	wg.Wait()

	var got, lost, disorder int64
	var last int64
	var lat []time.Duration
	for _, s := range subs {
		got += s.got.Load()
		lost += s.lost + int64(msgs) - s.next // trailing losses too
		disorder += s.disorder
		last = max(last, s.last.Load())
		lat = append(lat, s.lat...)
	}
	if !complete {
		r.res.warn("not every subscriber got every message before the deadline")
	}
	elapsed := time.Unix(0, last).Sub(a.srv.At)
	r.res.add("deliveries", float64(got), "")
	r.res.add("lost", float64(lost), "")
	r.res.add("out_of_order", float64(disorder), "")
	r.res.add("subscribers_cut", float64(cut.Load()), "")
	if !paced {
		r.res.add("publish_time", pubEnd.Sub(a.srv.At).Seconds(), "s")
		r.res.add("deliveries_per_s", float64(got)/elapsed.Seconds(), "/s")
	} else {
		sortDurations(lat)
		r.res.add("latency_p50", ms(percentile(lat, 0.5)), "ms")
		r.res.add("latency_p99", ms(percentile(lat, 0.99)), "ms")
		r.res.add("latency_max", ms(percentile(lat, 1)), "ms")
	}
	r.cpu(a, b, int(got), "delivery")
	return nil
}

// counter counts messages on subject with a nats.go subscriber.
type counter struct {
	n    atomic.Int64
	last atomic.Int64
	sub  *nats.Subscription
}

func (r *runner) count(nc *nats.Conn, subject string) (*counter, error) {
	ct := &counter{}
	sub, err := nc.Subscribe(subject, func(*nats.Msg) {
		ct.n.Add(1)
		ct.last.Store(time.Now().UnixNano())
	})
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	ct.sub = sub
	return ct, nc.Flush()
}

// drain reads a publishing connection so that pings get answered and
// errors are seen.
func drain(c *wsc.Conn, errs *atomic.Int64) {
	for {
		k, _, err := c.Next()
		if err != nil {
			return
		}
		if k == wsc.Err {
			errs.Add(1)
		}
	}
}

// publish sends PubCount messages from one connection, pipelined, and
// counts them arriving in NATS.
func (r *runner) publish(ctx context.Context) error {
	const subject = "bench.in"
	nc, err := r.connectNATS()
	if err != nil {
		return err
	}
	defer nc.Close()
	ct, err := r.count(nc, subject)
	if err != nil {
		return err
	}
	c, err := r.dial("", subject)
	if err != nil {
		return err
	}
	defer c.Close()
	var errs atomic.Int64
	go drain(c, &errs)
	a := r.snap()
	var batch, p []byte
	const perWrite = 64
	for i := 0; i < r.cfg.PubCount && ctx.Err() == nil; {
		batch = batch[:0]
		for j := 0; j < perWrite && i < r.cfg.PubCount; j, i = j+1, i+1 {
			p = payload(p, i, 0)
			batch = wsc.AppendPub(batch, r.cfg.Dialect, subject, p)
		}
		if err := c.WriteFrames(batch); err != nil {
			r.res.warn("writing: %v", err)
			break
		}
	}
	want := int64(r.cfg.PubCount)
	r.waitFor(ctx, func() bool { return ct.n.Load() >= want }, ct.n.Load, 5*time.Second)
	b := r.snap()
	got := ct.n.Load()
	r.res.add("messages", float64(got), "")
	r.res.add("lost", float64(want-got), "")
	r.res.add("errors", float64(errs.Load()), "")
	r.res.add("messages_per_s", float64(got)/time.Unix(0, ct.last.Load()).Sub(a.srv.At).Seconds(), "/s")
	r.cpu(a, b, int(got), "message")
	return nil
}

// publishRate has PubClients connections publish PubRate messages per
// second each for PubFor.
func (r *runner) publishRate(ctx context.Context) error {
	const subject = "bench.in"
	nc, err := r.connectNATS()
	if err != nil {
		return err
	}
	defer nc.Close()
	ct, err := r.count(nc, subject)
	if err != nil {
		return err
	}
	conns, failed, _ := r.dialMany(ctx, r.cfg.PubClients, func(int) string { return "" }, subject)
	defer closeAll(conns)
	var errs atomic.Int64
	for _, c := range conns {
		go drain(c, &errs)
	}
	per := r.cfg.PubRate * int(r.cfg.PubFor/time.Second)
	a := r.snap()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the clients over the first period.
			interval := time.Second / time.Duration(r.cfg.PubRate)
			time.Sleep(rand.N(interval))
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var frame, p []byte
			for i := 0; i < per && ctx.Err() == nil; i++ {
				p = payload(p, i, time.Now().UnixNano())
				frame = wsc.AppendPub(frame[:0], r.cfg.Dialect, subject, p)
				if c.WriteFrames(frame) != nil {
					return
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	want := int64(per * len(conns))
	r.waitFor(ctx, func() bool { return ct.n.Load() >= want }, ct.n.Load, 5*time.Second)
	b := r.snap()
	got := ct.n.Load()
	r.res.add("clients", float64(len(conns)), "")
	r.res.add("failed", float64(failed), "")
	r.res.add("messages", float64(got), "")
	r.res.add("lost", float64(want-got), "")
	r.res.add("errors", float64(errs.Load()), "")
	r.res.add("messages_per_s", float64(got)/b.srv.At.Sub(a.srv.At).Seconds(), "/s")
	r.cpu(a, b, int(got), "message")
	return nil
}
