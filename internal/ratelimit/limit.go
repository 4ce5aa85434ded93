// Package ratelimit is the in-process rate limiter that writ's enforcement
// points share. A [Limit] such as "60/1m" means at most 60 admitted calls in
// any window of one minute — a sliding window, not calendar minutes, so a
// burst at the end of one minute and the start of the next cannot double the
// rate. A [Limiter] keeps one window per key (for example one per agent
// instance and rule), is safe for concurrent use, and takes the current time
// from its caller so that tests and replays control the clock.
//
// The policy engine turns a rule's `rate` into [Claim] values; the access
// proxy, MCP gateway and token service all call the same Limiter, so one
// agent instance cannot get twice its budget by spreading calls over them.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxN bounds the number of calls in one limit. The limiter remembers the
// time of every admitted call inside the window, so N also bounds the memory
// one key can use (8 bytes a call).
const MaxN = 100_000

// Limit is N calls per Window.
type Limit struct {
	N      int
	Window time.Duration
}

// ParseLimit parses "N/WINDOW", where WINDOW is a Go duration ("1m", "30s",
// "1h30m") or a bare unit meaning one of it ("s", "m", "h"): "60/1m",
// "10/s", "1000/h".
func ParseLimit(s string) (Limit, error) {
	n, w, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Limit{}, fmt.Errorf("parse rate %q: want CALLS/WINDOW such as 60/1m or 10/s", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 {
		return Limit{}, fmt.Errorf("parse rate %q: %q is not a positive whole number of calls", s, n)
	}
	if count > MaxN {
		return Limit{}, fmt.Errorf("parse rate %q: at most %d calls per window are supported; use a shorter window", s, MaxN)
	}
	w = strings.TrimSpace(w)
	switch w {
	case "s", "m", "h":
		w = "1" + w
	}
	d, err := time.ParseDuration(w)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("parse rate %q: %q is not a window; write it like 1m, 30s or 1h", s, w)
	}
	if d < time.Millisecond {
		return Limit{}, fmt.Errorf("parse rate %q: the window must be at least 1ms", s)
	}
	return Limit{N: count, Window: d}, nil
}

// String formats l as ParseLimit reads it, e.g. "60/1m0s".
func (l Limit) String() string { return strconv.Itoa(l.N) + "/" + l.Window.String() }
