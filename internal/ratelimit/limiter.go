package ratelimit

import (
	"sync"
	"time"
)

// shardCount spreads keys over independently locked maps so that
// concurrent callers on different keys rarely contend.
const shardCount = 64

// sweepEvery is how many calls a shard takes between sweeps of idle keys.
const sweepEvery = 4096

// Claim asks to admit one call under Limit for Key.
type Claim struct {
	Key   string
	Limit Limit
}

// Result is the outcome of [Limiter.Allow].
type Result struct {
	// Allowed reports whether every claim was admitted. When false, none
	// was: no window is charged for a call that is refused.
	Allowed bool
	// Failed is the index of the first claim that was refused, or -1.
	Failed int
	// Remaining is how many more calls the tightest window admits now
	// (after this one, when it was admitted).
	Remaining int
	// RetryAfter is, when refused, how long until the refusing windows
	// admit a call again.
	RetryAfter time.Duration
}

// Limiter is a set of sliding windows, one per key. The zero value is not
// usable; call [New]. A Limiter is safe for concurrent use.
type Limiter struct {
	shards [shardCount]shard
}

type shard struct {
	mu      sync.Mutex
	windows map[string]*window
	ops     int
}

// window holds the times (unix nanoseconds, ascending) of the admitted calls
// that may still be inside the window.
type window struct {
	times  []int64
	last   int64 // the latest time seen, so the clock never runs backward here
	length int64 // the window length of the latest claim, for sweeping
}

// New returns an empty Limiter.
func New() *Limiter {
	l := &Limiter{}
	for i := range l.shards {
		l.shards[i].windows = make(map[string]*window)
	}
	return l
}

// Allow admits one call at time now under every claim, or under none:
// either all windows are charged or none is. Claims on the same key are
// charged once each. A claim whose Limit is not positive is refused.
func (l *Limiter) Allow(now time.Time, claims ...Claim) Result {
	switch len(claims) {
	case 0:
		return Result{Allowed: true, Failed: -1, Remaining: -1}
	case 1:
		return l.allowOne(now.UnixNano(), claims[0])
	}
	return l.allowMany(now.UnixNano(), claims)
}

func (l *Limiter) allowOne(t int64, c Claim) Result {
	if c.Limit.N <= 0 || c.Limit.Window <= 0 {
		return Result{Failed: 0}
	}
	s := &l.shards[shardOf(c.Key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick(t)
	w := s.get(c.Key)
	ok, remaining, retry := w.check(t, c.Limit)
	if !ok {
		return Result{Failed: 0, RetryAfter: retry}
	}
	w.admit(t, c.Limit)
	return Result{Allowed: true, Failed: -1, Remaining: remaining - 1}
}

// allowMany locks every shard involved in ascending order (so concurrent
// callers cannot deadlock), checks all claims, then charges all of them.
func (l *Limiter) allowMany(t int64, claims []Claim) Result {
	var idx [shardCount]bool
	for i, c := range claims {
		if c.Limit.N <= 0 || c.Limit.Window <= 0 {
			return Result{Failed: i}
		}
		idx[shardOf(c.Key)] = true
	}
	for i := range idx {
		if idx[i] {
			l.shards[i].mu.Lock()
			l.shards[i].tick(t)
		}
	}
	defer func() {
		for i := range idx {
			if idx[i] {
				l.shards[i].mu.Unlock()
			}
		}
	}()
	res := Result{Allowed: true, Failed: -1, Remaining: -1}
	for i, c := range claims {
		w := l.shards[shardOf(c.Key)].get(c.Key)
		// A key named twice is charged twice, so count the earlier
		// claims on it in this call.
		pending := 0
		for _, p := range claims[:i] {
			if p.Key == c.Key {
				pending++
			}
		}
		ok, remaining, retry := w.checkPending(t, c.Limit, pending)
		if !ok {
			if res.Allowed {
				res.Failed = i
			}
			res.Allowed = false
			res.RetryAfter = max(res.RetryAfter, retry)
			continue
		}
		if res.Remaining < 0 || remaining-1 < res.Remaining {
			res.Remaining = remaining - 1
		}
	}
	if !res.Allowed {
		res.Remaining = 0
		return res
	}
	for _, c := range claims {
		l.shards[shardOf(c.Key)].get(c.Key).admit(t, c.Limit)
	}
	return res
}

// Len returns the number of keys the limiter currently remembers.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.windows)
		s.mu.Unlock()
	}
	return n
}

// get returns the window for key, creating it. The caller holds s.mu.
func (s *shard) get(key string) *window {
	if w, ok := s.windows[key]; ok {
		return w
	}
	w := &window{}
	s.windows[key] = w
	return w
}

// tick counts a call and, every sweepEvery calls, forgets the keys whose
// windows hold no call any more. The caller holds s.mu.
func (s *shard) tick(t int64) {
	s.ops++
	if s.ops < sweepEvery {
		return
	}
	s.ops = 0
	for k, w := range s.windows {
		if w.last <= t-w.length {
			delete(s.windows, k)
		}
	}
}

// check reports whether one more call fits at time t, how many calls fit
// in total, and otherwise when the next one will.
func (w *window) check(t int64, lim Limit) (ok bool, remaining int, retry time.Duration) {
	return w.checkPending(t, lim, 0)
}

func (w *window) checkPending(t int64, lim Limit, pending int) (ok bool, remaining int, retry time.Duration) {
	if t < w.last {
		t = w.last
	}
	w.expire(t, int64(lim.Window))
	used := len(w.times) + pending
	if used < lim.N {
		return true, lim.N - used, 0
	}
	// The call that must leave the window before another fits is the
	// (used-N+1)-th oldest one; pending calls are at t and never leave
	// sooner than the stored ones.
	i := used - lim.N
	var at int64
	if i < len(w.times) {
		at = w.times[i]
	} else {
		at = t
	}
	return false, 0, time.Duration(at + int64(lim.Window) - t)
}

// expire drops the calls at or before t-length.
func (w *window) expire(t, length int64) {
	cut := t - length
	i := 0
	for i < len(w.times) && w.times[i] <= cut {
		i++
	}
	if i == 0 {
		return
	}
	if i == len(w.times) {
		w.times = w.times[:0]
		return
	}
	// Keep memory bounded: copy down when most of the slice is dead.
	if i > cap(w.times)/2 {
		n := copy(w.times, w.times[i:])
		w.times = w.times[:n]
		return
	}
	w.times = w.times[i:]
}

func (w *window) admit(t int64, lim Limit) {
	if t < w.last {
		t = w.last
	}
	w.last = t
	w.length = int64(lim.Window)
	w.times = append(w.times, t)
}

// shardOf hashes key with FNV-1a.
func shardOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % shardCount)
}
