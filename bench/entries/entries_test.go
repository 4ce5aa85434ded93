// Package entries measures creating registration entries through a real
// `writ serve` process, as an operator's script or `writ apply` of a
// fleet does: how the cost of one create grows with the entries already
// registered. With WRIT_ENTRIES_BENCH_BEFORE naming another source tree
// (an older checkout), both builds run alternately in one run, for a
// before/after on the same loaded machine. See bench/README.md, section
// "Console (#19)".
package entries

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/bench/benchproc"
	"github.com/writ-dev/writ/internal/apitypes"
)

// TestCreateEntries creates WRIT_ENTRIES_BENCH_N entries (default
// 10,000) through the admin API of a fresh `writ serve` with 8 concurrent
// clients, and reports wall time and the server's CPU time for each
// thousand, and in all.
func TestCreateEntries(t *testing.T) {
	if os.Getenv("WRIT_ENTRIES_BENCH") == "" {
		t.Skip("set WRIT_ENTRIES_BENCH=1 to create 10,000 entries through writ serve (minutes; WRIT_ENTRIES_BENCH_BEFORE=DIR adds a build from another tree)")
	}
	n := 10_000
	if s := os.Getenv("WRIT_ENTRIES_BENCH_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	rounds := 1
	if s := os.Getenv("WRIT_ENTRIES_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	_, here, _, _ := runtime.Caller(0)
	builds := []struct{ name, root string }{{"this tree", filepath.Join(filepath.Dir(here), "..", "..")}}
	if before := os.Getenv("WRIT_ENTRIES_BENCH_BEFORE"); before != "" {
		builds = append([]struct{ name, root string }{{"before", before}}, builds...)
	}
	bins := make([]string, len(builds))
	for i, b := range builds {
		bins[i] = benchproc.Build(t, b.root)
	}
	// The build before may be given fewer entries (it slows as they
	// grow: WRIT_ENTRIES_BENCH_BEFORE_N).
	beforeN := n
	if s := os.Getenv("WRIT_ENTRIES_BENCH_BEFORE_N"); s != "" {
		beforeN, _ = strconv.Atoi(s)
	}
	for round := range rounds {
		for i, b := range builds {
			load, _ := os.ReadFile("/proc/loadavg")
			n := n
			if b.name == "before" {
				n = beforeN
			}
			r := createEntries(t, bins[i], n)
			fmt.Fprintf(os.Stderr, "round %d, %s: %d entries in %.1f s, server CPU %.1f s (%.2f ms per create); load %s",
				round+1, b.name, n, r.wall.Seconds(), r.cpu.Seconds(), float64(r.cpu.Microseconds())/1000/float64(n), load)
			fmt.Fprintf(os.Stderr, "  per thousand (wall s / server CPU s):")
			for k, s := range r.slices {
				fmt.Fprintf(os.Stderr, " %d:%.1f/%.1f", (k+1)*1000, s.wall.Seconds(), s.cpu.Seconds())
			}
			fmt.Fprintln(os.Stderr)
		}
	}
}

type slice struct{ wall, cpu time.Duration }

type result struct {
	wall, cpu time.Duration
	slices    []slice
}

// createEntries starts bin's `writ serve` on a fresh data directory and
// creates n entries through its API.
func createEntries(t *testing.T, bin string, n int) result {
	w := benchproc.StartWritBin(t, bin, nil, nil, nil)
	defer w.Stop()
	c := w.Client
	ctx := context.Background()
	var res result
	start, cpu0 := time.Now(), benchproc.CPU(w.PID)
	var profiled sync.WaitGroup
	for from := 0; from < n; from += 1000 {
		s0, c0 := time.Now(), benchproc.CPU(w.PID)
		if out := os.Getenv("WRIT_ENTRIES_BENCH_PROFILE"); out != "" && from+1000 >= n {
			// A CPU profile of the server over the last thousand.
			profiled.Go(func() { profile(t, w, out) })
		}
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					if _, err := c.CreateEntry(ctx, apitypes.Entry{Name: "agent-" + strconv.Itoa(i),
						SpiffeID:  fmt.Sprintf("spiffe://writ.local/fleet%d/agent-%d", i%50, i),
						Selectors: []string{"unix:uid:" + strconv.Itoa(10000+i), "unix:sha256:" + fmt.Sprintf("%064x", i)},
						Labels:    map[string]string{"owner": "team" + strconv.Itoa(i%5)}}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := from; i < min(from+1000, n); i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		res.slices = append(res.slices, slice{time.Since(s0), benchproc.CPU(w.PID) - c0})
	}
	res.wall = time.Since(start)
	profiled.Wait()
	list, err := c.ListEntries(ctx)
	if err != nil || len(list) != n {
		t.Fatalf("after creating %d entries the server lists %d (%v)", n, len(list), err)
	}
	res.cpu = benchproc.CPU(w.PID) - cpu0
	return res
}

// profile saves 10 seconds of the server's CPU profile to out.
func profile(t *testing.T, w benchproc.Writ, out string) {
	b, err := w.Fetch("/v1/debug/pprof/profile?seconds=10")
	if err == nil {
		err = os.WriteFile(out, b, 0o600)
	}
	if err != nil {
		t.Error(err)
	}
}
