package ratelimit

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Limit
		err  string
	}{
		{in: "60/1m", want: Limit{60, time.Minute}},
		{in: "10/s", want: Limit{10, time.Second}},
		{in: " 1000 / h ", want: Limit{1000, time.Hour}},
		{in: "5/1h30m", want: Limit{5, 90 * time.Minute}},
		{in: "60", err: "want CALLS/WINDOW"},
		{in: "0/1m", err: "not a positive whole number"},
		{in: "-1/1m", err: "not a positive whole number"},
		{in: "x/1m", err: "not a positive whole number"},
		{in: "1/minute", err: `"minute" is not a window`},
		{in: "1/0s", err: "is not a window"},
		{in: "1/1ns", err: "at least 1ms"},
		{in: "100001/1h", err: "at most 100000 calls"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLimit(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseLimit(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLimit(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := ParseLimit(got.String()); err != nil || back != got {
				t.Fatalf("round trip of %v = %v, %v", got, back, err)
			}
		})
	}
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// TestSlidingWindow checks the window semantics step by step: each step is
// a call at an offset from t0 and whether it must be admitted.
func TestSlidingWindow(t *testing.T) {
	type step struct {
		at    time.Duration
		ok    bool
		retry time.Duration // checked when !ok
	}
	for _, tc := range []struct {
		name  string
		limit Limit
		steps []step
	}{
		{"burst then refuse", Limit{3, time.Minute}, []step{
			{0, true, 0}, {0, true, 0}, {0, true, 0}, {0, false, time.Minute}, {59 * time.Second, false, time.Second},
		}},
		{"window slides, not calendar", Limit{2, time.Minute}, []step{
			// Two calls late in one minute and one early in the next
			// would pass a fixed window; a sliding one refuses it.
			{50 * time.Second, true, 0}, {55 * time.Second, true, 0},
			{65 * time.Second, false, 45 * time.Second},
			{110 * time.Second, true, 0}, // the call at 50s left at 110s
			{114 * time.Second, false, time.Second},
			{115 * time.Second, true, 0},
		}},
		{"refused calls are not charged", Limit{1, 10 * time.Second}, []step{
			{0, true, 0}, {5 * time.Second, false, 5 * time.Second}, {9 * time.Second, false, time.Second}, {10 * time.Second, true, 0},
		}},
		{"exact boundary", Limit{1, time.Second}, []step{
			{0, true, 0}, {time.Second - 1, false, 1}, {time.Second, true, 0},
		}},
		{"clock going backward counts as now", Limit{2, time.Minute}, []step{
			{time.Minute, true, 0}, {0, true, 0}, {30 * time.Second, false, time.Minute},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New()
			for i, s := range tc.steps {
				r := l.Allow(t0.Add(s.at), Claim{Key: "k", Limit: tc.limit})
				if r.Allowed != s.ok {
					t.Fatalf("step %d at %v: allowed = %v, want %v", i, s.at, r.Allowed, s.ok)
				}
				if !s.ok && r.RetryAfter != s.retry {
					t.Fatalf("step %d at %v: retry after %v, want %v", i, s.at, r.RetryAfter, s.retry)
				}
			}
		})
	}
}

func TestRemainingAndKeys(t *testing.T) {
	l := New()
	lim := Limit{3, time.Minute}
	for i, want := range []int{2, 1, 0} {
		r := l.Allow(t0, Claim{"a", lim})
		if !r.Allowed || r.Remaining != want {
			t.Fatalf("call %d: %+v, want remaining %d", i, r, want)
		}
	}
	if r := l.Allow(t0, Claim{"b", lim}); !r.Allowed {
		t.Fatal("key b is charged for key a's calls")
	}
	if r := l.Allow(t0, Claim{"a", Limit{}}); r.Allowed {
		t.Fatal("zero limit admitted a call")
	}
}

func TestAllowManyIsAllOrNothing(t *testing.T) {
	l := New()
	tight := Limit{1, time.Minute}
	loose := Limit{10, time.Minute}
	if r := l.Allow(t0, Claim{"tight", tight}, Claim{"loose", loose}); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("first call = %+v", r)
	}
	r := l.Allow(t0, Claim{"loose", loose}, Claim{"tight", tight})
	if r.Allowed || r.Failed != 1 || r.RetryAfter != time.Minute {
		t.Fatalf("second call = %+v, want refused by claim 1", r)
	}
	// The refused call must not have charged "loose": 9 more fit.
	for i := range 9 {
		if r := l.Allow(t0, Claim{"loose", loose}); !r.Allowed {
			t.Fatalf("loose call %d refused: the refused multi-claim charged it", i)
		}
	}
	if r := l.Allow(t0, Claim{"loose", loose}); r.Allowed {
		t.Fatal("loose admitted an 11th call")
	}
	// The same key named twice is charged twice.
	l2 := New()
	if r := l2.Allow(t0, Claim{"k", Limit{2, time.Minute}}, Claim{"k", Limit{2, time.Minute}}); !r.Allowed {
		t.Fatalf("double claim within limit refused: %+v", r)
	}
	if r := l2.Allow(t0, Claim{"k", Limit{2, time.Minute}}); r.Allowed {
		t.Fatal("double claim charged the key once")
	}
	if r := New().Allow(t0, Claim{"k", Limit{1, time.Minute}}, Claim{"k", Limit{1, time.Minute}}); r.Allowed || r.Failed != 1 {
		t.Fatalf("double claim over limit = %+v", r)
	}
}

func TestSweepForgetsIdleKeys(t *testing.T) {
	l := New()
	lim := Limit{1, time.Second}
	for i := range 5000 {
		l.Allow(t0, Claim{fmt.Sprintf("k%d", i), lim})
	}
	if n := l.Len(); n != 5000 {
		t.Fatalf("Len = %d, want 5000", n)
	}
	// Enough calls after the windows closed for every shard to sweep.
	later := t0.Add(time.Hour)
	for s := range shardCount {
		key := ""
		for i := 0; key == ""; i++ {
			if k := fmt.Sprintf("fresh%d", i); shardOf(k) == s {
				key = k
			}
		}
		for range sweepEvery {
			l.Allow(later, Claim{key, Limit{1 << 16, time.Hour}})
		}
	}
	if n := l.Len(); n != shardCount {
		t.Fatalf("Len = %d after sweeping; idle keys were kept", n)
	}
}

// TestConcurrentExact hammers one key from many goroutines at one instant:
// exactly N calls must be admitted.
func TestConcurrentExact(t *testing.T) {
	l := New()
	lim := Limit{500, time.Minute}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				claims := []Claim{{"shared", lim}}
				if g%2 == 0 {
					claims = append(claims, Claim{fmt.Sprintf("own%d", g), Limit{1000, time.Minute}})
				}
				if l.Allow(t0, claims...).Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got != int64(lim.N) {
		t.Fatalf("admitted %d calls, want exactly %d", got, lim.N)
	}
}

// TestConcurrentSlidingProperty runs goroutines over a shared advancing
// clock and checks afterwards that no window of the limit's length ever
// held more than N admitted calls on any key, and that the limiter did not
// refuse calls it had room for on a quiet key.
func TestConcurrentSlidingProperty(t *testing.T) {
	l := New()
	lim := Limit{20, 100 * time.Millisecond}
	var clock atomic.Int64 // nanoseconds after t0
	var mu sync.Mutex
	admitted := map[string][]int64{}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				key := fmt.Sprintf("k%d", (g+i)%3)
				mu.Lock()
				// Hold mu across the call so the recorded order is the
				// order the limiter saw; the limiter's own locking is
				// still exercised by the other keys' shards. The clock
				// advances under mu too: a time read before the lock
				// could reach the limiter after a later one, which it
				// clamps to the later time, so the recorded time would
				// not be the one it counted.
				now := clock.Add(int64(37 * time.Microsecond))
				r := l.Allow(t0.Add(time.Duration(now)), Claim{key, lim})
				if r.Allowed {
					admitted[key] = append(admitted[key], now)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for key, ts := range admitted {
		slices.Sort(ts)
		for i := lim.N; i < len(ts); i++ {
			if ts[i]-ts[i-lim.N] < int64(lim.Window) {
				t.Fatalf("key %s: %d calls within %v (from %d to %d)", key, lim.N+1, lim.Window, ts[i-lim.N], ts[i])
			}
		}
		if len(ts) < lim.N {
			t.Fatalf("key %s: only %d calls admitted", key, len(ts))
		}
	}
}

// TestConcurrentRace exercises many keys and shards without a global lock
// (run with -race).
func TestConcurrentRace(t *testing.T) {
	l := New()
	var wg sync.WaitGroup
	counts := make([]atomic.Int64, 8)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				k := (g*7 + i) % len(counts)
				now := t0.Add(time.Duration(i) * time.Millisecond)
				r := l.Allow(now, Claim{fmt.Sprintf("key-%d", k), Limit{50, time.Hour}}, Claim{"global", Limit{1 << 16, time.Hour}})
				if r.Allowed {
					counts[k].Add(1)
				}
				_ = l.Len()
			}
		}()
	}
	wg.Wait()
	for k := range counts {
		if got := counts[k].Load(); got != 50 {
			t.Fatalf("key-%d admitted %d, want 50", k, got)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New()
	lim := Limit{1 << 16, time.Second}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			l.Allow(t0.Add(time.Duration(i)*time.Microsecond), Claim{"inst_01/email/limit", lim})
		}
	})
}
