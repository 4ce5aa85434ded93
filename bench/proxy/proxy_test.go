// Package proxy compares writ's access proxy with a direct call, with
// nginx as a plain reverse proxy and with the Go standard library's reverse
// proxy doing nothing else (go-bare), side by side in one run against the
// same upstream: requests per second and latency p50/p99 at a fixed rate
// and at saturation, and memory under load. writ, nginx and go-bare run as
// processes of their own; WRIT_PROXY_BENCH_PIN=1 puts them on CPU 1 while
// the test (load generator and upstream) runs on CPU 0.
//
//	WRIT_PROXY_BENCH=1 go test -run TestProxyComparison -v -timeout 20m ./bench/proxy/
//	WRIT_PROXY_BENCH=1 WRIT_PROXY_BENCH_PIN=1 taskset -c 0 go test -run TestProxyComparison -v -timeout 20m ./bench/proxy/
//	go test -run '^$' -bench . ./bench/proxy/
//
// WRIT_PROXY_BENCH_BASE=DIR adds "writ-base", writ built from the source
// tree DIR (a worktree of an older commit), to the same rounds: an A/B of
// two writ builds against the same go-bare, nginx and upstream. Every
// proxy's CPU time per request (from /proc/PID/stat) is reported beside
// its latency: on a shared machine it is the steadier figure.
//
// writ runs with everything on: the caller is attributed by its process
// (loopback connection → /proc → attestation → Identity), policy decides,
// the upstream credential is injected and every request is one event in the
// durable audit log. Results and how to read them: bench/README.md ("Proxy").
package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ/bench/benchproc"
	"github.com/writ-dev/writ/internal/servertest"
)

const docs = `apiVersion: writ.dev/v1
kind: Service
metadata: {name: bench}
spec:
  upstream: http://%s
  credential: {name: bench-key}
---
apiVersion: writ.dev/v1
kind: AccessPolicy
metadata: {name: bench}
spec:
  subjects: [spiffe://writ.local/bench]
  rules:
    - name: read
      effect: allow
      targets: [{http: {service: bench, methods: [GET], paths: ["/items/**"]}}]
`

// upstream answers every request with a small JSON body, and checks that
// writ's requests carry the injected credential.
func upstream(t testing.TB) (string, *atomic.Int64) {
	addr, bad, _ := countingUpstream(t)
	return addr, bad
}

// countingUpstream is upstream that also counts the connections it
// accepts.
func countingUpstream(t testing.TB) (addr string, bad, conns *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad, conns = new(atomic.Int64), new(atomic.Int64)
	body := []byte(`{"id":1,"name":"item","ok":true}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" && a != "Bearer bench-secret" {
			bad.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), bad, conns
}

// startWrit runs a writ server with its proxy in front of up.
func startWrit(t testing.TB, up string) string {
	cfg := servertest.Config(t.TempDir())
	cfg.Server.TLSListen = "off"
	in := servertest.Start(t, cfg, nil)
	configureWrit(t, in.Client, up)
	return in.Server.ProxyAddr()
}

// startNginx runs nginx as a plain reverse proxy to up (benchproc.Nginx),
// pinned as the other proxies are.
func startNginx(t testing.TB, up string) (string, func() []int) {
	return benchproc.Nginx(t, up, pin(t))
}

// result is one load run.
type result struct {
	n        int
	errs     int
	rps      float64
	p50, p99 time.Duration
	cpu      time.Duration // the proxy process's CPU time per request; 0 when unknown
}

func (r result) String() string {
	s := fmt.Sprintf("%8.0f req/s  p50 %8s  p99 %8s  errors %d", r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs)
	if r.cpu > 0 {
		s += fmt.Sprintf("  cpu/req %6.1fµs", float64(r.cpu)/float64(time.Microsecond))
	}
	return s
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
	}}
}

func do(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200
}

// warm opens conns connections with one concurrent request each, so that a
// run measures steady state (writ attributes a connection to its process
// once, on its first request; see cold).
func warm(c *http.Client, url string, conns int) {
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); do(c, url) }()
	}
	wg.Wait()
}

// cold is the median latency of the first request on a new connection.
func cold(url string, n int) time.Duration {
	var lat []time.Duration
	for i := 0; i < n; i++ {
		c := newClient(1)
		t0 := time.Now()
		if do(c, url) {
			lat = append(lat, time.Since(t0))
		}
		c.CloseIdleConnections()
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return 0
	}
	return lat[len(lat)/2]
}

func summarize(lat []time.Duration, errs int, elapsed time.Duration) result {
	slices.Sort(lat)
	r := result{n: len(lat), errs: errs, rps: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}

// fixedRate sends rate requests per second for d (open loop) and measures
// each latency from its scheduled start, so a stall is not hidden
// (coordinated omission).
func fixedRate(url string, rate int, d time.Duration) result {
	c := newClient(64)
	defer c.CloseIdleConnections() // a proxy's memory is then measured with the next measure's connections only
	warm(c, url, 64)
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	work := make(chan time.Time, n)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, n/64+1)
			e := 0
			for sched := range work {
				if do(c, url) {
					local = append(local, time.Since(sched))
				} else {
					e++
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += e
			mu.Unlock()
		}()
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		sched := start.Add(time.Duration(i) * interval)
		if w := time.Until(sched); w > 0 {
			time.Sleep(w)
		}
		work <- sched
	}
	close(work)
	wg.Wait()
	return summarize(lat, errs, time.Since(start))
}

// saturate runs conns closed-loop clients for d.
func saturate(url string, conns int, d time.Duration) result {
	c := newClient(conns)
	defer c.CloseIdleConnections()
	warm(c, url, conns)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			e := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if do(c, url) {
					local = append(local, time.Since(t0))
				} else {
					e++
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize(lat, errs, time.Since(start))
}

var (
	wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	wrkErr = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// wrk runs wrk at saturation, if it is installed.
func wrk(t testing.TB, url string, conns int, d time.Duration) (result, bool) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return result{}, false
	}
	out, err := exec.Command(bin, "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", url).CombinedOutput()
	if err != nil {
		t.Logf("wrk: %v: %s", err, out)
		return result{}, false
	}
	var r result
	if m := wrkRPS.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	for _, m := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		d := time.Duration(v * float64(unit))
		if string(m[1]) == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := wrkErr.FindSubmatch(out); m != nil {
		r.errs, _ = strconv.Atoi(string(m[1]))
	}
	return r, true
}

// memory is what processes hold resident, in KiB: rss is anon + file
// (+ shared memory); file is mostly the executable's own pages, shared
// with the page cache.
type memory struct{ rss, anon, file int }

func (m memory) String() string {
	return fmt.Sprintf("%d MiB (%d + %d)", m.rss>>10, m.anon>>10, m.file>>10)
}

// memoryOf sums the resident memory of pids.
func memoryOf(pids []int) memory {
	var m memory
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || len(strings.Fields(v)) == 0 {
				continue
			}
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			switch k {
			case "VmRSS":
				m.rss += n
			case "RssAnon":
				m.anon += n
			case "RssFile":
				m.file += n
			}
		}
	}
	return m
}

func TestProxyComparison(t *testing.T) {
	if os.Getenv("WRIT_PROXY_BENCH") == "" {
		t.Skip("set WRIT_PROXY_BENCH=1 to run the proxy comparison (about three minutes)")
	}
	d := 3 * time.Second
	if s := os.Getenv("WRIT_PROXY_BENCH_SECONDS"); s != "" {
		n, _ := strconv.Atoi(s)
		d = time.Duration(n) * time.Second
	}
	rounds := 3
	if s := os.Getenv("WRIT_PROXY_BENCH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	if cpu := os.Getenv("WRIT_PROXY_BENCH_PIN"); cpu != "" {
		pin(t) // fails unless this process is kept off cpu
		status, _ := os.ReadFile("/proc/self/status")
		allowed := regexp.MustCompile(`Cpus_allowed_list:\s*(\S+)`).FindSubmatch(status)
		fmt.Printf("proxies pinned to CPU %s; load generator and upstream on CPU %s\n", cpu, allowed[1])
	}
	up, bad := upstream(t)
	nginxAddr, nginxPIDs := startNginx(t, up)
	writAddr, writPID := startWritProcess(t, up)
	bareAddr, barePID := startBareProxyProcess(t, up)
	type target struct {
		name, url string
		pids      func() []int // the proxy's processes; nil for direct
	}
	targets := []target{
		{"direct", "http://" + up + "/items/1", nil},
		{"writ", "http://" + writAddr + "/svc/bench/items/1", func() []int { return []int{writPID} }},
		{"nginx", "http://" + nginxAddr + "/items/1", nginxPIDs},
		{"go-bare", "http://" + bareAddr + "/items/1", func() []int { return []int{barePID} }},
	}
	if base := os.Getenv("WRIT_PROXY_BENCH_BASE"); base != "" {
		// Another writ source tree (e.g. a worktree of the previous
		// main), measured in the same rounds as "writ-base".
		baseAddr, basePID := startWritProcessFrom(t, base, up)
		targets = slices.Insert(targets, 2, target{"writ-base", "http://" + baseAddr + "/svc/bench/items/1", func() []int { return []int{basePID} }})
		fmt.Printf("writ-base: writ built from %s\n", base)
	}
	for _, tg := range targets {
		if c := newClient(1); !do(c, tg.url) {
			t.Fatalf("%s: %s does not answer 200", tg.name, tg.url)
		}
	}
	fmt.Printf("\nfirst request on a new connection (median of 20; the proxy's CPU per new connection and request)\n")
	for _, tg := range targets {
		var c0 time.Duration
		if tg.pids != nil {
			c0 = benchproc.CPU(tg.pids()...)
		}
		lat := cold(tg.url, 20).Round(time.Microsecond)
		if tg.pids != nil {
			fmt.Printf("  %-9s %8s  cpu %6.0fµs\n", tg.name, lat, float64(benchproc.CPU(tg.pids()...)-c0)/20/float64(time.Microsecond))
		} else {
			fmt.Printf("  %-9s %8s\n", tg.name, lat)
		}
	}
	// Each measure runs rounds times, the targets one after the other in
	// each round, so that a noisy moment hits one round of every target
	// rather than all of one; the figures are medians over the rounds,
	// and the comparisons are medians of each round's comparison.
	type cell = map[string][]result
	run := func(title string, fn func(name, url string) result) cell {
		fmt.Printf("\n%s, %d rounds of %v\n", title, rounds, d)
		c := cell{}
		for range rounds {
			for _, tg := range targets {
				var c0 time.Duration
				if tg.pids != nil {
					c0 = benchproc.CPU(tg.pids()...)
				}
				r := fn(tg.name, tg.url)
				if tg.pids != nil && r.n > 0 {
					r.cpu = (benchproc.CPU(tg.pids()...) - c0) / time.Duration(r.n)
				}
				c[tg.name] = append(c[tg.name], r)
			}
		}
		for _, tg := range targets {
			fmt.Printf("  %-9s %s\n", tg.name, median(c[tg.name]))
		}
		return c
	}
	fixed := run("fixed rate 1000 req/s (Go open-loop client, latency from scheduled start)", func(_, url string) result {
		return fixedRate(url, 1000, d)
	})
	// Memory halfway through each target's saturation run, the largest
	// resident set of the rounds.
	var memMu sync.Mutex
	mems := map[string]memory{}
	pidsOf := map[string]func() []int{"writ": func() []int { return []int{writPID} }, "nginx": nginxPIDs}
	for _, tg := range targets {
		if tg.pids != nil {
			pidsOf[tg.name] = tg.pids
		}
	}
	sat := run("saturation, 32 connections (Go closed-loop client)", func(name, url string) result {
		done := make(chan struct{})
		go func() {
			select {
			case <-time.After(d / 2):
			case <-done:
				return
			}
			if pids := pidsOf[name]; pids != nil {
				m := memoryOf(pids())
				memMu.Lock()
				if m.anon > mems[name].anon {
					mems[name] = m
				}
				memMu.Unlock()
			}
		}()
		r := saturate(url, 32, d)
		close(done)
		return r
	})
	fmt.Printf("  memory under load (resident = anonymous + file-backed): writ %v, go-bare %v, nginx %v", mems["writ"], mems["go-bare"], mems["nginx"])
	if m, ok := mems["writ-base"]; ok {
		fmt.Printf(", writ-base %v", m)
	}
	fmt.Println()
	var wrkSat cell
	if _, ok := wrk(t, targets[0].url, 32, time.Second); ok {
		wrkSat = run("saturation, wrk -t2 -c32", func(_, url string) result {
			r, _ := wrk(t, url, 32, d)
			return r
		})
	}
	added := func(name string) time.Duration {
		var ds []time.Duration
		for i := range rounds {
			ds = append(ds, fixed[name][i].p99-fixed["direct"][i].p99)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	share := func(c cell, name string) float64 {
		var fs []float64
		for i := range rounds {
			fs = append(fs, c[name][i].rps/c["direct"][i].rps)
		}
		slices.Sort(fs)
		return fs[len(fs)/2] * 100
	}
	cpuRatio := func(c cell, name string) float64 {
		var fs []float64
		for i := range rounds {
			if c[name][i].cpu > 0 && c["go-bare"][i].cpu > 0 {
				fs = append(fs, float64(c[name][i].cpu)/float64(c["go-bare"][i].cpu))
			}
		}
		if len(fs) == 0 {
			return 0
		}
		slices.Sort(fs)
		return fs[len(fs)/2]
	}
	for _, tg := range targets {
		if tg.pids == nil || tg.name == "go-bare" {
			continue
		}
		fmt.Printf("\n%s: p99 added at 1000 req/s %v (go-bare %v; target ≤ go-bare + 0.3 ms); CPU per request ÷ go-bare's, median of rounds: %.2f at 1000 req/s, %.2f at saturation (target ≤ 1.3)",
			tg.name, added(tg.name).Round(time.Microsecond), added("go-bare").Round(time.Microsecond), cpuRatio(fixed, tg.name), cpuRatio(sat, tg.name))
	}
	fmt.Println()
	fmt.Printf("share of direct throughput at saturation, Go client (median of rounds): writ %.0f%%, nginx %.0f%%, go-bare %.0f%% (target for writ ≥ 60%%)\n",
		share(sat, "writ"), share(sat, "nginx"), share(sat, "go-bare"))
	if wrkSat != nil {
		fmt.Printf("share of direct throughput at saturation, wrk: writ %.0f%%, nginx %.0f%%, go-bare %.0f%%\n",
			share(wrkSat, "writ"), share(wrkSat, "nginx"), share(wrkSat, "go-bare"))
	}
	if n := bad.Load(); n != 0 {
		t.Errorf("%d requests reached the upstream with a wrong credential", n)
	}
}

// median returns the median of each figure of rs (taken separately).
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m := result{
		rps: pick(func(r result) float64 { return r.rps }),
		p50: time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99: time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		cpu: time.Duration(pick(func(r result) float64 { return float64(r.cpu) })),
	}
	for _, r := range rs {
		m.errs += r.errs
	}
	return m
}

// BenchmarkRoundTrip is one sequential request through writ (process
// attribution cached per connection, policy, injection, audit) and direct.
func BenchmarkRoundTrip(b *testing.B) {
	benchTargets(b, 1, func(b *testing.B, c *http.Client, url string) {
		for b.Loop() {
			if !do(c, url) {
				b.Fatal("request failed")
			}
		}
	})
}

// BenchmarkParallel is concurrent requests (16 clients on 2 cores) through
// writ and direct, for throughput and profiling.
func BenchmarkParallel(b *testing.B) {
	benchTargets(b, 16, func(b *testing.B, c *http.Client, url string) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !do(c, url) {
					b.Error("request failed")
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}

// benchTargets runs fn as sub-benchmarks direct, writ and go-bare (the
// standard library reverse proxy alone, see startBareProxy) against one
// upstream, each with one client whose conns connections are opened (and
// attributed) before measuring, so that the figures are steady state.
// It reports allocations and upstream-dials/op, the connections the
// upstream accepted per request (0 when they are reused).
func benchTargets(b *testing.B, conns int, fn func(b *testing.B, c *http.Client, url string)) {
	up, _, dials := countingUpstream(b)
	writAddr := startWrit(b, up)
	for _, tg := range []struct{ name, url string }{
		{"direct", "http://" + up + "/items/1"},
		{"writ", "http://" + writAddr + "/svc/bench/items/1"},
		{"go-bare", "http://" + startBareProxy(b, up) + "/items/1"},
	} {
		c := newClient(conns)
		warm(c, tg.url, conns)
		b.Run(tg.name, func(b *testing.B) {
			b.ReportAllocs()
			d0 := dials.Load()
			fn(b, c, tg.url)
			b.ReportMetric(float64(dials.Load()-d0)/float64(b.N), "upstream-dials/op")
		})
		c.CloseIdleConnections()
	}
}

// TestProxyProfile takes a CPU profile of a `writ serve` process (built
// from this tree) while 32 connections saturate its proxy, from the admin
// API's GET /v1/debug/pprof/profile, and writes it to the file named by
// WRIT_PROXY_PROFILE; with WRIT_PROXY_PROFILE_RATE=N, at N requests per
// second (open loop) instead, and with WRIT_PROXY_PROFILE_COLD=1, one
// request per new connection, one connection at a time;
// WRIT_PROXY_PROFILE_SECONDS sets the profile's length (default 8 s; writ's
// periodic work, a discovery scan every 30 s, needs a longer one):
//
//	WRIT_PROXY_PROFILE=/tmp/writ.cpu go test -run TestProxyProfile -v ./bench/proxy/
//	go tool pprof -top /tmp/writ.cpu
//	go tool pprof -top -sample_index=inuse_space /tmp/writ.cpu.heap
func TestProxyProfile(t *testing.T) {
	out := os.Getenv("WRIT_PROXY_PROFILE")
	if out == "" {
		t.Skip("set WRIT_PROXY_PROFILE=FILE to profile writ under load")
	}
	up, _ := upstream(t)
	_, here, _, _ := runtime.Caller(0)
	w := startWritAdmin(t, filepath.Join(filepath.Dir(here), "..", ".."), up, nil)
	url := "http://" + w.Proxy + "/svc/bench/items/1"
	if !do(newClient(1), url) {
		t.Fatalf("%s does not answer 200", url)
	}
	secs := 8
	if s, err := strconv.Atoi(os.Getenv("WRIT_PROXY_PROFILE_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	done := make(chan result)
	if os.Getenv("WRIT_PROXY_PROFILE_COLD") != "" {
		go func() {
			n, stop := 0, time.Now().Add(time.Duration(secs+2)*time.Second)
			for ; time.Now().Before(stop); n++ {
				cold(url, 1)
			}
			done <- result{n: n, rps: float64(n) / float64(secs+2)}
		}()
	} else if rate, _ := strconv.Atoi(os.Getenv("WRIT_PROXY_PROFILE_RATE")); rate > 0 {
		go func() { done <- fixedRate(url, rate, time.Duration(secs+2)*time.Second) }()
	} else {
		go func() { done <- saturate(url, 32, time.Duration(secs+2)*time.Second) }()
	}
	time.Sleep(time.Second)
	c0 := benchproc.CPU(w.PID)
	loaded := make(chan memory, 1)
	stats := make(chan string, 1)
	go func() {
		time.Sleep(time.Duration(secs) * time.Second / 2)
		loaded <- memoryOf([]int{w.PID})
		stats <- goMemory(w)
	}()
	body := w.Get(t, "/v1/debug/pprof/profile?seconds="+strconv.Itoa(secs))
	cpu := benchproc.CPU(w.PID) - c0
	r := <-done
	if err := os.WriteFile(out, body, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%.0f req/s, writ CPU %v during the %d s profile (%v per request at that rate); profile in %s",
		r.rps, cpu, secs, time.Duration(float64(cpu)/(r.rps*float64(secs))), out)
	// The heap once the load has stopped, beside the CPU profile.
	if err := os.WriteFile(out+".heap", w.Get(t, "/v1/debug/pprof/heap"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("resident under load %v, after it %v (anonymous + file-backed); heap profile in %s.heap", <-loaded, memoryOf([]int{w.PID}), out)
	t.Logf("Go runtime under load: %s", <-stats)
}

// goMemory is where the Go runtime of w says its memory is, from the
// heap profile's MemStats trailer, in MiB: what the heap holds, its
// collection goal, what it keeps freed but mapped, the goroutine stacks
// and the runtime's own structures.
func goMemory(w benchproc.Writ) string {
	b, err := w.Fetch("/v1/debug/pprof/heap?debug=1")
	if err != nil {
		return err.Error()
	}
	v := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, val, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if n, err := strconv.ParseFloat(strings.Fields(val + " x")[0], 64); ok && err == nil {
			v[k] = n / (1 << 20)
		}
	}
	return fmt.Sprintf("Sys %.1f, HeapInuse %.1f, HeapAlloc %.1f, NextGC %.1f, HeapIdle-Released %.1f, Stack %.1f, other runtime %.1f",
		v["Sys"], v["HeapInuse"], v["HeapAlloc"], v["NextGC"], v["HeapIdle"]-v["HeapReleased"], v["Stack"],
		v["MSpan"]+v["MCache"]+v["BuckHashSys"]+v["GCSys"]+v["OtherSys"])
}

// TestProxyRate compares writ's latency at a paced rate with go-bare's,
// alternating them for WRIT_PROXY_RATE_ROUNDS rounds (default 3) of
// WRIT_PROXY_BENCH_SECONDS (default 10) at WRIT_PROXY_RATE req/s (default
// 1000); WRIT_PROXY_RATE_CONFIG names a writ.yaml for writ serve, to
// compare settings:
//
//	WRIT_PROXY_RATE=1000 go test -run TestProxyRate -v ./bench/proxy/
func TestProxyRate(t *testing.T) {
	rate, _ := strconv.Atoi(os.Getenv("WRIT_PROXY_RATE"))
	if rate <= 0 {
		t.Skip("set WRIT_PROXY_RATE=N to compare latency at N req/s")
	}
	rounds, _ := strconv.Atoi(os.Getenv("WRIT_PROXY_RATE_ROUNDS"))
	if rounds <= 0 {
		rounds = 3
	}
	d := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("WRIT_PROXY_BENCH_SECONDS")); err == nil && s > 0 {
		d = time.Duration(s) * time.Second
	}
	var args []string
	if c := os.Getenv("WRIT_PROXY_RATE_CONFIG"); c != "" {
		args = []string{"--config", c}
	}
	up, _ := upstream(t)
	_, here, _, _ := runtime.Caller(0)
	w := startWritAdmin(t, filepath.Join(filepath.Dir(here), "..", ".."), up, args)
	bare, barePID := startBareProxyProcess(t, up)
	targets := []struct {
		name, url string
		pid       int
	}{{"writ", "http://" + w.Proxy + "/svc/bench/items/1", w.PID}, {"go-bare", "http://" + bare + "/items/1", barePID}}
	res := map[string][]result{}
	for r := range rounds {
		for _, tg := range targets {
			c0 := benchproc.CPU(tg.pid)
			x := fixedRate(tg.url, rate, d)
			if x.n > 0 {
				x.cpu = (benchproc.CPU(tg.pid) - c0) / time.Duration(x.n)
			}
			t.Logf("round %d %-8s %v", r+1, tg.name, x)
			res[tg.name] = append(res[tg.name], x)
		}
	}
	for _, tg := range targets {
		t.Logf("median %-8s %v", tg.name, median(res[tg.name]))
	}
	t.Logf("load average %s", func() string { b, _ := os.ReadFile("/proc/loadavg"); return strings.TrimSpace(string(b)) }())
}
