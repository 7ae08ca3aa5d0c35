package ratelimit

import (
	"sync"
	"testing"
	"time"
)

// t0 is an arbitrary start: Bucket takes 0 to mean "never refilled".
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucket(t *testing.T) {
	type step struct {
		at          time.Duration // since t0
		n           int           // messages taken at once; 1 if 0
		ok, abusive bool          // of the last of them
	}
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		fill  bool
		steps []step
	}{
		{
			name: "a full bucket lets a burst through", rate: 1, burst: 3, fill: true,
			steps: []step{{n: 3, ok: true}, {ok: false}},
		},
		{
			name: "an empty bucket refuses until refilled", rate: 2, burst: 3,
			steps: []step{{ok: false}, {at: 400 * time.Millisecond, ok: false}, {at: 500 * time.Millisecond, ok: true}, {at: 500 * time.Millisecond, ok: false}},
		},
		{
			name: "refill stops at burst", rate: 10, burst: 2, fill: true,
			steps: []step{{n: 2, ok: true}, {at: time.Hour, n: 2, ok: true}, {at: time.Hour, ok: false}},
		},
		{
			name: "fractional rate", rate: 0.5, burst: 1, fill: true,
			steps: []step{{ok: true}, {at: time.Second, ok: false}, {at: 2 * time.Second, ok: true}},
		},
		{
			name: "20 refusals in a row are tolerated with a small burst", rate: 1, burst: 2,
			steps: []step{{n: 20, ok: false}, {ok: false, abusive: true}},
		},
		{
			name: "4 bursts of refusals are tolerated", rate: 1, burst: 10,
			steps: []step{{n: 40, ok: false}, {ok: false, abusive: true}},
		},
		{
			name: "an allowed message resets the refusals", rate: 1, burst: 1,
			steps: []step{{n: 20, ok: false}, {at: time.Second, ok: true}, {at: time.Second, n: 20, ok: false}, {at: time.Second, ok: false, abusive: true}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b Bucket
			if tc.fill {
				b.Fill(tc.burst)
			}
			for i, s := range tc.steps {
				var ok, abusive bool
				for range max(s.n, 1) {
					ok, abusive = b.Take(t0.Add(s.at).UnixNano(), tc.rate, tc.burst)
				}
				if ok != s.ok || abusive != s.abusive {
					t.Fatalf("step %d (at %v): ok %v, abusive %v; want %v, %v", i, s.at, ok, abusive, s.ok, s.abusive)
				}
			}
		})
	}
}

func TestLog(t *testing.T) {
	type step struct {
		at         time.Duration // since t0
		ok         bool
		suppressed int
	}
	for _, tc := range []struct {
		name     string
		burst    int
		interval time.Duration
		steps    []step
	}{
		{
			name: "a burst, then one per interval", burst: 2, interval: time.Second,
			steps: []step{{ok: true}, {ok: true}, {ok: false}, {at: 999 * time.Millisecond, ok: false}, {at: time.Second, ok: true, suppressed: 2}, {at: time.Second, ok: false}},
		},
		{
			name: "the count restarts after each line written", burst: 1, interval: time.Minute,
			steps: []step{{ok: true}, {ok: false}, {at: time.Minute, ok: true, suppressed: 1}, {at: 2 * time.Minute, ok: true}},
		},
		{
			name: "a quiet spell refills at most the burst", burst: 2, interval: time.Second,
			steps: []step{{ok: true}, {ok: true}, {at: time.Hour, ok: true}, {at: time.Hour, ok: true}, {at: time.Hour, ok: false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLog(tc.burst, tc.interval)
			for i, s := range tc.steps {
				ok, suppressed := l.Allow(t0.Add(s.at))
				if ok != s.ok || suppressed != s.suppressed {
					t.Fatalf("step %d (at %v): ok %v, suppressed %d; want %v, %d", i, s.at, ok, suppressed, s.ok, s.suppressed)
				}
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	type step struct {
		at         time.Duration // since t0
		ok         bool
		retryAfter int
	}
	for _, tc := range []struct {
		name  string
		rate  float64
		steps []step
	}{
		{
			name: "zero is unlimited", rate: 0,
			steps: []step{{ok: true}, {ok: true}, {ok: true}},
		},
		{
			name: "one second's worth, then retry in a second", rate: 2,
			steps: []step{{ok: true}, {ok: true}, {ok: false, retryAfter: 1}, {at: 500 * time.Millisecond, ok: true}, {at: 500 * time.Millisecond, ok: false, retryAfter: 1}},
		},
		{
			name: "below one per second the burst is one", rate: 0.25,
			steps: []step{{ok: true}, {ok: false, retryAfter: 4}, {at: 3 * time.Second, ok: false, retryAfter: 1}, {at: 4 * time.Second, ok: true}},
		},
		{
			name: "a quiet spell refills at most one second's worth", rate: 3,
			steps: []step{{ok: true}, {at: time.Hour, ok: true}, {at: time.Hour, ok: true}, {at: time.Hour, ok: true}, {at: time.Hour, ok: false, retryAfter: 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l Limiter
			for i, s := range tc.steps {
				ok, retryAfter := l.Take(t0.Add(s.at), tc.rate)
				if ok != s.ok || retryAfter != s.retryAfter {
					t.Fatalf("step %d (at %v): ok %v, retry after %d; want %v, %d", i, s.at, ok, retryAfter, s.ok, s.retryAfter)
				}
			}
		})
	}
}

// TestLimiterConcurrent takes from one Limiter on many goroutines at one
// instant: exactly one second's worth gets through.
func TestLimiterConcurrent(t *testing.T) {
	const rate, callers = 50, 200
	var (
		l    Limiter
		mu   sync.Mutex
		took int
		wg   sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			if ok, _ := l.Take(t0, rate); ok {
				mu.Lock()
				took++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if took != rate {
		t.Fatalf("%d of %d took a token at %v/s, want %d", took, callers, rate, rate)
	}
}

func BenchmarkBucketTake(b *testing.B) {
	b.ReportAllocs()
	var bk Bucket
	bk.Fill(100)
	now := t0.UnixNano()
	for b.Loop() {
		now += int64(time.Millisecond)
		bk.Take(now, 1000, 100)
	}
}
